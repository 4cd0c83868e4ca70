import numpy as np
import pytest

from mvr3d.metrics.nuisance import nuisance_correlations, pooled_nuisance, spearman


def facts(n: int, rng: np.random.Generator) -> dict[str, dict]:
    views = rng.normal(size=(n, 3))
    views /= np.linalg.norm(views, axis=1, keepdims=True)
    return {
        f"{i}_good": {"view": views[i].tolist(), "points": int(rng.integers(1000, 9000)),
                      "noise": float(rng.uniform(0.001, 0.003)), "visible_share": float(rng.uniform(0.2, 0.5))}
        for i in range(n)
    }


def test_a_score_that_follows_the_view_is_caught_and_one_that_does_not_is_not() -> None:
    rng = np.random.default_rng(0)
    scans = facts(40, rng)
    follows = {stem: entry["view"][2] + 0.05 * rng.normal() for stem, entry in scans.items()}
    found = {c.nuisance: c for c in nuisance_correlations(follows, scans)}
    assert set(found) == {"view_x", "view_y", "view_z", "visible_share", "points", "noise"}
    assert found["view_z"].rho > 0.9 and found["view_z"].p_value < 1e-6
    independent = {stem: float(rng.normal()) for stem in scans}
    assert all(abs(c.rho) < 0.5 for c in nuisance_correlations(independent, scans))


def test_scans_without_facts_and_constant_scores_are_skipped() -> None:
    scans = facts(10, np.random.default_rng(1))
    assert nuisance_correlations({"other": 1.0}, scans) == []
    assert spearman([1.0] * 10, list(range(10)), "points") is None


def test_pooling_ranks_within_each_class() -> None:
    """Two classes whose score levels differ must not create a correlation by themselves."""
    rng = np.random.default_rng(2)
    per_class = []
    for offset in (0.0, 100.0):
        points = rng.uniform(0, 1, 30)
        per_class.append((offset + rng.normal(size=30), {"points": list(points + offset)}))
    pooled = {c.nuisance: c for c in pooled_nuisance(per_class)}
    assert abs(pooled["points"].rho) < 0.4
    per_class = [(list(v["points"]), v) for _, v in per_class]
    assert pooled_nuisance(per_class)[0].rho == pytest.approx(1.0)
