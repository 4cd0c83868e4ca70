"""Configuration of an MVR detector, one dataclass, JSON round-trippable."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mvr3d.errors import InputError
from mvr3d.geometry.aligner import DENSE_POSE_SEARCH
from mvr3d.render import RenderConfig

SCORE_DTYPES = ("float16", "bfloat16", "float32")
POSE_SEARCHES = ("sparse", "dense")
VOXEL_POINTS = ("mean", "random")
REFERENCE_DRAWS = ("template", "scan")
TWIN_RULES = ("top", "shift", "level", "local")

# Settings that decide how a run executes, not what it computes (scores agree within the
# float tolerances of benchmarks/consistency_*.md). They stay out of the config key and the
# resume check, so the same benchmark or fit resumes on another device, with --compile or
# another view batch. ``amp`` is not among them: on CUDA it trains in bfloat16, which
# changes the weights.
RUNTIME_FIELDS = ("device", "compile", "view_batch", "score_dtype")


def option(default: object, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A field with the help (and choices) its command-line flag shows (cli/options.py)."""
    metadata = {"help": help} if choices is None else {"help": help, "choices": choices}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Runtime:
    """How a detector runs: device, compiled kernels, views per batch, scoring precision."""

    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...")
    compile: bool = option(False, "torch.compile the network and renderer for scoring: faster on a GPU after a "
                                  "one-off compile of ~45 s")
    view_batch: int = option(27, "views per network batch when scoring")
    # Network precision when scoring on CUDA with amp: float16 keeps scores within 1e-3 of
    # float32 (bfloat16 drifts to ~2.5e-3; benchmarks/consistency_cuda.md) at the same speed.
    score_dtype: str = option("float16", "network precision when scoring on CUDA", SCORE_DTYPES)

    def __post_init__(self) -> None:
        bad = [name for name, ok in (("view_batch", isinstance(self.view_batch, int) and self.view_batch >= 1),
                                     ("score_dtype", self.score_dtype in SCORE_DTYPES),
                                     ("device", isinstance(self.device, str) and bool(self.device)),
                                     ("compile", isinstance(self.compile, bool))) if not ok]
        if bad:
            raise InputError(f"invalid Runtime field(s) {bad}: {[getattr(self, n) for n in bad]}")


@dataclass
class MVRConfig:
    backbone: str = option("dinov2_vits14", "dinov2_vits14, dinov2_vitb14, ..._reg, tiny_test")
    weights: str | None = option(None, "backbone weights: a .safetensors/.pth file, or 'random'; none: the offline DINOv2")
    # One grey level per depth in every view: with the camera scale fixed to the templates,
    # a scan's undamaged surface then looks the same as in training whatever its extent.
    render: RenderConfig = field(default_factory=lambda: RenderConfig(depth_range="scan"))
    # Poses used to score a scan (and, augmented, to train). The paper uses all 27; on the
    # standard benchmark (one-sided scans) the 3 least-rotated scored higher, 66.3/74.4
    # against 63.0/71.2 mean O-/P-ROC over 2 seeds (docs/accuracy.md), at 1/9 of the cost.
    views: str | int = option("paper3", "'paper3', 'paper27', 'fibonacciN', 'ringNxT' (N views T degrees around a straight one) or a number of views")
    # Pose augmentation: each template is also rendered under this many random rotations of
    # up to ``augment_degrees``, so partial scans in other poses still look normal.
    # Register each scan to its nearest template (pose search + point-to-plane ICP) before
    # rendering, so scans in any pose are drawn in the templates' frame and position.
    align: bool = True
    # "dense": the template method's pose search (geometry/aligner.py DENSE_POSE_SEARCH), about
    # 3x the registration work; "sparse": the aligner's defaults.
    pose_search: str = option("sparse", "how many start poses registration tries: the aligner's defaults, or the "
                              "template method's denser search", POSE_SEARCHES)
    augment_rotations: int = 8
    augment_degrees: float = 10.0  # residual pose error to tolerate (30+ without align)
    # Test scans are one-sided and may come from any side. Each augmented copy of a
    # template is cut down to what a scanner sees from a random direction within
    # ``scanner_cone_deg`` of +z (180 = anywhere), so the student learns partial scans.
    simulate_partial: bool = True
    scanner_cone_deg: float = 90.0
    # Experimental, off until measured on the realistic preset (docs/accuracy.md):
    # "scan": each registered scan is turned so that the side it was scanned from (found
    # from its template's visibility, models/mvr/sides.py) faces the views, and templates are
    # trained from ``train_directions`` sides; "fixed": views as given, in the template
    # frame (the old behaviour, which scored the side a scan came from). Needs ``align``.
    view_selection: str = option("fixed", "views in the template frame, or turned to the scanned side", ("fixed", "scan"))
    side_candidates: int = 64
    train_directions: int = 26
    # Experimental, off (worse on the dev seed, full size and --preset cpu; docs/accuracy.md): each registered scan is completed
    # with its template's points where the scan has none (farther than ``fill_gap`` of the
    # scan's point spacings), so that every view shows a whole part whichever side was
    # scanned; only the scan's own points are scored. Training completes its simulated scans
    # alike. Needs ``align``.
    complete_with_template: bool = False
    fill_gap: float = 3.0
    # Experimental, off (no change beyond the spread on the dev seed, --preset cpu; docs/accuracy.md).
    denoise_k: int = option(0, "draw every scan and template moved onto the plane fitted to each point's k nearest "
                               "points, so that shading follows shape more than scanner noise (0 or 1 = as scanned)")
    # What each view's teacher tokens are compared with. "student": the Dinomaly student's
    # reconstruction (the paper). "template": the teacher's tokens of the template the scan is
    # registered to, cut to the scan's footprint (its points within ``reference_gap`` scan
    # spacings of the scan) and drawn from the same views, so that the reference shows the
    # same side, extent and pose as the scan and only a defect differs; no student is trained.
    # Needs ``align``. Why: with a perfect reference the teacher and renderer separate the
    # realistic preset's defects (benchmarks/mvr_oracle.py); the student is what fails.
    reference: str = option("student", "what the teacher's tokens are compared with: the student's reconstruction, "
                            "or the teacher's tokens of the registered template cut to the scan", ("student", "template"))
    reference_gap: float = 3.0
    # How the template reference is drawn. "template": its points under the scan, as sampled
    # when the templates were made (denser or sparser, smoother or noisier than the scan, so
    # the error followed the scan's point count and noise: docs/accuracy.md). "scan": the
    # scan's own points (as drawn) with the template's shape, each moved onto the template's
    # local plane by the mean offset of its ``reference_smoothing`` nearest points
    # (geometry/surface.py: shaped_like): the same sampling and noise, only a shape differs.
    # Off: with denoise_k 16 it takes out featuretype's view z (dev seed 3, +0.53 -> +0.26 raw) but
    # costs accuracy (featuretype 90.6 -> 84.7 O-ROC), and the error level still follows point count
    # and noise (cow +0.36 / +0.46); with standardise_scores, held-out seed 10: 78.0 mean O-ROC on 4
    # classes, 3 of 24 values >= 0.3 (docs/accuracy.md, sixteenth session).
    reference_draw: str = option("template", "draw the template reference from its own points, or as the scan's "
                                 "points moved onto the template's shape", REFERENCE_DRAWS)
    reference_smoothing: int = option(32, "with reference_draw 'scan': the neighbourhood (points) whose mean "
                                          "offset from the template is taken out")
    # Normal twins (with the template reference): each scan is also drawn as ``null_twins``
    # normal scans of the same sampling, density and noise level, its points moved onto the
    # template's planes with their own noise rearranged (geometry/surface.py: normal_twin), each
    # compared with its own cut of the template; their errors say what this scan's views,
    # sampling and noise give on a normal part. "top": the point scores stay the scan's errors
    # and its object score is lowered by the twins' (the mean of their top ``top_fraction``
    # errors, or their max with object_score "max"): its excess over a normal scan's. The other
    # rules change the point scores: "shift" less the twins' median error, "level" divided by it,
    # "local" less their mean over each point's ``twin_blur`` nearest.
    null_twins: int = option(0, "with the template reference: also score each scan as this many normal twins "
                                "(same sampling and noise, the template's shape) and report its errors against "
                                "theirs (0 = off)")
    twin_rule: str = option("top", "how the twins' errors set each point's score", TWIN_RULES)
    twin_smoothing: int = option(32, "the neighbourhood (points) whose mean offset a twin's noise is measured about")
    twin_blur: int = option(128, "with twin_rule 'local': neighbours the twins' errors are averaged over")
    # Scanner noise on the augmented and calibration copies: Gaussian offsets along the
    # line of sight with a standard deviation of about this fraction of the object's
    # diagonal (each copy draws 0.5-1.5x it), as test scans are noisier than templates.
    augment_noise: float = 0.0
    # Per-location calibration (models/components/location_stats.py): ``calibration_scans`` simulated
    # normal scans per template, rotated by up to ``calibration_degrees``, give each
    # template point the mean and spread of normal scores there, pooled over
    # ``calibration_neighbours`` template points; scores become z-scores against them.
    calibrate: bool = False
    calibration_scans: int = 16
    calibration_degrees: float = 1.0
    calibration_neighbours: int = 32
    # "local": divide by each location's spread; "part": by the part's median spread, so that
    # places where simulated scans happened to agree do not magnify a test scan's differences.
    calibration_spread: str = option("local", "calibrated scores divide by each location's spread of normal "
                                     "scores (local) or by the part's median spread (part)", ("local", "part"))
    # Not part of MVR: adds this weight x the distance of each point to the surface of the
    # template it was registered to (both as robust z-scores per scan). It pays where the
    # templates are exact copies of the good part and defects are geometric (docs/accuracy.md);
    # 0 = MVR alone. Needs ``align``.
    deviation_weight: float = option(0.0, "add this weight x each point's distance to its registered template "
                                     "(robust z-scores per scan); not part of MVR")
    iterations: int = option(300, "training iterations")
    batch_size: int = 16
    lr: float = 2e-4
    final_lr_ratio: float = 0.1
    warmup: int = 30
    weight_decay: float = 1e-5
    grad_clip: float = 0.1
    easy_fraction: float = 0.9
    easy_factor: float = 0.1
    dropout: float = 0.2
    map_blur_sigma: float = 4.0  # Gaussian blur of anomaly maps, in model-input pixels
    smoothing_k: int = option(0, "k-NN smoothing of point scores (0 = off)")
    # Scanners sample grazing-angle surfaces sparsely, and there the views differ from any
    # reference (on the realistic preset the top scores of good scans sit where points lie
    # 1.5-1.8x the median spacing apart, a defect's at 0.9-1.2x; docs/accuracy.md).
    sparse_discount: float = option(0.0, "multiply point scores by min(1, median spacing / local spacing) to "
                                         "this power, so that sparsely sampled places count less (0 = off)")
    object_score: str = option("top1", "max, or top1: the mean of the top top_fraction of points", ("max", "top1"))
    # Experimental, off (dev seed, --preset cpu, 5 classes: level with plain scores; docs/accuracy.md).
    standardise_scores: bool = option(False, "point scores as robust z-scores against the scan's own scores (median, "
                                             "1.4826 MAD), so that a scan's overall error level drops out")
    top_fraction: float = 0.01
    # Scans with more points are voxel-downsampled to about this many before scoring; every
    # original point then takes its voxel's score. None scores every point directly.
    max_points: int | None = option(None, "voxel-downsample scans with more points to about this many before "
                                    "scoring; every original point still gets a score")
    # The template reference is the aligner's voxel-downsampled template; a scan sampled finer
    # than it renders finer detail and scanner noise than its reference, so its errors grow with
    # its point count. Downsampling the scan on a grid this many template voxels wide makes both
    # alike (0 = score every point as scanned). With 1, seeds 0-2: 7 instead of 14 good-scan
    # nuisance correlations >= 0.3 of 60, but 1.8-3.7 O-ROC lower (docs/accuracy.md), so off.
    scan_voxel: float = option(0.0, "voxel-downsample each scan on a grid this many template voxels wide before "
                                    "scoring (0 = off); every original point still gets a score")
    # A voxel's mean averages away more scanner noise the more points share it, so centroids
    # leave denser scans smoother; one of the voxel's own points keeps the scan's noise. With
    # scan_voxel 0.5 and "random" (sparse_discount 0) the point-count dependence of --preset
    # reference falls on 3 of 4 dev classes (cow +0.41 -> +0.05), accuracy level; at scan_voxel 1
    # cow loses 10 O-ROC. Not in the preset until held out on every class (docs/accuracy.md).
    scan_voxel_point: str = option("mean", "how each scan_voxel voxel is drawn: the mean of its points, or one "
                                           "of them at random (seeded; keeps the scan's noise)", VOXEL_POINTS)
    # Registration templates (and so the template reference) are voxel-downsampled on a grid
    # this fraction of their median diagonal wide; the aligner's ICP and pose search run on them.
    # 0.002 with scan_voxel 1 halves the nuisance dependence but loses 2.3 O-ROC on held-out
    # seed 1 (docs/accuracy.md, sixth session of 2026-12-06), so 0.004 stays.
    template_voxel: float = option(0.004, "voxel size of the registration templates (and the template reference), "
                                          "as a fraction of their median bounding-box diagonal")
    seed: int = option(0, "random seed (every method takes it)")
    amp: bool = True  # autocast on CUDA (training in bfloat16); False = float32 throughout

    def __post_init__(self) -> None:
        if isinstance(self.render, dict):
            self.render = RenderConfig(**self.render)
        self.validate()

    def validate(self) -> None:
        checks = {
            "iterations": self.iterations >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "augment_rotations": self.augment_rotations >= 0,
            "augment_noise": 0 <= self.augment_noise < 0.1,
            "easy_fraction": 0 <= self.easy_fraction < 1,
            "object_score": self.object_score in ("max", "top1"),
            "top_fraction": 0 < self.top_fraction <= 1,
            "smoothing_k": self.smoothing_k >= 0,
            "sparse_discount": self.sparse_discount >= 0,
            "max_points": self.max_points is None or self.max_points >= 100,
            "scan_voxel": self.scan_voxel >= 0,
            "scan_voxel_point": self.scan_voxel_point in VOXEL_POINTS,
            "template_voxel": 0 < self.template_voxel <= 0.1,
            "deviation_weight": self.deviation_weight >= 0,
            "view_selection": self.view_selection in ("scan", "fixed"),
            "pose_search": self.pose_search in POSE_SEARCHES,
            "side_candidates": self.side_candidates >= 1,
            "train_directions": self.train_directions >= 1,
            "calibration_scans": self.calibration_scans >= 1,
            "calibration_neighbours": self.calibration_neighbours >= 1,
            "calibration_spread": self.calibration_spread in ("local", "part"),
            "fill_gap": self.fill_gap > 0,
            "reference": self.reference in ("student", "template"),
            "reference_gap": self.reference_gap > 0,
            "reference_draw": self.reference_draw in REFERENCE_DRAWS,
            "reference_smoothing": self.reference_smoothing >= 1,
            "null_twins": self.null_twins >= 0,
            "twin_rule": self.twin_rule in TWIN_RULES,
            "twin_smoothing": self.twin_smoothing >= 2,
            "twin_blur": self.twin_blur >= 1,
            "denoise_k": self.denoise_k in (0, 1) or self.denoise_k >= 3,  # two points fit no plane
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"invalid MVRConfig field(s) {bad}: {[getattr(self, n) for n in bad]}")
        if self.complete_with_template and not self.align:
            raise InputError("MVRConfig.complete_with_template needs align=True: scans are completed from the "
                             "template they are registered to")
        if self.reference == "template" and not self.align:
            raise InputError("MVRConfig.reference='template' needs align=True: the reference is the template "
                             "each scan is registered to")
        if self.null_twins > 0 and self.reference != "template":
            raise InputError(f"MVRConfig.null_twins={self.null_twins} needs reference='template': a twin is "
                             "compared with its own cut of the template")
        if self.null_twins > 0 and (self.calibrate or self.standardise_scores or self.deviation_weight > 0):
            raise InputError(f"MVRConfig.null_twins={self.null_twins} takes calibrate, standardise_scores and "
                             "deviation_weight off: the twins' errors are compared before those steps would rescale "
                             "the scan's")
        if self.scan_voxel > 0 and not self.align:
            raise InputError(f"MVRConfig.scan_voxel={self.scan_voxel} needs align=True: the grid is sized in "
                             "voxels of the registration templates")
        if self.deviation_weight > 0 and not self.align:
            raise InputError(
                f"MVRConfig.deviation_weight={self.deviation_weight} needs align=True: the deviation "
                "is measured to the template each scan is registered to"
            )

    def aligner_params(self) -> dict[str, float]:
        """TemplateAligner arguments (beyond the seed): the template grid and ``pose_search``'s."""
        search = dict(DENSE_POSE_SEARCH) if self.pose_search == "dense" else {}
        return {"voxel_size_ratio": self.template_voxel, **search}

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["render"] = dataclasses.asdict(self.render)
        return data

    def result_dict(self) -> dict:
        """The settings that define results (every field: runtime settings live in :class:`Runtime`)."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: dict) -> MVRConfig:
        """The config in ``data`` (files saved before :class:`Runtime` was its own object
        also hold runtime fields: :func:`split_runtime` separates them first)."""
        config, runtime = split_runtime(data)
        if runtime:
            raise InputError(f"{sorted(runtime)} are Runtime settings, not MVRConfig fields: pass them as "
                             "MVRDetector(config, Runtime(...)) or MVRDetector(config, device=...)")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InputError(f"unknown MVRConfig field(s): {unknown}")
        return cls(**config)


def split_runtime(data: dict) -> tuple[dict, dict]:
    """``data`` as (config fields, runtime fields)."""
    config = {k: v for k, v in data.items() if k not in RUNTIME_FIELDS}
    return config, {k: v for k, v in data.items() if k in RUNTIME_FIELDS}
