"""MVRDetector: ``fit(normal_scans)``, ``score(scan)``, ``save(dir)``, ``load(dir)``.

A facade over the modules that do the work: :mod:`~mvr3d.models.mvr.training` (network,
training images, training loop, calibration), :mod:`~mvr3d.models.mvr.simulation` (simulated
scans), :mod:`~mvr3d.models.mvr.placement` (scans in their template's frame),
:mod:`~mvr3d.models.mvr.batch_scoring` (scoring scans together) and
:mod:`~mvr3d.models.mvr.scoring_pool` (scoring threads and the memory guard).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.profiler import record_function

from mvr3d.errors import CheckpointError, InputError
from mvr3d.geometry import TemplateAligner
from mvr3d.models.base import Detector
from mvr3d.models.components.location_stats import LocationStats
from mvr3d.models.mvr import batch_scoring, checkpoint, scoring_pool, training, training_state
from mvr3d.models.mvr.batch_scoring import expand, reduce_points
from mvr3d.models.mvr.config import MVRConfig, Runtime, split_runtime
from mvr3d.models.mvr.loss import global_cosine_hard_mining
from mvr3d.models.mvr.network import MVRNet
from mvr3d.models.mvr.placement import (
    Placed,
    Placement,
    bounding_frame,
    find_sides,
    on_device,
    warn_if_unlike_training,
)
from mvr3d.models.mvr.sides import SideFinder
from mvr3d.models.mvr.simulation import Scanner, held_out
from mvr3d.models.registry import register_detector
from mvr3d.models.thresholds import Threshold
from mvr3d.render import make_poses, render_views, to_rgb
from mvr3d.scans import ScanLike, ScanScore, as_points, training_points
from mvr3d.utils.seeding import seed_everything

__all__ = ["MVRDetector", "Placed", "ScanScore", "bounding_frame", "expand", "reduce_points", "warm_up_linalg"]

log = logging.getLogger(__name__)

# Devices whose linalg backends this process has loaded; a module global here, beside the
# ThreadPoolExecutor the detector hands the scoring pool, so that tests can replace either.
_warmed_up: set[str] = set()


def warm_up_linalg(device: torch.device) -> None:
    """:func:`scoring_pool.warm_up_linalg`, once per device and process."""
    scoring_pool.warm_up_linalg(device, _warmed_up)


@register_detector("mvr")
class MVRDetector(Detector):
    """Multi-View Reconstruction anomaly detector for point clouds."""

    @property
    def calibrate_leave_one_out(self) -> bool:  # type: ignore[override]
        # A student fit per left-out template would cost minutes on a GPU. The template
        # reference trains nothing, and views of its own template would match themselves.
        return self.config.reference == "template"

    @property
    def calibrate_posed(self) -> bool:  # type: ignore[override]
        return self.config.align  # only a registering MVR finds the pose of a turned view

    def unfitted_copy(self) -> MVRDetector:
        return MVRDetector(self.config, self.runtime)

    def __init__(self, config: MVRConfig | None = None, runtime: Runtime | None = None, **overrides: object) -> None:
        """``overrides`` name fields of the config or of the runtime (``device="cpu"``)."""
        config, runtime = config or MVRConfig(), runtime or Runtime()
        if overrides:
            config_fields, runtime_fields = split_runtime(overrides)
            config = MVRConfig.from_dict({**config.to_dict(), **config_fields})
            runtime = dataclasses.replace(runtime, **runtime_fields)
        patch = 14
        if config.render.image_size % patch:
            raise InputError(f"render.image_size must be a multiple of {patch}, got {config.render.image_size}")
        self.config = config
        self.runtime = runtime
        self.device = _pick_device(runtime.device)
        self.net: MVRNet | None = None
        self.radius_: float | None = None
        self.history_: list[float] = []
        self.aligner_: TemplateAligner | None = None
        self.template_centres_: list[np.ndarray] = []
        self.sides_: SideFinder | None = None
        self.score_stats_: LocationStats | None = None
        self.deviation_stats_: LocationStats | None = None
        self._poses_: torch.Tensor | None = None
        self._compiled_maps_: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._warned_overflow_ = False

    # ----------------------------------------------------------------- helpers
    def _build(self, teacher_state: dict | None = None) -> MVRNet:
        return training.build_net(self.config, self.device, teacher_state)

    def _poses(self) -> torch.Tensor:
        if self._poses_ is None:
            self._poses_ = make_poses(self.config.views)  # kept on the host: validated there cheaply
        return self._poses_

    def _render(self, points: np.ndarray, rotations: torch.Tensor, centre: np.ndarray):
        """Views of ``points`` and their model-ready images (used by benchmarks)."""
        views = render_views(on_device(points, self.device), rotations.to(self.device), self.config.render,
                             centre=centre, radius=self.radius_)
        return views, to_rgb(views.images)

    def _placement(self) -> Placement:
        cfg = self.config
        fill_gap = cfg.fill_gap if cfg.complete_with_template else None
        reference_gap = cfg.reference_gap if cfg.reference == "template" else None
        smoothing = cfg.reference_smoothing if reference_gap is not None and cfg.reference_draw == "scan" else None
        return Placement(self.device, self.template_centres_, self.aligner_, self.sides_, fill_gap, cfg.denoise_k,
                         reference_gap, smoothing, cfg.null_twins, cfg.twin_smoothing, cfg.seed)

    def _scanner(self) -> Scanner:
        return Scanner(self.config, self.radius_, self.device)

    def _placed(self, points: np.ndarray) -> Placed:
        return self._placement().place(points)

    def _autocast(self, dtype: str = "bfloat16"):
        return training.autocast(self.config, self.device, dtype)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        scans: Iterable[ScanLike],
        progress: bool = True,
        *,
        state_file: str | Path | None = None,
        save_every: int = 50,
    ) -> MVRDetector:
        """Train the student on normal scans (e.g. the complete templates of one class).

        With ``state_file``, training state is saved there every ``save_every`` iterations
        (atomically), and a fit that finds the file resumes from it: same config and scans
        required. The file stays after the last iteration, so that a crash before the
        detector is saved loses nothing; delete it once :meth:`save` has run.
        """
        cfg = self.config
        clouds = [training_points(scan) for scan in scans]
        if not clouds:
            raise InputError("fit() needs at least one normal scan")
        if save_every < 1:
            raise InputError(f"save_every must be a positive number of iterations, got {save_every}")
        rng = seed_everything(cfg.seed)
        self.radius_ = float(np.median([bounding_frame(c)[1] for c in clouds]))
        self.template_centres_ = [bounding_frame(c)[0] for c in clouds]
        if cfg.align:
            held = self._align(clouds)
        self.net = self._build()
        self.history_ = []
        if cfg.reference == "student":
            self._train(clouds, rng, progress, state_file, save_every)
        else:
            self.net.eval()  # the template is the reference: the student is never used
        if cfg.calibrate and self.aligner_ is not None:
            self.score_stats_, self.deviation_stats_ = training.calibrate(
                clouds, held, cfg, self._placement(), self._scanner(), self._raw_scores, self._reduced)
        return self

    def _train(self, clouds: list[np.ndarray], rng: np.random.Generator, progress: bool,
               state_file: str | Path | None, save_every: int) -> None:
        cfg = self.config
        pool = training.training_images(clouds, self._poses(), cfg, self._placement(), self._scanner(), rng)
        saver = None if state_file is None else training_state.StateSaver(Path(state_file), cfg.to_dict(), clouds, save_every)
        # The loss is looked up here, at call time: tests count iterations by replacing it.
        training.train(self.net, pool, cfg, self.device, rng, self.history_, global_cosine_hard_mining,
                       progress=progress, saver=saver)

    def _align(self, clouds: list[np.ndarray]) -> list[np.ndarray]:
        """Fit the aligner (and sides); returns each template's held-out points.

        Registration sees half of each template; calibration measures the template distance
        of the other half, so that it is the distance of a new sample of the surface (as a
        test scan is), not of the template's own points.
        """
        cfg = self.config
        held = [held_out(len(c), j, cfg.seed) if cfg.calibrate else np.zeros(len(c), bool) for j, c in enumerate(clouds)]
        registered = [c[~h] for c, h in zip(clouds, held, strict=True)]
        self.aligner_ = TemplateAligner(seed=cfg.seed, device=self.device, **cfg.aligner_params()).fit(registered)
        self.sides_ = find_sides(self.aligner_, cfg, self.radius_)
        return held

    # ------------------------------------------------------------------ scoring
    @property
    def is_fitted(self) -> bool:
        return self.net is not None and self.radius_ is not None

    def _check_fitted(self) -> MVRNet:
        self.check_is_fitted()
        return self.net

    @torch.no_grad()
    def view_maps(self, images: torch.Tensor, references: torch.Tensor | None = None) -> torch.Tensor:
        """(V, gh, gw) token-level anomaly maps for model-ready images: against the student's
        reconstruction, or with ``references`` (images of the same views) against theirs."""
        dtype = self.runtime.score_dtype if self.config.amp and self.device.type == "cuda" else "float32"
        maps = self._maps(images, references, dtype)
        if dtype == "float16" and not bool(torch.isfinite(maps).all()):
            if not self._warned_overflow_:
                log.warning("float16 overflowed in the network; scoring this batch in float32 (slower). "
                            "score_dtype='bfloat16' avoids the overflow at float16's speed, within ~3e-3.")
                self._warned_overflow_ = True
            maps = self._maps(images, references, "float32")
        return maps

    def _maps(self, images: torch.Tensor, references: torch.Tensor | None, dtype: str) -> torch.Tensor:
        maps = []
        pairs = images.split(self.runtime.view_batch)
        others = [None] * len(pairs) if references is None else references.split(self.runtime.view_batch)
        for chunk, other in zip(pairs, others, strict=True):
            with self._autocast(dtype):
                args = (chunk.to(self.device),) if other is None else (chunk.to(self.device), other.to(self.device))
                maps.append(self._network_maps(*args).float())
        return torch.cat(maps)

    def _network_maps(self, images: torch.Tensor, references: torch.Tensor | None = None) -> torch.Tensor:
        net = self._check_fitted()
        if references is not None:
            return net.reference_maps(images, references)
        if not self.runtime.compile:
            return net.anomaly_maps(images)
        if self._compiled_maps_ is None:
            self._compiled_maps_ = torch.compile(net.anomaly_maps)
        return self._compiled_maps_(images)

    def score(self, scan: ScanLike) -> ScanScore:
        """Per-point scores (input order and count) and the object score of one scan."""
        return self.score_many([scan])[0]

    def score_many(self, scans: Sequence[ScanLike]) -> list[ScanScore]:
        """Score several scans, running all their views through the network together."""
        self._check_fitted()
        reduced = [self._reduced(as_points(scan)) for scan in scans]
        clouds = [points for points, _ in reduced]
        needed = sum(self._memory_needed(len(points)) for points in clouds) * (1 + self.config.null_twins)
        with scoring_pool.memory_guard(needed, max(len(points) for points in clouds), len(self._poses()), self.device):
            results = self._score_clouds(clouds, scans)
        return [expand(result, inverse) for result, (_, inverse) in zip(results, reduced, strict=True)]

    def _reduced(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The cloud a scan is scored as (``scan_voxel``, ``max_points``) and each point's index in it."""
        return reduce_points(points, self.config.max_points, self.scan_voxel_size(), self.config.scan_voxel_point)

    def scan_voxel_size(self) -> float | None:
        """The grid scans are downsampled on before scoring (``scan_voxel`` template voxels), or None."""
        if self.config.scan_voxel <= 0 or self.aligner_ is None:
            return None
        return self.config.scan_voxel * self.aligner_.voxel_

    def _score_clouds(self, clouds: list[np.ndarray], scans: Sequence[ScanLike]) -> list[ScanScore]:
        """Register each scan (a few threads on a GPU), then render, run the network and map
        scores back for all scans together: few, large operations and few host syncs."""
        group = 1 + self.config.null_twins
        with record_function("mvr3d.register"):
            if group == 1:
                placed = self._each(self._placed, [(points,) for points in clouds])
            else:
                placed = [p for together in self._each(self._placement().place_with_twins, [(c,) for c in clouds])
                          for p in together]
            warn_if_unlike_training([p.cloud for p in placed[::group]], scans, self.radius_)
        scores, coverage, counts = self._raw_scores(placed)
        offsets = None
        if group > 1:
            scores, coverage, counts, offsets = batch_scoring.against_twins(scores, coverage, counts, placed, group,
                                                                            self.config)
            placed = placed[::group]
        with record_function("mvr3d.calibrate"):
            finished = batch_scoring.final_scores(scores, placed, counts, self.config.deviation_weight,
                                                  self.score_stats_, self.deviation_stats_,
                                                  self.config.standardise_scores)
            host = torch.cat([finished.float(), coverage.to(finished.device)]).cpu().numpy()  # the one copy back
        return batch_scoring.results(host, counts, self.config, offsets)

    def _raw_scores(self, placed: list[Placed]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        return batch_scoring.raw_scores(placed, self._poses(), self.config, self.radius_, self.view_maps, self._each,
                                        compile=self.runtime.compile)

    def _each(self, function: Callable, items: list[tuple]) -> list:
        """``function(*item)`` for every item, on a few threads on a GPU (see :mod:`scoring_pool`)."""
        return scoring_pool.run_each(function, items, threaded=self._threaded(),
                                     warm_up=partial(warm_up_linalg, self.device), executor=ThreadPoolExecutor)

    def _threaded(self) -> bool:
        # On a CPU the threads would only compete with torch's own intra-op threads.
        return self.device.type == "cuda"

    def _memory_needed(self, points: int) -> int:
        """Rough peak bytes to render and score one scan of ``points`` points."""
        return scoring_pool.memory_needed(points, len(self._poses()))

    # ------------------------------------------------------------- persistence
    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        net = self._check_fitted()
        state = {
            "radius": self.radius_,
            "history": self.history_,
            "template_centres": [c.tolist() for c in self.template_centres_],
            "align_voxel": None if self.aligner_ is None else self.aligner_.voxel_,
        }
        templates = {} if self.aligner_ is None else self.aligner_.state_dict()
        for prefix, stats in (("score_stats", self.score_stats_), ("deviation_stats", self.deviation_stats_)):
            if stats is not None:
                templates.update(stats.state(prefix))
        path = checkpoint.save(
            Path(directory), self.config.to_dict(), state,
            net.teacher.state_dict(), net.student.state_dict(), templates, overwrite=overwrite,
        )
        if self.threshold_ is not None:
            self.threshold_.save(path)
        return path

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> MVRDetector:
        config, state, teacher, student, templates = checkpoint.load(Path(directory))
        config, saved_runtime = split_runtime(config)  # checkpoints saved before Runtime kept it
        runtime = {**saved_runtime, **({} if device is None else {"device": device})}
        if isinstance(config, dict) and "calibrate" not in config:
            # Saved before sides and calibration existed: score as it was fitted.
            config.update(calibrate=False, view_selection="fixed")
        try:
            detector = cls(MVRConfig.from_dict(config), Runtime(**runtime))
            detector.net = detector._build(teacher_state=teacher)
            detector.net.student.load_state_dict(student, strict=True)
        except (InputError, RuntimeError, KeyError) as error:
            raise CheckpointError(f"{directory}: checkpoint does not match its config ({error})") from error
        detector.net.eval()
        detector.radius_ = float(state["radius"])
        detector.history_ = list(state.get("history", []))
        detector.template_centres_ = [np.asarray(c, dtype=np.float64) for c in state.get("template_centres", [])]
        if detector.config.align:
            detector.aligner_ = _aligner_from(templates, state.get("align_voxel"), detector, directory)
            detector.sides_ = find_sides(detector.aligner_, detector.config, detector.radius_)
            detector._load_stats(templates, directory)
        if not math.isfinite(detector.radius_) or detector.radius_ <= 0:
            raise CheckpointError(f"{directory}: invalid radius {detector.radius_} in config.json")
        detector.threshold_ = Threshold.load(Path(directory))
        return detector

    def _load_stats(self, tensors: dict, directory: object) -> None:
        references = self.aligner_.references
        loaded = [LocationStats.from_state(tensors, prefix, references) for prefix in ("score_stats", "deviation_stats")]
        for stats in loaded:
            for mean, reference in zip([] if stats is None else stats.mean_, references, strict=False):
                if len(mean) != len(reference):
                    raise CheckpointError(f"{directory}: calibration statistics do not match the templates")
        if self.config.calibrate and None in loaded:
            raise CheckpointError(f"{directory}: the detector is calibrated but its statistics are missing")
        self.score_stats_, self.deviation_stats_ = loaded

    def __repr__(self) -> str:
        fitted = "fitted" if self.net is not None else "not fitted"
        return f"MVRDetector(backbone={self.config.backbone!r}, views={self.config.views!r}, {fitted})"


def _aligner_from(templates: dict, voxel: float | None, detector: MVRDetector, directory: object) -> TemplateAligner:
    try:
        return TemplateAligner.from_state(templates, voxel, detector.device, seed=detector.config.seed,
                                          **detector.config.aligner_params())
    except CheckpointError as error:
        raise CheckpointError(f"{directory}: the detector aligns scans but its templates are missing ({error})") from error


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but CUDA is not available")
    return device
