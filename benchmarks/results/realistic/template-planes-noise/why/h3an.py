import sys, pickle, numpy as np
from h2an import evaluate, NU
def load3(cls):
    d = pickle.load(open(f"/work/scratch/h3_{cls}.pkl", "rb"))
    out = []
    for r in d["rows"]:
        dev = r["dev"].astype(np.float64); c = r["covered"]
        x = (dev - np.median(dev))[c] if c.any() else dev - np.median(dev)
        n = max(1, int(round(len(x) * 0.01)))
        m = r["meta"]
        out.append(dict(label=r["label"], s=np.partition(x, -n)[-n:].mean(), f=r["floor"], p=r["planes"],
                        nu=[*r["view"], m["visible_share"], m["points"], m["noise"]]))
    return out, float(np.median(d["tnoise"])) / d["k"] ** 0.5
cs = [float(c) for c in sys.argv[1].split(",")]
tot = {}
for cls in sys.argv[2:]:
    rows, tn = load3(cls); good = [r for r in rows if r["label"] == 0]
    pm = np.median([r["p"] for r in good])
    print(f"== {cls}: template noise/sqrt(k) {tn:.4g}, test planes median {pm:.4g}, floor median {np.median([r['f'] for r in good]):.4g}")
    variants = {"current": lambda r: r["s"] / r["f"], "planes": lambda r: r["s"] / r["p"]}
    for c in cs:
        variants[f"planes+T{c}"] = (lambda c: lambda r: r["s"] / np.hypot(r["p"], c * tn))(c)
    variants["floor+T1"] = lambda r: r["s"] / np.hypot(r["f"], tn)
    variants["floor+T0.5"] = lambda r: r["s"] / np.hypot(r["f"], 0.5 * tn)
    for name, fn in variants.items():
        o, rho = evaluate(rows, fn)
        big = sum(abs(v) >= 0.3 for v in rho); t = tot.setdefault(name, [0, 0, 0, []]); t[0] += big; t[1] += sum(map(abs, rho)); t[2] = max(t[2], max(map(abs, rho))); t[3].append(o)
        print(f"{name:12s} O {o:5.1f} " + " ".join(f"{n}{v:+.2f}" for n, v in zip(NU, rho)) + f"  max {max(abs(v) for v in rho):.2f}")
print("TOTAL (>=0.3, sum abs, max, mean O)")
for k, v in tot.items(): print(f"{k:12s} {v[0]} {v[1]:.2f} {v[2]:.2f} {np.mean(v[3]):.2f}")
