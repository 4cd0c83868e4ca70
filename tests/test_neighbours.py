import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from mvr3d.errors import InputError
from mvr3d.geometry import neighbours
from mvr3d.geometry.field import ClosestPointField
from mvr3d.geometry.neighbours import (
    GRID_LEVEL_SHARE,
    NeighbourIndex,
    brute_force_neighbours,
    nearest_neighbours,
)
from mvr3d.models.components.scoring import discount_sparse, fill_unseen, smooth_knn


def _cloud(n: int, seed: int, offset: float = 0.0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(size=(n, 3)) + offset)


def _distances(reference: torch.Tensor, query: torch.Tensor, index: torch.Tensor) -> np.ndarray:
    return np.linalg.norm(reference.numpy()[index.numpy()] - query.numpy()[:, None], axis=2)


def test_brute_force_matches_tree_distances():
    reference, query = _cloud(3000, 0), _cloud(500, 1)
    expected, _ = cKDTree(reference.numpy()).query(query.numpy(), k=4)
    # Small chunks exercise the split over queries.
    index = brute_force_neighbours(reference, query, 4, max_elements=3000 * 37)
    np.testing.assert_allclose(_distances(reference, query, index), expected, rtol=1e-5, atol=1e-6)


def test_brute_force_stays_exact_far_from_origin():
    reference, query = _cloud(2000, 2, offset=1e6), _cloud(200, 3, offset=1e6)
    expected, _ = cKDTree(reference.numpy()).query(query.numpy(), k=3)
    index = brute_force_neighbours(reference, query, 3)
    np.testing.assert_allclose(_distances(reference, query, index), expected, rtol=1e-4)


def test_nearest_neighbours_clamps_k_and_handles_empty_queries():
    reference = _cloud(2, 4)
    assert nearest_neighbours(reference, _cloud(5, 5), 3).shape == (5, 2)
    assert nearest_neighbours(reference, reference[:0], 3).shape == (0, 2)


def test_fill_unseen_takes_the_mean_of_seen_points_nearby():
    points = torch.tensor([[0.0, 0, 0], [1, 0, 0], [10, 0, 0], [0.1, 0, 0], [10.1, 0, 0], [0.6, 0, 0]])
    scores = torch.tensor([1.0, 3.0, 7.0, -100.0, -100.0, -100.0])
    seen = torch.tensor([True, True, True, False, False, False])
    filled = fill_unseen(points, scores, seen, cell=0.5)
    # 0.1 has only 0 in its block; 0.6 has 0 and 1; 10.1 has 10.
    assert filled.tolist() == [1.0, 3.0, 7.0, 1.0, 7.0, 2.0]
    assert scores[3] == -100.0  # the input is not modified


def test_fill_unseen_widens_until_it_finds_seen_points():
    points = torch.tensor([[0.0, 0, 0], [0.01, 0, 0], [50.0, 0, 0]])
    scores = torch.tensor([2.0, 4.0, 0.0])
    seen = torch.tensor([True, True, False])
    assert fill_unseen(points, scores, seen, cell=0.02).tolist() == [2.0, 4.0, 3.0]


def test_fill_unseen_matches_a_direct_block_average():
    rng = np.random.default_rng(7)
    points = rng.uniform(-1, 1, size=(3000, 3)) + 1e5
    scores = rng.uniform(size=3000)
    seen = rng.uniform(size=3000) < 0.8
    cell = 0.3
    filled = fill_unseen(torch.from_numpy(points), torch.from_numpy(scores), torch.from_numpy(seen), cell=cell)
    cells = np.floor((points - points.min(axis=0)) / cell)
    for i in np.flatnonzero(~seen)[:50]:
        near = seen & (np.abs(cells - cells[i]) <= 1).all(axis=1)
        assert near.any()
        assert filled[i].item() == pytest.approx(scores[near].mean(), rel=1e-12)
    np.testing.assert_array_equal(filled.numpy()[seen], scores[seen])


def test_smooth_knn_averages_over_neighbourhood():
    points = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [5, 0, 0], [5.1, 0, 0]])
    scores = torch.tensor([0.0, 2.0, 4.0, 8.0])
    assert smooth_knn(points, scores, 2).tolist() == [1.0, 1.0, 6.0, 6.0]
    assert smooth_knn(points, scores, 1) is scores


def test_discount_sparse_scales_scores_by_relative_spacing():
    """A plane sampled at spacing 1 on one side and 2 on the other (a grazing-angle strip):
    the dense side keeps its scores, the sparse side's shrink by (1/2) ** power; edges and
    the seam, where neighbourhoods straddle both, are left out of the exact check."""
    dense = np.stack(np.meshgrid(np.arange(60.0), np.arange(60.0)), axis=-1).reshape(-1, 2)
    sparse = np.stack(np.meshgrid(np.arange(62.0, 182.0, 2.0), np.arange(0.0, 100.0, 2.0)), axis=-1).reshape(-1, 2)
    flat = np.concatenate([dense, sparse])
    points = torch.from_numpy(np.column_stack([flat, np.zeros(len(flat))]))
    scores = torch.rand(len(points), generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    assert len(dense) > len(sparse)  # so that the median spacing is the dense side's
    out = discount_sparse(points, scores, 1.5)
    assert out.dtype == scores.dtype and out.shape == scores.shape
    inner_dense = (flat[:, 0] > 5) & (flat[:, 0] < 50) & (flat[:, 1] > 5) & (flat[:, 1] < 50)
    inner_sparse = (flat[:, 0] > 75) & (flat[:, 0] < 170) & (flat[:, 1] > 10) & (flat[:, 1] < 88)
    torch.testing.assert_close(out[inner_dense], scores[inner_dense])
    torch.testing.assert_close(out[inner_sparse], scores[inner_sparse] * 0.5**1.5)
    assert bool((out <= scores).all())
    assert discount_sparse(points, scores, 0.0) is scores


def test_fill_unseen_batch_fills_each_cloud_as_alone():
    """Clouds of other sizes and scales, one without seen points and one fully seen, in one call."""
    from mvr3d.models.components.scoring import fill_unseen_batch

    rng = np.random.default_rng(4)
    clouds = [rng.normal(size=(800, 3)), 50 + 10 * rng.normal(size=(300, 3)), rng.normal(size=(200, 3)),
              rng.uniform(size=(400, 3))]
    seen_masks = [rng.uniform(size=800) < 0.6, rng.uniform(size=300) < 0.05, np.zeros(200, bool), np.ones(400, bool)]
    points = [torch.from_numpy(c).float() for c in clouds]
    scores = [torch.from_numpy(rng.uniform(size=len(c))).float() * torch.from_numpy(m)
              for c, m in zip(clouds, seen_masks, strict=True)]
    seen = [torch.from_numpy(m) for m in seen_masks]
    cloud = torch.cat([torch.full((len(c),), i) for i, c in enumerate(clouds)])
    together = fill_unseen_batch(torch.cat(points), torch.cat(scores), torch.cat(seen), cloud, len(clouds))
    alone = torch.cat([fill_unseen(p, s, m) for p, s, m in zip(points, scores, seen, strict=True)])
    # Bit-exact by construction on the CPU: each cell sums its own cloud's seen points, in
    # input order, with index_add_ in float64 either way (other clouds are in other cells).
    assert torch.equal(together, alone)
    assert torch.equal(together[800 + 300 : 800 + 300 + 200], torch.zeros(200))  # nothing seen: unchanged
    assert (together[800:1100] > 0).all()  # a sparsely seen cloud is filled everywhere


def _shell(n: int, seed: int) -> torch.Tensor:
    """Points on a unit sphere: a surface, like the clouds the grid is built for."""
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=(n, 3))
    return torch.from_numpy(unit / np.linalg.norm(unit, axis=1, keepdims=True))


@pytest.mark.parametrize("k", [1, 8])
def test_cell_grid_matches_the_tree_near_and_far(k: int) -> None:
    reference = _shell(6000, 6)
    rng = np.random.default_rng(7)
    near = reference[:800] + torch.from_numpy(0.004 * rng.normal(size=(800, 3)))
    far = torch.from_numpy(rng.normal(size=(40, 3)) * 3.0)  # outside the grid: brute-force fallback
    query = torch.cat([near, far])
    index = NeighbourIndex(reference, brute_force=True, grid=True)
    distances, found = index.query(query, k)
    expected, expected_index = cKDTree(reference.numpy()).query(query.numpy(), k=k)
    np.testing.assert_allclose(distances.numpy().reshape(expected.shape), expected, rtol=1e-6, atol=1e-9)
    # On a random shell exact ties do not occur: the same points are found, in order.
    np.testing.assert_array_equal(found.numpy().reshape(expected.shape)[:800], expected_index[:800])


@pytest.mark.parametrize("k", [1, 8])
def test_coarser_grid_levels_answer_queries_a_few_cells_off_exactly(k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neighbours, "GRID_LEVEL_SHARE", 0.25)  # a small reference: let a coarser level be built
    reference = _shell(6000, 16)
    rng = np.random.default_rng(17)
    direction = reference[:500]
    index = NeighbourIndex(reference, brute_force=True, grid=True)
    # Off the shell by 1-6 finest cells: beyond the finest grid's reach, within the next's.
    offset = torch.from_numpy(rng.uniform(1.0, 6.0, size=(500, 1))) * index._grids[0].cell
    query = direction * (1.0 + offset)
    distances, found = index.query(query, k)
    assert len(index._grids) >= 2  # the coarser level was built and used
    expected, expected_index = cKDTree(reference.numpy()).query(query.numpy(), k=k)
    np.testing.assert_allclose(distances.numpy().reshape(expected.shape), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(found.numpy().reshape(expected.shape), expected_index)


def test_large_neighbourhoods_come_from_a_coarser_grid_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neighbours, "GRID_LEVEL_SHARE", 0.25)
    reference = _shell(20000, 20)
    query = reference[::50] + torch.from_numpy(0.002 * np.random.default_rng(21).normal(size=(400, 3)))
    index = NeighbourIndex(reference, brute_force=True, grid=True)
    distances, found = index.query(query, 100)
    assert index._grids[0].reach < 100 <= index._grids[-1].reach  # skipped the finest level
    expected, expected_index = cKDTree(reference.numpy()).query(query.numpy(), k=100)
    np.testing.assert_allclose(distances.numpy(), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(found.numpy(), expected_index)


def test_neighbourhoods_the_finest_cells_seldom_hold_get_a_grid_sized_for_them() -> None:
    """16 neighbours of every point of two grouped clouds: the finest grid's discs hold fewer,
    so a grid sized for k answers nearly all queries itself, the same as the k-d tree."""
    clouds = [_shell(8000, 27), _shell(5000, 28) + 3.0]
    reference = torch.cat(clouds)
    sizes = [len(cloud) for cloud in clouds]
    index = NeighbourIndex(reference, brute_force=True, grid=True, sizes=sizes)
    groups = torch.cat([torch.full((size,), number) for number, size in enumerate(sizes)])
    distances, found = index.query(reference, 16, groups=groups)
    finest, sized = index._grids[0], index._sized[16]
    assert finest.disc_reach < 16 <= finest.reach  # the finest level would have been chosen before
    assert sized.cell > finest.cell
    assert float((distances[:, -1] > sized.cell).double().mean()) < 0.05  # few left to coarser searches
    for number, (cloud, start) in enumerate(zip(clouds, (0, sizes[0]), strict=True)):
        expected, expected_index = cKDTree(cloud.numpy()).query(cloud.numpy(), k=16)
        rows = groups == number
        np.testing.assert_allclose(distances[rows].numpy(), expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(found[rows].numpy() - start, expected_index)


@pytest.mark.parametrize("k", [1, 5])
def test_cell_grid_answers_the_same_in_small_pieces(k: int) -> None:
    """A small element budget splits the queries' candidate lists into many pieces (and
    gives a query with more candidates than the budget a piece of its own)."""
    reference = _shell(5000, 22)
    query = _shell(700, 23) * 1.001
    whole = NeighbourIndex(reference, brute_force=True, grid=True).query(query, k)
    pieces = NeighbourIndex(reference, brute_force=True, grid=True, max_elements=2000).query(query, k)
    assert torch.equal(whole[1], pieces[1])
    torch.testing.assert_close(whole[0], pieces[0], rtol=0, atol=0)


def test_queries_just_outside_the_points_box_are_answered_by_the_finest_grid() -> None:
    reference = _shell(6000, 24)
    index = NeighbourIndex(reference, brute_force=True, grid=True)
    cell = index._grids[0].cell
    # Beyond the shell's box along x by up to half a cell: interior cells of the finest grid.
    query = torch.tensor([[1.0 + 0.5 * cell * t, 0.01 * t, -0.02 * t] for t in np.linspace(0.1, 1.0, 30)],
                         dtype=torch.float64)
    distances, found = index._grids[0].nearest(query, 3)
    expected, expected_index = cKDTree(reference.numpy()).query(query.numpy(), k=3)
    np.testing.assert_allclose(distances.numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(found.numpy(), expected_index)


@pytest.mark.parametrize("k", [1, 6])
def test_grids_too_large_to_tabulate_search_the_keys_alike(k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = _shell(6000, 25)
    query = reference[:500] + torch.from_numpy(0.01 * np.random.default_rng(26).normal(size=(500, 3)))
    tabulated = NeighbourIndex(reference, brute_force=True, grid=True)
    monkeypatch.setattr(neighbours, "MAX_TABLE_CELLS", 0)
    searched = NeighbourIndex(reference, brute_force=True, grid=True)
    assert tabulated._grids[0].table is not None and searched._grids[0].table is None
    assert torch.equal(tabulated.query(query, k)[1], searched.query(query, k)[1])


def test_grid_levels_stop_where_brute_force_is_cheaper() -> None:
    index = NeighbourIndex(_shell(3000, 18), brute_force=True, grid=True)
    far = torch.from_numpy(np.random.default_rng(19).normal(size=(50, 3)) * 40.0)
    index.query(far)
    # Every level kept looks at under GRID_LEVEL_SHARE of the reference per query.
    assert all(grid.candidates <= GRID_LEVEL_SHARE * 3000 for grid in index._grids[1:])
    assert index._levels_complete


def test_cell_grid_handles_duplicate_reference_points() -> None:
    reference = torch.cat([_shell(500, 8)] * 3)
    query = _shell(100, 9)
    distances, _ = NeighbourIndex(reference, brute_force=True, grid=True).query(query, 3)
    expected, _ = cKDTree(reference.numpy()).query(query.numpy(), k=3)
    np.testing.assert_allclose(distances.numpy(), expected, rtol=1e-6, atol=1e-9)


def test_closest_point_field_is_close_to_the_nearest_point() -> None:
    reference = _shell(4000, 10)
    cell = 0.05
    field = ClosestPointField(reference, cell=cell, margin=0.5)
    rng = np.random.default_rng(11)
    query = torch.from_numpy(rng.uniform(-1.4, 1.4, size=(3000, 3)))
    distances, index = field.query(query)
    exact, _ = cKDTree(reference.numpy()).query(query.numpy())
    np.testing.assert_allclose(distances[:, 0].numpy(),
                               np.linalg.norm(reference.numpy()[index[:, 0].numpy()] - query.numpy(), axis=1))
    # The looked-up point is the nearest to the cell centre, at most a cell diagonal off.
    assert np.all(distances[:, 0].numpy() <= exact + np.sqrt(3) * field.cell + 1e-12)
    outside = field.query(torch.tensor([[50.0, -50.0, 3.0]], dtype=torch.float64))[0]
    assert torch.isfinite(outside).all()


def test_closest_point_field_grows_its_cell_to_stay_small() -> None:
    field = ClosestPointField(_shell(1000, 12), cell=1e-4, margin=0.1, max_cells=10_000)
    assert field.table.numel() <= 2 * 10_000
    assert field.cell > 1e-4


def _grouped_truth(clouds: list[torch.Tensor], query: torch.Tensor, groups: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the k nearest points of its own cloud by a k-d tree, indexed in the clouds end to end."""
    starts = np.cumsum([0] + [len(c) for c in clouds])
    distances, index = np.zeros((len(query), k)), np.zeros((len(query), k), dtype=np.int64)
    for group, cloud in enumerate(clouds):
        rows = np.flatnonzero(groups == group)
        found_distances, found = cKDTree(cloud.numpy()).query(query.numpy()[rows], k=k)
        distances[rows], index[rows] = found_distances.reshape(len(rows), k), found.reshape(len(rows), k) + starts[group]
    return distances, index


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("mode", ["tree", "grid", "brute", "grid without table"])
def test_grouped_index_answers_each_query_from_its_own_cloud(k: int, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Three clouds over the same region (shells of one radius, different samples): a query
    # near one cloud's point is as near the others', so only the grouping keeps them apart.
    clouds = [_shell(n, seed) for n, seed in ((3000, 30), (2200, 31), (4100, 32))]
    rng = np.random.default_rng(33)
    groups = rng.integers(0, 3, size=900)
    near = torch.cat(clouds)[rng.integers(0, 9300, size=800)] * (1 + 0.01 * torch.from_numpy(rng.normal(size=(800, 1))))
    far = torch.from_numpy(rng.normal(size=(100, 3)) * 3.0)  # beyond every grid level: brute force, by group
    query = torch.cat([near, far])
    if mode == "grid without table":
        monkeypatch.setattr(neighbours, "MAX_TABLE_CELLS", 0)
    index = NeighbourIndex(torch.cat(clouds), brute_force=mode != "tree", grid=mode.startswith("grid"),
                           sizes=[len(c) for c in clouds])
    assert bool(index._grids) == mode.startswith("grid")
    distances, found = index.query(query, k, groups=torch.from_numpy(groups))
    expected, expected_index = _grouped_truth(clouds, query, groups, k)
    np.testing.assert_allclose(distances.numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(found.numpy(), expected_index)


def test_grouped_index_checks_sizes_and_groups() -> None:
    clouds = [_shell(300, 34), _shell(200, 35)]
    with pytest.raises(InputError, match="sizes must be positive cloud sizes adding up to the reference's 500"):
        NeighbourIndex(torch.cat(clouds), sizes=[300, 100])
    grouped = NeighbourIndex(torch.cat(clouds), sizes=[300, 200])
    with pytest.raises(InputError, match="needs each query's group"):
        grouped.query(clouds[0][:5])
    with pytest.raises(InputError, match=r"shape \(5,\)"):
        grouped.query(clouds[0][:5], groups=torch.zeros(4, dtype=torch.long))
    with pytest.raises(InputError, match="integer cloud number"):
        grouped.query(clouds[0][:5], groups=torch.zeros(5))
    with pytest.raises(InputError, match="cloud numbers 0 to 1"):
        grouped.query(clouds[0][:5], groups=torch.tensor([0, 1, 2, 0, 0]))
    with pytest.raises(InputError, match="only it takes groups"):
        NeighbourIndex(clouds[0]).query(clouds[0][:5], groups=torch.zeros(5, dtype=torch.long))


def test_grid_spacing_of_grouped_clouds_is_measured_within_each_cloud() -> None:
    """The cell size of a grouped grid comes from the sampled points' nearest other point of
    their own cloud: the same median as a k-d tree per cloud gives over that sample. Clouds of
    one region at different densities: across clouds the nearest point would often be
    another cloud's, closer."""
    clouds = [_shell(n, seed) for n, seed in ((3000, 40), (500, 41), (1, 42), (6000, 43))]
    joined = torch.cat(clouds)
    sizes = [len(c) for c in clouds]
    group = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    sample = torch.randperm(len(joined), generator=torch.Generator().manual_seed(0))[:neighbours.SPACING_SAMPLE]
    truth = []
    for row in sample.tolist():
        cloud = int(group[row])
        if sizes[cloud] > 1:
            points = clouds[cloud].numpy()
            truth.append(cKDTree(points).query(joined[row].numpy(), k=2)[0][1])
    spacing = neighbours._median_spacing(joined, group)
    lower_median = float(np.sort(truth)[(len(truth) - 1) // 2])  # torch's median of an even count
    assert spacing == pytest.approx(lower_median, rel=1e-9)
    assert spacing > 1.2 * neighbours._median_spacing(joined)  # the clouds mixed: closer neighbours
