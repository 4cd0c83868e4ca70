"""Anomalous regions: connected points above the point threshold, described in scan units."""

from __future__ import annotations

import numpy as np
import pytest

from mvr3d.engine.results import ScoreRow, read_scores, write_regions, write_scores
from mvr3d.errors import InputError
from mvr3d.models.components.regions import anomalous_regions, point_spacing


def plate(spacing: float = 0.5, side: int = 80) -> np.ndarray:
    """A flat grid of points in z = 0, ``side`` x ``side``, ``spacing`` apart."""
    u, v = np.meshgrid(np.arange(side) * spacing, np.arange(side) * spacing)
    return np.column_stack([u.ravel(), v.ravel(), np.zeros(u.size)])


def spots(points: np.ndarray) -> np.ndarray:
    """Scores with two hot disks: radius 3 at (10, 10) peaking at 5, radius 2 at (30, 30) at 9."""
    scores = np.zeros(len(points))
    for centre, radius, peak in (((10, 10), 3.0, 5.0), ((30, 30), 2.0, 9.0)):
        gap = np.linalg.norm(points[:, :2] - centre, axis=1)
        scores = np.maximum(scores, np.where(gap <= radius, peak * (1 - 0.5 * gap / radius), 0.0))
    return scores


def test_two_spots_are_two_regions_with_their_size_and_place() -> None:
    points = plate()
    scores = spots(points)
    regions = anomalous_regions(points, scores, point_threshold=1.0)
    assert len(regions) == 2
    first, second = regions  # highest peak first
    assert first.peak_score == pytest.approx(9.0) and second.peak_score == pytest.approx(5.0)
    np.testing.assert_allclose(first.centroid, (30, 30, 0), atol=0.3)
    np.testing.assert_allclose(second.centroid, (10, 10, 0), atol=0.3)
    assert first.points == int(((np.linalg.norm(points[:, :2] - 30, axis=1) <= 2.0)).sum())
    np.testing.assert_allclose(second.extent[:2], (6.0, 6.0), atol=0.5)  # grid steps of 0.5
    assert second.extent[2] == 0.0 and second.size == pytest.approx(np.hypot(*second.extent[:2]))


def test_regions_do_not_depend_on_point_order() -> None:
    points = plate()
    scores = spots(points)
    order = np.random.default_rng(0).permutation(len(points))
    plain = anomalous_regions(points, scores, 1.0)
    shuffled = anomalous_regions(points[order], scores[order], 1.0)
    assert [r.points for r in plain] == [r.points for r in shuffled]
    for a, b in zip(plain, shuffled, strict=True):
        np.testing.assert_allclose(a.centroid, b.centroid, rtol=0, atol=1e-9)


def test_scattered_hot_points_are_speckle_not_regions() -> None:
    points = plate()
    scores = np.zeros(len(points))
    scores[np.random.default_rng(1).choice(len(points), 40, replace=False)] = 10.0  # isolated, 0.6 % of points
    assert point_spacing(points) == pytest.approx(0.5)
    assert anomalous_regions(points, scores, 1.0) == []
    assert anomalous_regions(points, np.zeros(len(points)), 1.0) == []


def test_a_region_bridging_a_gap_of_two_spacings_stays_one() -> None:
    points = plate()
    scores = np.where((points[:, 1] == 5.0) & (points[:, 0] < 20) & (np.round(points[:, 0] / 0.5) % 3 != 1), 3.0, 0.0)
    assert len(anomalous_regions(points, scores, 1.0)) == 1  # every third point of the line missing


def test_bad_input_is_refused() -> None:
    with pytest.raises(InputError, match="points and N scores"):
        anomalous_regions(np.zeros((5, 2)), np.zeros(5), 1.0)
    with pytest.raises(InputError, match="points and N scores"):
        anomalous_regions(np.zeros((5, 3)), np.zeros(4), 1.0)
    with pytest.raises(InputError, match="min_points"):
        anomalous_regions(np.zeros((5, 3)), np.zeros(5), 1.0, min_points=0)


def test_regions_csv_and_scores_csv_round_trip(tmp_path) -> None:
    points = plate()
    found = anomalous_regions(points, spots(points), 1.0)
    write_regions(tmp_path / "regions.csv", [("part_a", found), ("part_b", [])])
    lines = (tmp_path / "regions.csv").read_text().splitlines()
    assert len(lines) == 3 and [line.split(",")[:2] for line in lines[1:]] == [["part_a", "1"], ["part_a", "2"]]
    assert float(lines[1].split(",")[10]) == pytest.approx(9.0)
    write_scores(tmp_path / "scores.csv", [ScoreRow("part_a", 3.0, 1.0, 0.9, "fail", 2), ScoreRow("part_b", 1.0)])
    rows = read_scores(tmp_path)
    assert rows[0].regions == 2 and rows[1].regions is None
