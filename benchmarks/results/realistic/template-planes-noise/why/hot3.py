"""Per-scan dump for the unit analysis (new default). usage: hot2.py ROOT CLASS CACHE"""
import json, sys, hashlib, pickle
import numpy as np, torch
torch.set_num_threads(1)
from mvr3d.baselines.template import TemplateDetector
from mvr3d.geometry.aligner import TemplateAligner
from mvr3d.data import Real3DAD
root, cls, cache_path = sys.argv[1], sys.argv[2], sys.argv[3]
cache = dict(np.load(cache_path))
def key(kind, points, sizes):
    p = points[:: max(1, len(points) // 997)].detach().cpu().numpy().round(6)
    return kind + hashlib.sha1(p.tobytes() + np.asarray(sizes).tobytes()).hexdigest()[:16]
def cached(kind, original):
    def run(self, points, sizes, *rest):
        k = key(kind, points, sizes)
        if k + ".t" in cache:
            return [(int(a), b, c) for a, b, c in zip(cache[k + ".t"], cache[k + ".r"], cache[k + ".s"])]
        print("miss", kind, flush=True)
        return original(self, points, sizes, *rest)
    return run
TemplateAligner.pose_joined = cached("p", TemplateAligner.pose_joined)
TemplateAligner.refine_from = cached("f", TemplateAligner.refine_from)
meta = json.load(open(f"{root}/meta.json"))["classes"][cls]["scans"]
train = Real3DAD(root, cls, "train"); test = Real3DAD(root, cls, "test")
det = TemplateDetector(seed=0, device="cpu").fit([train[i] for i in range(len(train))], progress=False)
from mvr3d.geometry.surface import local_noise, anchor_points
def planes_noise(clouds_t, anchors):
    joined = torch.cat(clouds_t); sizes = [len(c) for c in clouds_t]
    signed, normals, _ = det.reference_.signed_distance(joined)
    flat = (joined - signed[:, None] * normals).split(sizes)
    return local_noise(flat, signed.split(sizes), normals.split(sizes), anchors)
tclouds = [torch.from_numpy(det.reference_.from_template(j, np.asarray(train[j].points, dtype=np.float64))).float() for j in range(len(train))]
tnoise = planes_noise(tclouds, [anchor_points(c.numpy(), det.anchor_stride, det.seed) for c in tclouds]).numpy()
print("template noise", tnoise, flush=True)
orig = TemplateDetector._offsets
PL = []
def patched(self, reference, moved, sizes, anchors):
    out = orig(self, reference, moved, sizes, anchors)
    signed, normals, _ = reference.signed_distance(moved)
    flat = (moved.to(signed.device) - signed[:, None] * normals).split(sizes)
    PL.append(local_noise(flat, signed.split(sizes), normals.split(sizes), anchors) / max(self.smoothing_k, 1) ** 0.5)
    return out
TemplateDetector._offsets = patched
rows = []
samples = [test[i] for i in range(len(test))]
for start in range(0, len(samples), det.score_batch):
    batch = samples[start:start + det.score_batch]
    clouds = [np.asarray(s.points) for s in batch]
    deviations, floors, nearest, covered = det._deviations(clouds)
    for s, f, cov, dv, q in zip(batch, floors, covered, deviations, nearest.split([len(c) for c in clouds])):
        rows.append(dict(planes=float(PL[-1][len(rows) - start]), stem=s.name, label=int(s.label), floor=float(f), dev=dv.numpy().astype(np.float32),
                         covered=cov.numpy(), nearest=q.numpy().astype(np.int32),
                         labels=None if s.point_labels is None else np.asarray(s.point_labels), view=meta[s.name]["view"],
                         meta={k: v for k, v in meta[s.name].items() if k != "view"}))
    print(start, flush=True)
pickle.dump(dict(rows=rows, k=det.smoothing_k, tnoise=tnoise), open(f"/work/scratch/h3_{cls}.pkl", "wb"))
