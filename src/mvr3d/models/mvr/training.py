"""Fitting an MVR detector's parts: the network, the training images (templates and their
simulated scans), the student's training loop and the per-location calibration."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import numpy as np
import torch
from tqdm.auto import tqdm

from mvr3d.geometry import random_rotations
from mvr3d.models.components.backbones import create_backbone, get_spec
from mvr3d.models.components.location_stats import LocationStats
from mvr3d.models.mvr import training_state
from mvr3d.models.mvr.config import MVRConfig
from mvr3d.models.mvr.network import MVRNet
from mvr3d.models.mvr.optim import stable_adamw, warm_cosine_scheduler
from mvr3d.models.mvr.placement import Placed, Placement, bounding_frame, on_device
from mvr3d.models.mvr.sides import SideFinder, facing_rotation, turn_to_views
from mvr3d.models.mvr.simulation import Scanner
from mvr3d.models.mvr.student import StudentConfig
from mvr3d.render import RenderConfig, render_views, to_rgb
from mvr3d.render.poses import fibonacci_directions
from mvr3d.utils.seeding import seed_everything

CALIBRATION_BATCH = 8  # simulated scans scored together while calibrating
Reduce = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]

Loss = Callable[[list[torch.Tensor], list[torch.Tensor], float, float], torch.Tensor]
RawScores = Callable[[list[Placed]], tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]]

log = logging.getLogger(__name__)


def build_net(config: MVRConfig, device: torch.device, teacher_state: dict | None = None) -> MVRNet:
    """Teacher (pretrained, or ``teacher_state`` when loading) and a fresh seeded student."""
    seed_everything(config.seed)
    spec = get_spec(config.backbone)
    weights = "random" if teacher_state is not None else config.weights
    teacher = create_backbone(config.backbone, weights, img_size=config.render.image_size,
                              announce=teacher_state is None)
    if teacher_state is not None:
        teacher.load_state_dict(teacher_state, strict=True)
        log.info("backbone %s: weights from the checkpoint", config.backbone)
    for param in teacher.parameters():  # fp16-exact, so a saved teacher reloads bit-identically
        param.data = param.data.half().float()
    student = StudentConfig(
        embed_dim=teacher.embed_dim,
        num_heads=max(1, teacher.embed_dim // 64),
        dropout=config.dropout,
    )
    return MVRNet(teacher, spec.layers, student, spec.mean, spec.std).to(device)


def autocast(config: MVRConfig, device: torch.device, dtype: str = "bfloat16") -> AbstractContextManager:
    enabled = config.amp and device.type == "cuda" and dtype != "float32"
    return torch.autocast(device.type, dtype=getattr(torch, dtype), enabled=enabled)


def render_images(points: np.ndarray | torch.Tensor, poses: torch.Tensor, centre: np.ndarray,
                  render: RenderConfig, radius: float, device: torch.device) -> torch.Tensor:
    """Half-precision model-ready images of ``points`` from ``poses`` (half: the pool is kept whole)."""
    points = points if isinstance(points, torch.Tensor) else on_device(points, device)
    views = render_views(points, poses.to(device), render, centre=centre, radius=radius)
    return to_rgb(views.images).half()


def template_turns(sides: SideFinder | None, directions: int) -> list[torch.Tensor | None]:
    if sides is None:
        return [None]
    return [facing_rotation(d) for d in fibonacci_directions(directions)]


def training_images(clouds: Sequence[np.ndarray], poses: torch.Tensor, config: MVRConfig,
                    placement: Placement, scanner: Scanner, rng: np.random.Generator) -> torch.Tensor:
    """Every template from the scoring poses (turned to face each of ``train_directions``
    when views follow the scanned side), plus augmented copies: slightly rotated and,
    with ``simulate_partial``, reduced to what one scanner direction sees."""
    device, radius = placement.device, scanner.radius

    def images(points: np.ndarray | torch.Tensor, centre: np.ndarray) -> torch.Tensor:
        return render_images(points, poses, centre, config.render, radius, device)

    pool = []
    for j, (points, centre) in enumerate(zip(clouds, placement.centres, strict=True)):
        template = on_device(points, device)
        drawn = placement.denoised(template)
        whole = template if drawn is None else drawn
        for turn in template_turns(placement.sides, config.train_directions):
            pool.append(images(whole if turn is None else turn_to_views(whole, centre, turn), centre))
        for rotation in random_rotations(config.augment_rotations, config.augment_degrees, rng):
            moved = scanner.scan(points, centre, rotation, rng)[0]
            if config.align:  # aligned scans are drawn about their template's centre
                pool.append(images(placement.in_template(moved, j).rendered, centre))
            else:
                pool.append(images(moved, bounding_frame(moved)[0]))
    return torch.cat(pool)


def train(net: MVRNet, pool: torch.Tensor, config: MVRConfig, device: torch.device, rng: np.random.Generator,
          history: list[float], loss_of: Loss, *, progress: bool, saver: training_state.StateSaver | None) -> None:
    """Train the student on batches drawn from ``pool``, appending each loss to ``history``
    (in place, so that an interrupted fit still shows what it did; ``loss_of`` is passed in
    by the detector, whose tests count iterations through it)."""
    net.student.train()
    optimizer = stable_adamw(net.student.parameters(), config.lr, config.weight_decay)
    scheduler = warm_cosine_scheduler(optimizer, config.iterations, config.warmup, config.final_lr_ratio)
    start = 0
    if saver is not None:
        start, restored = saver.restore(net.student, optimizer, scheduler, rng)
        history.extend(restored)
    bar = tqdm(range(start, config.iterations), desc="fit", disable=not progress, leave=False,
               initial=start, total=config.iterations)
    for it in bar:
        index = torch.from_numpy(rng.choice(len(pool), size=min(config.batch_size, len(pool)), replace=False))
        batch = pool[index].to(device, non_blocking=True).float()
        # Hard mining ramps in over the first half of training (Dinomaly ramps over 1000 its).
        easy = config.easy_fraction * min(1.0, it / max(1, config.iterations // 2))
        with autocast(config, device):
            teacher, student = net(batch)
        loss = loss_of(teacher, student, easy, config.easy_factor)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.student.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        history.append(float(loss.detach()))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
        if saver is not None:
            saver.step(it + 1, net.student, optimizer, scheduler, rng, history)
    net.student.eval()


def calibrate(clouds: Sequence[np.ndarray], held_out: list[np.ndarray], config: MVRConfig, placement: Placement,
              scanner: Scanner, raw_scores: RawScores, reduce: Reduce | None = None
              ) -> tuple[LocationStats, LocationStats]:
    """Score simulated normal scans of every template; per-location statistics of the
    error and of the template distance (see :mod:`mvr3d.models.components.location_stats`).
    ``reduce`` is the downsampling test scans get before scoring: the simulated scans get
    it too, or their errors would describe a denser scan than the ones they calibrate."""
    rng = np.random.default_rng([config.seed, 0xCA1])  # its own stream: a resumed fit calibrates alike
    templates = placement.aligner.references
    scores = LocationStats(templates, config.calibration_neighbours, config.calibration_spread)
    deviations = LocationStats(templates, config.calibration_neighbours, config.calibration_spread)
    for j, (points, centre) in enumerate(zip(clouds, placement.centres, strict=True)):
        rotations = random_rotations(config.calibration_scans, config.calibration_degrees, rng)
        sims = [as_scored(*scanner.scan(points, centre, r, rng), held_out[j], reduce) for r in rotations]
        for first in range(0, len(sims), CALIBRATION_BATCH):
            group = sims[first : first + CALIBRATION_BATCH]
            placed = [placement.in_template(sim, j) for sim, _ in group]
            raw, _, counts = raw_scores(placed)
            for piece, p, (_, new) in zip(raw.split(list(counts)), placed, group, strict=True):
                scores.add(j, p.nearest, piece)
                new = torch.from_numpy(new).to(p.deviation.device)
                if bool(new.any()):
                    deviations.add(j, p.nearest[new.to(p.nearest.device)], p.deviation[new])
    return scores.finish(), deviations.finish()


def as_scored(sim: np.ndarray, source: np.ndarray, held_out: np.ndarray, reduce: Reduce | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """A simulated scan as a test scan is scored (after ``reduce``), and which of its points
    are new samples of the surface (held out of registration; a reduced point is new when
    most of the points it stands for are)."""
    new = held_out[source]
    reduced, inverse = (sim, None) if reduce is None else reduce(sim)
    if inverse is None:
        return sim, new
    share = np.bincount(inverse, weights=new, minlength=len(reduced)) / np.bincount(inverse, minlength=len(reduced))
    return reduced, share >= 0.5
