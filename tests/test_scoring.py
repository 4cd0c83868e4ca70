"""From per-view maps to point scores: batched lookup against direct bilinear sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mvr3d.models.components import scoring
from mvr3d.models.components.scoring import point_scores, robust_standardise
from mvr3d.render import RenderConfig, paper_poses, render_batch


def sphere(n: int, radius: float = 1.0) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    ring = torch.sqrt(1.0 - z * z)
    return radius * torch.stack([ring * torch.cos(phi), ring * torch.sin(phi), z], dim=1).float()


def direct_scores(maps: torch.Tensor, pixel_index: torch.Tensor, visible: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear sampling of each (h, w) map at the render pixel centres, mean over visible views."""
    rows, cols = pixel_index.long() // size, pixel_index.long() % size
    grid = torch.stack(((cols.float() + 0.5) / size * 2 - 1, (rows.float() + 0.5) / size * 2 - 1), dim=-1)
    values = F.grid_sample(maps.unsqueeze(1), grid.unsqueeze(1), mode="bilinear", padding_mode="border",
                           align_corners=False)[:, 0, 0]
    weights = visible.float()
    return (values * weights).sum(0) / weights.sum(0).clamp(min=1)


@pytest.mark.parametrize("views_per_chunk", [None, 1, 3])
def test_batched_lookup_matches_bilinear_sampling_per_cloud(views_per_chunk: int | None, monkeypatch) -> None:
    config = RenderConfig(render_size=96, image_size=32)
    clouds = [sphere(4000), sphere(900, 1.7), sphere(2500, 0.6)]
    batch = render_batch(clouds, paper_poses()[:4], config, radius=1.8)
    if views_per_chunk:
        monkeypatch.setattr(scoring, "IMAGE_ELEMENTS_PER_CHUNK", views_per_chunk * len(clouds) * 96 * 96)
    maps = torch.rand(len(clouds) * 4, 32, 32, generator=torch.Generator().manual_seed(0))
    scores, seen = point_scores(maps, batch, max_elements=3000)  # several point chunks
    assert scores.shape == seen.shape == (4000 + 900 + 2500,)
    start = 0
    for index, count in enumerate(batch.counts):
        part = batch.scan(index)
        expected = direct_scores(maps[4 * index : 4 * index + 4], part.pixel_index, part.visible, 96)
        torch.testing.assert_close(scores[start : start + count], expected, rtol=1e-5, atol=1e-6)
        assert torch.equal(seen[start : start + count], part.seen)
        start += count
    assert 0 < seen.float().mean() < 1  # four views near +z do not see the far side


def test_point_in_one_view_takes_that_views_value() -> None:
    config = RenderConfig(render_size=64, image_size=64)
    batch = render_batch([sphere(3000)], paper_poses()[:2], config)
    maps = torch.stack([torch.full((64, 64), 2.0), torch.full((64, 64), 6.0)])
    scores, seen = point_scores(maps, batch)
    only_first = batch.visible[0] & ~batch.visible[1]
    both = batch.visible.all(dim=0)
    assert only_first.any() and both.any()
    torch.testing.assert_close(scores[only_first], torch.full_like(scores[only_first], 2.0))
    torch.testing.assert_close(scores[both], torch.full_like(scores[both], 4.0))
    assert torch.equal(scores[~seen], torch.zeros_like(scores[~seen]))


def test_robust_standardise_works_per_scan():
    rng = np.random.default_rng(0)
    pieces = [rng.normal(5.0, 2.0, 501), rng.normal(-1.0, 0.1, 300), np.full(40, 3.0)]
    values = torch.from_numpy(np.concatenate(pieces)).float()
    out = robust_standardise(values, [len(p) for p in pieces]).numpy()
    first = out[:501]
    expected = (pieces[0] - np.median(pieces[0])) / (1.4826 * np.median(np.abs(pieces[0] - np.median(pieces[0]))))
    np.testing.assert_allclose(first, expected, rtol=1e-4, atol=1e-4)
    assert abs(np.median(out[501:801])) < 0.05  # even count: torch takes the lower middle value
    assert np.isfinite(out[801:]).all() and not out[801:].any()  # a constant scan: all zero, no NaN


def test_robust_standardise_floors_each_scans_spread():
    """A floor combines with each scan's own spread as sqrt(spread^2 + floor^2); zero changes nothing."""
    rng = np.random.default_rng(1)
    pieces = [rng.normal(5.0, 2.0, 501), rng.normal(-1.0, 0.1, 301)]  # odd: numpy and torch agree on medians
    values = torch.from_numpy(np.concatenate(pieces)).float()
    sizes = [len(p) for p in pieces]
    plain = robust_standardise(values, sizes)
    torch.testing.assert_close(robust_standardise(values, sizes, torch.zeros(2)), plain)
    floored = robust_standardise(values, sizes, torch.tensor([0.0, 1.0])).numpy()
    spread = 1.4826 * np.median(np.abs(pieces[1] - np.median(pieces[1])))
    expected = (pieces[1] - np.median(pieces[1])) / np.hypot(spread, 1.0)
    np.testing.assert_allclose(floored[501:], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(floored[:501], plain[:501].numpy(), rtol=1e-6)
