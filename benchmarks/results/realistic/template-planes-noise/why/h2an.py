import pickle, sys, numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
NU = ["vx", "vy", "vz", "vis", "pts", "noise"]
def load(cls):
    d = pickle.load(open(f"/work/scratch/h2_{cls}.pkl", "rb"))
    out = []
    for r in d["rows"]:
        dev = r["dev"].astype(np.float64); c = r["covered"]
        x = (dev - np.median(dev))[c] if c.any() else dev - np.median(dev)
        n = max(1, int(round(len(x) * 0.01)))
        s_raw = np.partition(x, -n)[-n:].mean()
        m = r["meta"]
        out.append(dict(label=r["label"], s=s_raw, f=r["floor"], med=np.median(dev), nu=[*r["view"], m["visible_share"], m["points"], m["noise"]]))
    return out
def evaluate(rows, score):
    y = np.array([r["label"] for r in rows]); s = np.array([score(r) for r in rows])
    good = y == 0
    nu = np.array([r["nu"] for r in rows])[good]
    rho = [spearmanr(s[good], nu[:, j])[0] for j in range(6)]
    return roc_auc_score(y, s) * 100, rho
if __name__ == "__main__":
    for cls in sys.argv[1:]:
        rows = load(cls)
        good = [r for r in rows if r["label"] == 0]
        fm = np.median([r["f"] for r in good])
        nu = np.array([r["nu"] for r in good]); f = np.array([r["f"] for r in good])
        print(f"== {cls}: floor vs noise rho {spearmanr(f, nu[:,5])[0]:+.2f}, floor/noise vs points {spearmanr(f/nu[:,5], nu[:,4])[0]:+.2f}, vs vz {spearmanr(f/nu[:,5], nu[:,2])[0]:+.2f}; raw top vs noise {spearmanr([r['s'] for r in good], nu[:,5])[0]:+.2f}")
        variants = {"current": lambda r: r["s"] / r["f"], "raw": lambda r: r["s"]}
        for c in (0.5, 1, 2):
            variants[f"m={c}"] = (lambda c: lambda r: r["s"] / np.hypot(r["f"], c * fm))(c)
        variants["true noise"] = lambda r: r["s"] / r["nu"][5]
        for name, fn in variants.items():
            o, rho = evaluate(rows, fn)
            print(f"{name:12s} O {o:5.1f} " + " ".join(f"{n}{v:+.2f}" for n, v in zip(NU, rho)) + f"  max {max(abs(v) for v in rho):.2f}")
