"""MVRDetector: ``fit(normal_scans)``, ``score(scan)``, ``save(dir)``, ``load(dir)``."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.profiler import record_function
from tqdm.auto import tqdm

from mvr3d.errors import CheckpointError, InputError
from mvr3d.geometry import TemplateAligner, random_rotations, voxel_downsample
from mvr3d.models import checkpoint, training_state
from mvr3d.models.backbones import create_backbone, get_spec
from mvr3d.models.base import Detector
from mvr3d.models.calibration import LocationStats
from mvr3d.models.config import MVRConfig
from mvr3d.models.loss import global_cosine_hard_mining
from mvr3d.models.mvr import MVRNet
from mvr3d.models.optim import stable_adamw, warm_cosine_scheduler
from mvr3d.models.registry import register_detector
from mvr3d.models.scoring import (
    fill_unseen_batch,
    fuse_deviation,
    point_scores,
    smooth_knn,
    upsample_maps,
)
from mvr3d.models.sides import SideFinder, facing_rotation, sphere_direction, turn_to_views
from mvr3d.models.student import StudentConfig
from mvr3d.render import make_poses, render_batch, render_views, to_rgb
from mvr3d.render.poses import cone_direction, fibonacci_directions, look_from
from mvr3d.scans import ScanLike, ScanScore, as_points, object_score, training_points
from mvr3d.utils import memory
from mvr3d.utils.seeding import seed_everything

log = logging.getLogger(__name__)
CALIBRATION_BATCH = 8  # simulated scans scored together while calibrating
MIN_SPLIT_POINTS = 500  # per half, for a template to be split into registered / held out

# Peak memory of scoring one scan, per point and view (pixel index, visibility, render
# working set) and per point (coordinates in float64, scores, neighbour look-ups).
# Calibrated on benchmarks/huge_scan_cpu.md (peak RSS grows ~190 B per point at 27 views).
VIEW_BYTES_PER_POINT = 8
BYTES_PER_POINT = 64
FIXED_BYTES = 2**30
SCORING_THREADS = 4

def reduce_points(points: np.ndarray, max_points: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Voxel-downsample to roughly ``max_points``; also each point's voxel index."""
    if max_points is None or len(points) <= max_points:
        return points, None
    extent = np.ptp(points, axis=0).astype(np.float64)
    area = 2 * (extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2])
    voxel = np.sqrt(area / 2 / max_points)  # scans are surfaces: count ~ area / voxel^2
    for _ in range(4):
        sampled, inverse = voxel_downsample(points, voxel)
        if len(sampled) <= max_points:
            break
        voxel *= np.sqrt(len(sampled) / max_points) * 1.05
    return sampled.astype(points.dtype), inverse


def expand(result: ScanScore, inverse: np.ndarray | None) -> ScanScore:
    """Give every original point the score of the voxel it fell into."""
    if inverse is None:
        return result
    return ScanScore(result.point_scores[inverse], result.object_score, result.coverage)


def bounding_frame(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Bounding-box centre and the radius of the sphere about it holding every point."""
    centre = (points.min(axis=0).astype(np.float64) + points.max(axis=0)) / 2
    radius = float(np.sqrt(((points - centre) ** 2).sum(axis=1).max()))
    return centre, radius


@dataclass
class Placed:
    """A scan ready to render: on the device, in the frame it is drawn in (its template's,
    turned so that its scanned side faces the views), with what scoring needs of its match."""

    cloud: torch.Tensor
    centre: torch.Tensor | np.ndarray
    template: int | None = None
    nearest: torch.Tensor | None = None  # each point's nearest template point
    deviation: torch.Tensor | None = None  # each point's distance to it


@register_detector("mvr")
class MVRDetector(Detector):
    """Multi-View Reconstruction anomaly detector for point clouds."""

    def __init__(self, config: MVRConfig | None = None, **overrides: object) -> None:
        config = config or MVRConfig()
        if overrides:
            config = MVRConfig.from_dict({**config.to_dict(), **overrides})
        patch = 14
        if config.render.image_size % patch:
            raise InputError(f"render.image_size must be a multiple of {patch}, got {config.render.image_size}")
        self.config = config
        self.device = _pick_device(config.device)
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

    # ----------------------------------------------------------------- building
    def _build(self, teacher_state: dict | None = None) -> MVRNet:
        cfg = self.config
        seed_everything(cfg.seed)
        spec = get_spec(cfg.backbone)
        weights = "random" if teacher_state is not None else cfg.weights
        teacher = create_backbone(cfg.backbone, weights, img_size=cfg.render.image_size)
        if teacher_state is not None:
            teacher.load_state_dict(teacher_state, strict=True)
        for param in teacher.parameters():  # fp16-exact, so a saved teacher reloads bit-identically
            param.data = param.data.half().float()
        student = StudentConfig(
            embed_dim=teacher.embed_dim,
            num_heads=max(1, teacher.embed_dim // 64),
            dropout=cfg.dropout,
        )
        return MVRNet(teacher, spec.layers, student, spec.mean, spec.std).to(self.device)

    def _poses(self) -> torch.Tensor:
        if self._poses_ is None:
            self._poses_ = make_poses(self.config.views)  # kept on the host: validated there cheaply
        return self._poses_

    def _render(self, points: np.ndarray, rotations: torch.Tensor, centre: np.ndarray):
        views = render_views(self._on_device(points), rotations.to(self.device), self.config.render,
                             centre=centre, radius=self.radius_)
        return views, to_rgb(views.images)

    def _on_device(self, points: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(points)).to(self.device, non_blocking=True)

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
            # Registration sees half of each template; calibration measures the template
            # distance of the other half, so that it is the distance of a new sample of the
            # surface (as a test scan is), not of the template's own points.
            held_out = [self._held_out(len(c), j) if cfg.calibrate else np.zeros(len(c), bool) for j, c in enumerate(clouds)]
            registered = [c[~h] for c, h in zip(clouds, held_out, strict=True)]
            self.aligner_ = TemplateAligner(seed=cfg.seed, device=self.device).fit(registered)
            self._find_sides()
        self.net = self._build()
        pool = self._training_images(clouds, rng)
        saver = None if state_file is None else training_state.StateSaver(Path(state_file), cfg.to_dict(), clouds, save_every)
        self._train(pool, rng, progress, saver)
        if cfg.calibrate and self.aligner_ is not None:
            self._calibrate(clouds, held_out)
        return self

    def _held_out(self, count: int, template: int) -> np.ndarray:
        """A seeded half of a template's points (all kept when it is too small to split)."""
        mask = np.zeros(count, dtype=bool)
        if count >= 2 * MIN_SPLIT_POINTS:
            mask[np.random.default_rng([self.config.seed, template, 0x5E]).permutation(count)[: count // 2]] = True
        return mask

    def _find_sides(self) -> None:
        if self.config.view_selection == "scan" and self.aligner_ is not None:
            self.sides_ = SideFinder(self.aligner_.references, self.config.render, self.radius_, self.config.side_candidates)

    def _match(self, template: int, cloud: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance to and index of each point's nearest point of ``template`` (cloud in its frame)."""
        return self.aligner_.match(template, cloud)

    def _place_in_template(self, cloud: np.ndarray, template: int) -> Placed:
        """A scan already in ``template``'s frame, matched and turned to face the views."""
        points = self._on_device(cloud)
        centre = self.template_centres_[template]
        if self.aligner_ is None:
            return Placed(points, centre)
        distances, nearest = self._match(template, points)
        if self.sides_ is not None:
            turn = facing_rotation(self.sides_.direction(template, nearest))
            points = turn_to_views(points, centre, turn)
        return Placed(points, centre, template, nearest, distances)

    def _training_images(self, clouds: Sequence[np.ndarray], rng: np.random.Generator) -> torch.Tensor:
        """Every template from the scoring poses (turned to face each of ``train_directions``
        when views follow the scanned side), plus augmented copies: slightly rotated and,
        with ``simulate_partial``, reduced to what one scanner direction sees."""
        cfg, poses = self.config, self._poses()
        images = []
        for j, (points, centre) in enumerate(zip(clouds, self.template_centres_, strict=True)):
            for turn in self._template_turns():
                turned = points if turn is None else turn_to_views(self._on_device(points), centre, turn)
                images.append(self._render_images(turned, poses, centre))
            for rotation in random_rotations(cfg.augment_rotations, cfg.augment_degrees, rng):
                moved = self._simulated_scan(points, centre, rotation, rng)[0]
                if cfg.align:  # aligned scans are drawn about their template's centre
                    images.append(self._render_images(self._place_in_template(moved, j).cloud, poses, centre))
                else:
                    images.append(self._render_images(moved, poses, bounding_frame(moved)[0]))
        return torch.cat(images)

    def _template_turns(self) -> list[torch.Tensor | None]:
        if self.sides_ is None:
            return [None]
        return [facing_rotation(d) for d in fibonacci_directions(self.config.train_directions)]

    def _render_images(self, points, poses: torch.Tensor, centre) -> torch.Tensor:
        points = points if isinstance(points, torch.Tensor) else self._on_device(points)
        views = render_views(points, poses.to(self.device), self.config.render, centre=centre, radius=self.radius_)
        return to_rgb(views.images).half()

    def _simulated_scan(self, points: np.ndarray, centre: np.ndarray, rotation: torch.Tensor,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A template rotated about its centre, cut to one scanner direction, with depth
        noise; and the index of the template point each simulated point came from."""
        cfg = self.config
        moved = (points - centre) @ rotation.numpy().T.astype(points.dtype) + centre
        source, direction = np.arange(len(points)), None
        if cfg.simulate_partial:
            cone = cfg.scanner_cone_deg
            direction = sphere_direction(rng) if cone >= 180 else cone_direction(cone, rng)
            source = self._scanner_view(moved, direction)
            moved = moved[source]
        if cfg.augment_noise > 0:
            moved = self._scanner_noise(moved, direction, rng)
        return moved, source

    def _scanner_view(self, points: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Indices of the points visible from ``direction`` (hidden-point removal by the renderer)."""
        rotation = look_from(torch.from_numpy(direction)[None])
        views, _ = self._render(points, rotation, bounding_frame(points)[0])
        visible = views.visible[0].cpu().numpy()
        return np.flatnonzero(visible) if visible.sum() >= 16 else np.arange(len(points))

    def _scanner_noise(self, points: np.ndarray, direction: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        """Gaussian depth noise along the line of sight (isotropic without one)."""
        sigma = self.config.augment_noise * 2 * self.radius_ * rng.uniform(0.5, 1.5)
        if direction is None:
            return points + rng.normal(scale=sigma, size=points.shape).astype(points.dtype)
        offsets = rng.normal(scale=sigma, size=len(points))
        return points + np.outer(offsets, direction).astype(points.dtype)

    def _train(self, pool: torch.Tensor, rng: np.random.Generator, progress: bool, saver: training_state.StateSaver | None) -> None:
        cfg, net = self.config, self.net
        net.student.train()
        optimizer = stable_adamw(net.student.parameters(), cfg.lr, cfg.weight_decay)
        scheduler = warm_cosine_scheduler(optimizer, cfg.iterations, cfg.warmup, cfg.final_lr_ratio)
        self.history_, start = [], 0
        if saver is not None:
            start, self.history_ = saver.restore(net.student, optimizer, scheduler, rng)
        bar = tqdm(range(start, cfg.iterations), desc="fit", disable=not progress, leave=False,
                   initial=start, total=cfg.iterations)
        for it in bar:
            index = torch.from_numpy(rng.choice(len(pool), size=min(cfg.batch_size, len(pool)), replace=False))
            batch = pool[index].to(self.device, non_blocking=True).float()
            # Hard mining ramps in over the first half of training (Dinomaly ramps over 1000 its).
            easy = cfg.easy_fraction * min(1.0, it / max(1, cfg.iterations // 2))
            with self._autocast():
                teacher, student = net(batch)
            loss = global_cosine_hard_mining(teacher, student, easy, cfg.easy_factor)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.student.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            self.history_.append(float(loss.detach()))
            bar.set_postfix(loss=f"{self.history_[-1]:.4f}")
            if saver is not None:
                saver.step(it + 1, net.student, optimizer, scheduler, rng, self.history_)
        net.student.eval()

    def _autocast(self, dtype: str = "bfloat16"):
        enabled = self.config.amp and self.device.type == "cuda" and dtype != "float32"
        return torch.autocast(self.device.type, dtype=getattr(torch, dtype), enabled=enabled)

    # ------------------------------------------------------------------ scoring
    @property
    def is_fitted(self) -> bool:
        return self.net is not None and self.radius_ is not None

    def _check_fitted(self) -> MVRNet:
        self.check_is_fitted()
        return self.net

    @torch.no_grad()
    def view_maps(self, images: torch.Tensor) -> torch.Tensor:
        """(V, gh, gw) token-level anomaly maps for model-ready images."""
        dtype = self.config.score_dtype if self.config.amp and self.device.type == "cuda" else "float32"
        maps = self._maps(images, dtype)
        if dtype == "float16" and not bool(torch.isfinite(maps).all()):
            if not self._warned_overflow_:
                log.warning("float16 overflowed in the network; scoring this batch in float32 (slower). "
                            "score_dtype='bfloat16' avoids the overflow at float16's speed, within ~3e-3.")
                self._warned_overflow_ = True
            maps = self._maps(images, "float32")
        return maps

    def _maps(self, images: torch.Tensor, dtype: str) -> torch.Tensor:
        maps = []
        for chunk in images.split(self.config.view_batch):
            with self._autocast(dtype):
                maps.append(self._network_maps(chunk.to(self.device)).float())
        return torch.cat(maps)

    def _network_maps(self, images: torch.Tensor) -> torch.Tensor:
        net = self._check_fitted()
        if not self.config.compile:
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
        originals = [as_points(scan) for scan in scans]
        reduced = [reduce_points(points, self.config.max_points) for points in originals]
        clouds = [points for points, _ in reduced]
        needed = sum(self._memory_needed(len(points)) for points in clouds)
        with self._memory_guard(needed, max(len(points) for points in clouds)):
            results = self._score_clouds(clouds, scans)
        return [expand(result, inverse) for result, (_, inverse) in zip(results, reduced, strict=True)]

    def _score_clouds(self, clouds: list[np.ndarray], scans: Sequence[ScanLike]) -> list[ScanScore]:
        """Register each scan (a few threads on a GPU), then render, run the network and map
        scores back for all scans together: few, large operations and few host syncs."""
        with record_function("mvr3d.register"):
            placed = self._each(self._placed, [(points,) for points in clouds])
            self._warn_if_unlike_training([p.cloud for p in placed], scans)
        scores, coverage, counts = self._raw_scores(placed)
        with record_function("mvr3d.calibrate"):
            finished = self._final_scores(scores, placed, counts)
            host = torch.cat([finished.float(), coverage.to(finished.device)]).cpu().numpy()  # the one copy back
        return self._results(host, counts)

    def _raw_scores(self, placed: list[Placed]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        """Reconstruction error of every point of every placed scan (concatenated), the share
        of each scan the views see, and the point counts."""
        cfg = self.config
        points = [p.cloud for p in placed]
        with record_function("mvr3d.render"):
            batch = render_batch(points, self._poses(), cfg.render, centres=[p.centre for p in placed],
                                 radius=self.radius_, compile=cfg.compile)
        with record_function("mvr3d.network"):
            token_maps = self.view_maps(to_rgb(batch.images))
        with record_function("mvr3d.point_scores"):
            maps = upsample_maps(token_maps, cfg.render.image_size, cfg.map_blur_sigma)
            scores, seen = point_scores(maps, batch)
        with record_function("mvr3d.complete"):
            cloud = batch.cloud_of_point()
            finished = fill_unseen_batch(torch.cat(points), scores, seen, cloud, len(batch))
            if cfg.smoothing_k > 1:
                pieces = zip(points, finished.split(batch.counts), strict=True)
                finished = torch.cat(self._each(partial(smooth_knn, k=cfg.smoothing_k), list(pieces)))
            coverage = torch.zeros(len(batch), device=seen.device).index_add_(0, cloud, seen.float())
            coverage /= torch.tensor(batch.counts, device=seen.device)
        return finished, coverage, batch.counts

    def _final_scores(self, scores: torch.Tensor, placed: list[Placed], counts: tuple[int, ...]) -> torch.Tensor:
        """Calibrated per template location when fitted so (plus the weighted calibrated
        deviation), else the raw error (plus the deviation, both as robust z-scores per scan)."""
        weight = self.config.deviation_weight
        if self.score_stats_ is None:
            if weight <= 0:
                return scores
            deviation = torch.cat([p.deviation for p in placed]).to(scores.device)
            return fuse_deviation(scores, deviation, counts, weight)
        out = []
        for piece, p in zip(scores.split(list(counts)), placed, strict=True):
            z = self.score_stats_.standardise(p.template, p.nearest, piece)
            if weight > 0:
                z = z + weight * self.deviation_stats_.standardise(p.template, p.nearest, p.deviation).to(z.device)
            out.append(z)
        return torch.cat(out)

    def _calibrate(self, clouds: Sequence[np.ndarray], held_out: list[np.ndarray]) -> None:
        """Score simulated normal scans of every template; keep per-location statistics of
        the error and of the template distance (see :mod:`mvr3d.models.calibration`)."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 0xCA1])  # its own stream: a resumed fit calibrates alike
        templates = self.aligner_.references
        scores = LocationStats(templates, cfg.calibration_neighbours)
        deviations = LocationStats(templates, cfg.calibration_neighbours)
        for j, (points, centre) in enumerate(zip(clouds, self.template_centres_, strict=True)):
            rotations = random_rotations(cfg.calibration_scans, cfg.calibration_degrees, rng)
            sims = [self._simulated_scan(points, centre, r, rng) for r in rotations]
            for first in range(0, len(sims), CALIBRATION_BATCH):
                group = sims[first : first + CALIBRATION_BATCH]
                placed = [self._place_in_template(sim, j) for sim, _ in group]
                raw, _, counts = self._raw_scores(placed)
                for piece, p, (_, source) in zip(raw.split(list(counts)), placed, group, strict=True):
                    scores.add(j, p.nearest, piece)
                    new = torch.from_numpy(held_out[j][source]).to(p.deviation.device)
                    if bool(new.any()):
                        deviations.add(j, p.nearest[new.to(p.nearest.device)], p.deviation[new])
        self.score_stats_, self.deviation_stats_ = scores.finish(), deviations.finish()

    def _results(self, host: np.ndarray, counts: tuple[int, ...]) -> list[ScanScore]:
        """Concatenated point scores followed by one coverage per scan -> a result per scan."""
        cfg, scans = self.config, len(counts)
        per_scan = np.split(host[:-scans], np.cumsum(counts)[:-1])
        return [
            ScanScore(scores, object_score(scores, cfg.object_score, cfg.top_fraction), float(coverage))
            for scores, coverage in zip(per_scan, host[-scans:], strict=True)
        ]

    def _each(self, function, items: list[tuple]) -> list:
        """``function(*item)`` for every item; on a GPU from a few threads at once, so that
        one scan's host work and syncs overlap the others' kernels (one stream, so results
        do not depend on the interleaving)."""
        if not self._threaded() or len(items) < 2:
            return [function(*item) for item in items]
        warm_up_linalg(self.device)
        with ThreadPoolExecutor(max_workers=min(len(items), SCORING_THREADS)) as pool:
            return list(pool.map(lambda item: function(*item), items))

    def _threaded(self) -> bool:
        # On a CPU the threads would only compete with torch's own intra-op threads.
        return self.device.type == "cuda"

    def _memory_needed(self, points: int) -> int:
        """Rough peak bytes to render and score one scan (measured in benchmarks/huge_scan.py)."""
        views = len(self._poses())
        return points * (VIEW_BYTES_PER_POINT * views + BYTES_PER_POINT) + FIXED_BYTES

    @contextmanager
    def _memory_guard(self, needed: int, largest: int) -> Iterator[None]:
        """Fail early and clearly when scoring cannot fit, and likewise if the allocator gives up."""
        what = f"scoring {largest:,}-point scans from {len(self._poses())} views"
        free = memory.available_bytes(self.device)
        per_point = self._memory_needed(1) - FIXED_BYTES
        fits = largest // 2 if free is None else int((0.8 * free - FIXED_BYTES) / per_point)
        if fits < 100:
            advice = f"free some memory: even a small scan needs about {FIXED_BYTES / memory.GIB:.1f} GiB here"
        else:
            advice = (
                f"set max_points (--max-points, e.g. {min(fits, largest // 2):,}) to voxel-downsample large "
                "scans (every original point still gets its voxel's score), or score fewer scans at once"
            )
        memory.require(needed, self.device, what, advice)
        try:
            yield
        except (MemoryError, RuntimeError) as error:
            if not memory.is_out_of_memory(error):
                raise
            raise memory.out_of_memory(needed, self.device, what, advice) from error

    def _placed(self, points: np.ndarray) -> Placed:
        """The scan on the device in the frame it is drawn in (registered to its nearest
        template when aligning), and the centre the views turn about."""
        if self.aligner_ is None:
            cloud = self._on_device(points)
            return Placed(cloud, (cloud.amin(dim=0).double() + cloud.amax(dim=0)) / 2)
        index, moved = self.aligner_.to_template_frame(points.astype(np.float64))
        return self._place_in_template(moved, index)

    def _warn_if_unlike_training(self, clouds: list[torch.Tensor], scans: Sequence[ScanLike]) -> None:
        """A scan much larger or smaller than the templates is likely another class or unit."""
        radii = []
        for cloud in clouds:
            centre = (cloud.amin(dim=0).double() + cloud.amax(dim=0)) / 2
            radii.append((cloud.double() - centre).square().sum(dim=1).amax().sqrt())
        for scan, radius in zip(scans, torch.stack(radii).tolist(), strict=True):
            ratio = radius / self.radius_
            if ratio > 1.5 or 0 < ratio < 0.2:  # 0: identical points, which rendering refuses
                name = getattr(scan, "path", None) or (scan if isinstance(scan, (str, Path)) else "scan")
                warnings.warn(
                    f"{name}: object is {ratio:.2f}x the size of the training scans; it may not be "
                    "of the class this detector was fitted on (or its units differ)",
                    stacklevel=4,
                )

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
        return checkpoint.save(
            Path(directory), self.config.to_dict(), state,
            net.teacher.state_dict(), net.student.state_dict(), templates, overwrite=overwrite,
        )

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> MVRDetector:
        config, state, teacher, student, templates = checkpoint.load(Path(directory))
        if device is not None:
            config["device"] = device
        if isinstance(config, dict) and "calibrate" not in config:
            # Saved before sides and calibration existed: score as it was fitted.
            config.update(calibrate=False, view_selection="fixed")
        try:
            detector = cls(MVRConfig.from_dict(config))
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
            detector._find_sides()
            detector._load_stats(templates, directory)
        if not math.isfinite(detector.radius_) or detector.radius_ <= 0:
            raise CheckpointError(f"{directory}: invalid radius {detector.radius_} in config.json")
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
        return TemplateAligner.from_state(templates, voxel, detector.device, seed=detector.config.seed)
    except CheckpointError as error:
        raise CheckpointError(f"{directory}: the detector aligns scans but its templates are missing ({error})") from error


_warmed_up: set[str] = set()


def warm_up_linalg(device: torch.device) -> None:
    """Run every linalg routine the scoring threads use once on the calling thread.

    torch loads its CUDA linalg backends lazily and not thread-safely ("lazy wrapper
    should be called at most once" from solve_ex when several threads hit it first), so
    the first call of each must happen before the thread pool starts.
    """
    if str(device) in _warmed_up:
        return
    eye = torch.eye(3, dtype=torch.float64, device=device).expand(2, 3, 3).contiguous()
    torch.linalg.solve_ex(torch.eye(6, dtype=torch.float64, device=device)[None], torch.ones(1, 6, dtype=torch.float64, device=device))
    torch.linalg.svd(eye)
    torch.linalg.det(eye)
    torch.linalg.cross(eye[0], eye[1], dim=1)
    torch.linalg.eigh(eye)
    _warmed_up.add(str(device))


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but CUDA is not available")
    return device
