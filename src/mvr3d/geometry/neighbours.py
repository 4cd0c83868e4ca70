"""k-nearest-neighbour look-ups on whichever device the points live on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from mvr3d.errors import InputError
from mvr3d.geometry.joined import cloud_numbers

# Distances held at once by the brute-force search.
DEFAULT_MAX_ELEMENTS = 2**27
# Below this many queries a k-d tree answers faster on one thread than by starting workers.
PARALLEL_QUERIES = 20_000
# On an accelerator, references at least this large answer single-neighbour queries from a
# cell grid: brute force costs queries x reference, the grid queries x 27 cells.
GRID_MIN_POINTS = 20_000
# Grid cell edge in median nearest-sample spacings: a few samples per cell of a surface.
GRID_CELL_SPACINGS = 3.0
# Reference samples whose nearest-sample spacing sets the grid's cell size.
SPACING_SAMPLE = 2048
# Queries the grid is unsure of go to a grid with cells this many times wider, and so on
# while such a grid looks at under GRID_LEVEL_SHARE of the reference per query; the rest
# go to brute force. A scan point off its template by a defect, or an ICP candidate pose
# partly off the part, lies a few cells away: brute force over a 700 k-sample fused
# template for each of them cost more than all the grid queries together. A grid candidate
# costs many times a brute-force distance (gathers, keys, an atomic minimum), so levels
# stop early: on one H100, a share of 0.05 instead of 0.25 took cycloidal's scoring from
# 60.0 to 49.5 ms a scan (its misregistered scans' far points), the others 1-4 ms less
# (benchmarks/template_profile.py, docs/accuracy.md); factor 2 instead of 4 was slower.
GRID_LEVEL_FACTOR = 4
GRID_LEVEL_SHARE = 0.05
# A query of k neighbours that the finest grid's cells would seldom hold (a disc of one cell
# edge around a surface point holding under k samples) gets a grid of its own, with cells wide
# enough for a disc of SIZED_GRID_MARGIN x k samples. Without it, 16 neighbours on scans
# (the density of geometry/density.py) left 86 % of the queries unsure on the finest grid and
# sent them to brute force, the next level being too coarse to pay: 46.6 s for 4 scans of 66 k
# points on a 2-core CPU running the grid path, 10.4 s with this; on one H100 the template
# default had fallen from 22.57 to 8.48 objects/s (docs/accuracy.md, tenth session).
SIZED_GRID_MARGIN = 3.0
# Grids of at most this many cells (int32 each) find a cell's points from a table instead
# of a binary search over the occupied cells' keys.
MAX_TABLE_CELLS = 2**26


class NeighbourIndex:
    """Nearest points of a fixed reference cloud, queried many times.

    On the CPU a k-d tree (built once); on an accelerator an exact chunked brute-force
    search, which there beats a tree and keeps the points on the device, or with ``grid``
    cell grids (default: for references of at least ``GRID_MIN_POINTS``; the tree ignores
    it), one level of cells per neighbourhood size, built on first use.

    With ``sizes`` the reference is several clouds end to end (the first ``sizes[0]``
    points, then the next ``sizes[1]``, ...) and each query names its cloud (``groups``):
    it gets that cloud's nearest points, indexed in the whole reference. One grouped index
    answers many clouds' queries in one pass where separate indices would take one pass
    (and its kernel launches and host syncs) each.
    """

    def __init__(
        self, reference: Tensor, brute_force: bool | None = None, max_elements: int = DEFAULT_MAX_ELEMENTS,
        grid: bool | None = None, sizes: Sequence[int] | None = None,
    ) -> None:
        self.reference = reference
        self.max_elements = max_elements
        self.sizes = _check_sizes(sizes, len(reference))
        self._starts = [0, *np.cumsum(self.sizes).tolist()] if self.sizes else [0, len(reference)]
        if brute_force is None:
            brute_force = reference.device.type != "cpu"
        self._trees = [] if brute_force else [cKDTree(part.double().numpy()) for part in self._parts(reference)]
        if brute_force:
            # Centred float32 (fast matrix units) only picks the neighbours; distances are
            # then recomputed exactly from the original coordinates. Rows [-2 r, |r|^2, 1]
            # against queries' [q, 1, |q|^2] give |q - r|^2 from one matrix product: with
            # three coordinates the product is bound by writing its output, and separate
            # passes adding the norms cost as much again.
            # Each cloud centred on its own mean: float32 ranking errors grow with the
            # coordinates' size, so one origin for clouds far apart would cost precision.
            self._origins = [part.double().mean(dim=0) for part in self._parts(reference)]
            centred = torch.cat([(part.double() - origin).float()
                                 for part, origin in zip(self._parts(reference), self._origins, strict=True)])
            self._augmented = torch.cat([-2 * centred, centred.square().sum(dim=1, keepdim=True),
                                         torch.ones_like(centred[:, :1])], dim=1)
        if grid is None:
            grid = len(reference) >= GRID_MIN_POINTS
        grid = grid and brute_force and min(self.sizes or [len(reference)]) > 1
        self._grids = [CellGrid(reference, max_elements, sizes=self.sizes)] if grid else []
        self._levels_complete = not self._grids
        self._sized: dict[int, CellGrid] = {}

    def _parts(self, values: Tensor) -> list[Tensor]:
        return [values[a:b] for a, b in zip(self._starts, self._starts[1:], strict=False)]

    def query(self, query: Tensor, k: int = 1, groups: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Distances and indices, both (Q, k), nearest first; k is capped at the reference
        size (a grouped index's smallest cloud). A grouped index needs ``groups`` (Q,), the
        cloud each query searches."""
        groups = self._check_groups(groups, len(query))
        k = min(k, min(self.sizes) if self.sizes else self.reference.shape[0])
        if query.shape[0] == 0 or k == 0:
            empty = torch.zeros((query.shape[0], k), device=query.device)
            return empty, empty.long()
        if self._trees:
            return self._from_trees(query, k, groups)
        if self._grids:
            return self._from_grid(query, k, groups)
        return self._brute_force(query, k, groups)

    def _check_groups(self, groups: Tensor | None, count: int) -> Tensor | None:
        if (groups is None) != (self.sizes is None):
            raise InputError("a grouped index (sizes) needs each query's group, and only it takes groups")
        if groups is None:
            return None
        if groups.shape != (count,) or groups.is_floating_point() or groups.dtype == torch.bool:
            raise InputError(f"groups must hold one integer cloud number per query, shape ({count},), got "
                             f"{groups.dtype} of shape {tuple(groups.shape)}")
        # One host sync per query: a wrong number would otherwise read another cloud's cells.
        if count and bool(((groups < 0) | (groups >= len(self.sizes))).any()):
            raise InputError(f"groups must be cloud numbers 0 to {len(self.sizes) - 1}")
        return groups.long()

    def _from_trees(self, query: Tensor, k: int, groups: Tensor | None) -> tuple[Tensor, Tensor]:
        points = query.detach().double().cpu().numpy()
        if groups is None:
            workers = -1 if len(points) >= PARALLEL_QUERIES else 1
            distances, index = self._trees[0].query(points, k=k, workers=workers)
            shape = (len(points), k)
            return torch.from_numpy(distances.reshape(shape)), torch.from_numpy(index.reshape(shape)).long()
        distances, index = np.zeros((len(points), k)), np.zeros((len(points), k), dtype=np.int64)
        labels = groups.cpu().numpy()
        for group in np.unique(labels):
            rows = np.flatnonzero(labels == group)
            workers = -1 if len(rows) >= PARALLEL_QUERIES else 1
            found_distances, found = self._trees[group].query(points[rows], k=k, workers=workers)
            distances[rows] = found_distances.reshape(len(rows), k)
            index[rows] = found.reshape(len(rows), k) + self._starts[group]
        return torch.from_numpy(distances), torch.from_numpy(index)

    def _from_grid(self, query: Tensor, k: int, groups: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Exact nearest points: from the first grid whose cells reach k points and the
        coarser ones for queries it is unsure of, else by brute force."""
        level = self._first_level(k)
        if level is None:
            return self._brute_force(query, k, groups)
        grid = self._grid_level(level)
        if level == 0 and grid.disc_reach < k:
            grid = self._sized_grid(k)
            while (coarser := self._grid_level(level)) is not None and coarser.cell <= grid.cell:
                level += 1
        else:
            level += 1
        # Every query asks the first grid: no gathers and scatters of all of them.
        distances, index = grid.nearest(query, k, groups)
        unsure = torch.nonzero(distances[:, -1] > grid.cell).flatten()
        pick = (lambda rows: None) if groups is None else (lambda rows: groups[rows])
        while len(unsure) and (grid := self._grid_level(level)) is not None:
            distances[unsure], index[unsure] = grid.nearest(query[unsure], k, pick(unsure))
            unsure = unsure[distances[unsure, -1] > grid.cell]
            level += 1
        if len(unsure):
            distances[unsure], index[unsure] = self._brute_force(query[unsure], k, pick(unsure))
        return distances, index

    def _first_level(self, k: int) -> int | None:
        """The finest grid level whose cells typically reach k points (None: no level does
        before brute force is cheaper)."""
        level = 0
        while (grid := self._grid_level(level)) is not None:
            if grid.reach >= k:
                return level
            level += 1
        return None

    def _sized_grid(self, k: int) -> CellGrid:
        """A grid for k neighbours (built on first use): cells wide enough that a disc of one
        cell edge around a surface point typically holds ``SIZED_GRID_MARGIN`` x k samples."""
        if k not in self._sized:
            finest = self._grids[0]
            widen = (SIZED_GRID_MARGIN * k / finest.disc_reach) ** 0.5
            self._sized[k] = CellGrid(self.reference, self.max_elements, cell=finest.cell * widen, sizes=self.sizes)
        return self._sized[k]

    def _grid_level(self, level: int) -> CellGrid | None:
        """The grid with cells ``GRID_LEVEL_FACTOR ** level`` times the finest, built on first
        use; None once a grid would look at too much of the reference to beat brute force."""
        if level < len(self._grids):
            return self._grids[level]
        if self._levels_complete:
            return None
        grid = CellGrid(self.reference, self.max_elements, cell=self._grids[-1].cell * GRID_LEVEL_FACTOR, sizes=self.sizes)
        if grid.candidates > GRID_LEVEL_SHARE * len(self.reference) / len(self._starts[1:]):
            self._levels_complete = True
            return None
        self._grids.append(grid)
        return grid

    def _brute_force(self, query: Tensor, k: int, groups: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if groups is None:
            return self._brute_force_span(query, k, 0)
        distances = torch.empty((len(query), k), dtype=torch.float64, device=query.device)
        index = torch.empty((len(query), k), dtype=torch.long, device=query.device)
        # Queries sorted by cloud, split by one host sync (not one search per cloud).
        order = torch.argsort(groups, stable=True)
        for group, rows in enumerate(order.split(torch.bincount(groups, minlength=len(self.sizes)).tolist())):
            if len(rows):
                distances[rows], index[rows] = self._brute_force_span(query[rows], k, group)
        return distances, index

    def _brute_force_span(self, query: Tensor, k: int, group: int) -> tuple[Tensor, Tensor]:
        """The k nearest points of cloud ``group`` (indices into the whole reference)."""
        start, stop = self._starts[group : group + 2]
        rows = max(1, self.max_elements // (stop - start))
        indices = []
        for chunk in query.split(rows):
            # Squared distances, no square root: they only rank candidates; exact distances follow.
            centred = (chunk.double() - self._origins[group]).float()
            augmented = torch.cat([centred, torch.ones_like(centred[:, :1]), centred.square().sum(dim=1, keepdim=True)], dim=1)
            squared = augmented @ self._augmented[start:stop].T
            if k == 1:
                indices.append(squared.argmin(dim=1, keepdim=True))
            else:
                indices.append(squared.topk(k, dim=1, largest=False, sorted=True).indices)
        index = torch.cat(indices) + start
        distances = (self.reference[index].double() - query.double()[:, None]).norm(dim=2)
        if k > 1:  # float32 may have swapped near-ties; keep the exact order
            distances, order = distances.sort(dim=1, stable=True)
            index = index.gather(1, order)
        return distances, index


def _check_sizes(sizes: Sequence[int] | None, total: int) -> list[int] | None:
    if sizes is None:
        return None
    sizes = [int(size) for size in sizes]
    if not sizes or min(sizes) < 1 or sum(sizes) != total:
        raise InputError(f"sizes must be positive cloud sizes adding up to the reference's {total} points, got {sizes[:8]}")
    return sizes


def centre_neighbourhoods(clouds: Sequence[Tensor], centres: Sequence[Tensor | None], k: int,
                          chunk: int = 2**18) -> tuple[Tensor, Tensor, list[int], Iterator[tuple[slice, Tensor]]]:
    """The ``k`` nearest points of each cloud's ``centres`` (indices; None: every point) among
    that cloud's points, all clouds searched in one grouped index. Returns the clouds joined
    end to end (float64, on the first cloud's device), the centres as rows of it, the number
    of centres per cloud, and the neighbourhoods ``chunk`` centres at a time: (slice of the
    centre rows, (c, k) indices into the joined clouds)."""
    device = clouds[0].device
    sizes = [len(cloud) for cloud in clouds]
    picks = [torch.arange(size, device=device) if chosen is None else chosen.to(device)
             for size, chosen in zip(sizes, centres, strict=True)]
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    rows = torch.cat([pick + start for pick, start in zip(picks, starts, strict=True)])
    joined = torch.cat([cloud.to(device, torch.float64) for cloud in clouds])
    counts = [len(pick) for pick in picks]
    groups = cloud_numbers(counts, device)
    index = NeighbourIndex(joined, grid=True, sizes=sizes)

    def pieces() -> Iterator[tuple[slice, Tensor]]:
        for start in range(0, len(rows), chunk):
            part = slice(start, start + chunk)
            yield part, index.query(joined[rows[part]], k, groups=groups[part])[1].to(device)

    return joined, rows, counts, pieces()


def nearest_neighbours(reference: Tensor, query: Tensor, k: int) -> Tensor:
    """(Q, k) int64 indices into ``reference`` of each query point's k nearest points."""
    return NeighbourIndex(reference).query(query, k)[1]


def brute_force_neighbours(reference: Tensor, query: Tensor, k: int, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    """Exact k-NN by distance matrices over chunks of queries, on any device."""
    return NeighbourIndex(reference, brute_force=True, max_elements=max_elements).query(query, k)[1]


class CellGrid:
    """Reference points sorted into cubic cells; a query looks only at its own cell and
    the 26 around it.

    That finds the true k nearest points whenever the k-th lies within one cell edge
    (``cell``) of the query, since they then all sit in those cells; a larger k-th
    distance (infinity: too few found) may be wrong, and the caller searches those
    queries again. Distances are float64 from the original coordinates.

    Each query's candidates are the points of its occupied cells only, listed end to end
    (a ragged list), not 27 cells padded to the fullest: on surface samples a cell holds
    about 4 points and the fullest 15-20, so padding made 90 % of the work. Candidates are
    ranked in float32 from their places within their cells (one cell's points are contiguous
    in memory); the chosen points' distances are then recomputed exactly.

    With ``sizes`` (several clouds end to end, see :class:`NeighbourIndex`) every cloud has
    its own copy of the cells: a cell's key is offset by its cloud's number times the cells
    of one copy, so a query only ever sees its own cloud's points.
    """

    def __init__(self, reference: Tensor, max_elements: int = DEFAULT_MAX_ELEMENTS, cell: float | None = None,
                 sizes: Sequence[int] | None = None) -> None:
        self.reference = reference.double()
        self.max_elements = max_elements
        self.group = None if sizes is None else cloud_numbers(sizes, reference.device)
        self.cell = GRID_CELL_SPACINGS * _median_spacing(self.reference, self.group) if cell is None else float(cell)
        # Two spare cells below and three above the points: every cell within one of a
        # point's is an interior cell (see _tabulated_runs).
        self.origin = self.reference.min(dim=0).values - 2 * self.cell
        cells = self._cells(self.reference)
        self.dims = cells.max(dim=0).values + 3
        self.copy_cells = int(self.dims.prod())
        self.copies = 1 if sizes is None else len(sizes)
        keys, self.order = self._keys(cells, self.group).sort()
        self.keys, counts = torch.unique_consecutive(keys, return_counts=True)
        self.starts = torch.cumsum(counts, 0) - counts
        self.counts = counts
        self.slots = int(counts.max())
        self._reach = 9.0 * float(counts.double().mean())  # kept: a property read per query must not sync
        # Each point's place within its own cell, in float32: differences of such small
        # numbers (plus whole-cell steps) keep float32 ranking errors to ~1e-7 of a cell.
        self.within_cell = (self.reference[self.order] - self._corner(cells[self.order])).float()
        offsets = torch.stack(torch.meshgrid(*[torch.arange(-1, 2)] * 3, indexing="ij"), dim=-1).reshape(-1, 3)
        self.offsets = offsets.to(reference.device)
        self.offset_steps = (self.offsets.double() * self.cell).float()
        self.table = self._slot_table()

    def _slot_table(self) -> Tensor | None:
        """Each cell's position among the occupied cells (-1: empty); None for grids too
        large to tabulate."""
        cells = self.copy_cells * self.copies
        if cells > MAX_TABLE_CELLS:
            return None
        table = torch.full((cells,), -1, dtype=torch.int32, device=self.keys.device)
        table[self.keys] = torch.arange(len(self.keys), dtype=torch.int32, device=self.keys.device)
        return table

    @property
    def candidates(self) -> int:
        """Most reference points a query can look at: 27 cells as full as the fullest."""
        return 27 * self.slots

    @property
    def reach(self) -> float:
        """Points a query on the surface typically finds within one cell edge: a surface
        crosses about 9 of its 27 cells, each holding the mean occupied count."""
        return self._reach

    @property
    def disc_reach(self) -> float:
        """Points a query on a surface typically finds within one cell edge, the k-th
        nearest being sure only there: a disc of that radius, pi cells' worth of surface."""
        return self._reach * torch.pi / 9.0

    def nearest(self, query: Tensor, k: int = 1, groups: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Float64 distances and indices, both (Q, k), nearest first; inf where fewer than
        k points lie in the 27 cells. A grid of several clouds needs each query's
        ``groups`` (Q,)."""
        query = query.to(self.reference.device, torch.float64)
        rows = max(1, self.max_elements // (27 * 8))  # (rows, 27) cell runs, some (rows, 27, 3)
        found = []
        for start in range(0, len(query), rows):
            chunk = query[start : start + rows]
            count, first, base = self._cell_runs(chunk, None if groups is None else groups[start : start + rows])
            local = (chunk - self._corner(base)).float()
            for piece, total in self._pieces(count.sum(dim=1)):
                found.append(self._rank(chunk[piece], local[piece], count[piece], first[piece], k, total))
        if len(found) <= 1:
            return found[0] if found else (torch.zeros((0, k), dtype=torch.float64, device=query.device),
                                           torch.zeros((0, k), dtype=torch.long, device=query.device))
        return torch.cat([d for d, _ in found]), torch.cat([i for _, i in found])

    def _cell_runs(self, query: Tensor, groups: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Per query and neighbouring cell (q, 27): how many points the cell holds and where
        they start in cell order; and the cell (q, 3) the 27 are around."""
        if self.table is not None:
            return self._tabulated_runs(query, groups)
        cells = self._cells(query)[:, None] + self.offsets  # (q, 27, 3)
        inside = ((cells >= 0) & (cells < self.dims)).all(dim=2)
        keys = self._keys(cells.clamp_min(0).minimum(self.dims - 1), None if groups is None else groups[:, None])
        slot = torch.searchsorted(self.keys, keys).clamp_max(len(self.keys) - 1)
        count = torch.where((self.keys[slot] == keys) & inside, self.counts[slot], 0)
        return count, self.starts[slot], cells[:, 13]

    def _tabulated_runs(self, query: Tensor, groups: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`_cell_runs` from the slot table. Keys are linear in the cell, so the 27
        neighbours' keys are the query cell's key plus fixed steps; a query outside the
        grid's interior gets no candidates (infinity: the caller searches it again)."""
        cells = self._cells(query)
        interior = ((cells >= 1) & (cells <= self.dims - 2)).all(dim=1, keepdim=True)
        cells = cells.clamp_min(1).minimum(self.dims - 2)
        slot = self.table[self._keys(cells, groups)[:, None] + self._keys(self.offsets)].long()
        occupied = (slot >= 0) & interior
        slot = slot.clamp_min(0)
        return torch.where(occupied, self.counts[slot], 0), self.starts[slot], cells

    def _pieces(self, totals: Tensor) -> list[tuple[slice, int]]:
        """Consecutive runs of queries holding at most an eighth of ``max_elements``
        candidates each (a query with more is a run of its own), with their candidates."""
        budget = max(1, self.max_elements // 8)
        ends = torch.cumsum(totals, 0).cpu().numpy()
        pieces, begin = [], 0
        while begin < len(ends):
            before = int(ends[begin - 1]) if begin else 0
            stop = max(begin + 1, int(np.searchsorted(ends, before + budget, side="right")))
            pieces.append((slice(begin, stop), int(ends[stop - 1]) - before))
            begin = stop
        return pieces

    def _rank(self, query: Tensor, local: Tensor, count: Tensor, first: Tensor, k: int,
              total: int) -> tuple[Tensor, Tensor]:
        """The k best of each query's ragged candidate list (``total`` candidates in all;
        see the class docstring)."""
        runs = count.flatten()
        run = torch.repeat_interleave(runs, output_size=total)
        run_start = torch.cumsum(runs, 0) - runs
        position = first.flatten()[run] + torch.arange(total, device=query.device) - run_start[run]
        owner = torch.div(run, 27, rounding_mode="floor")
        step = self.offset_steps[run % 27]  # from the query's cell to the candidate's
        gap = (self.within_cell[position] + step - local[owner]).square().sum(dim=1)
        # Non-negative float32 values order as their bit patterns do: one int64 key carries
        # the gap in its high half and a tie-breaking position (or owner) in the other.
        bits = gap.view(torch.int32).long()
        if k == 1:
            chosen, found = self._nearest_one(len(query), owner, (bits << 32) | position)
        else:
            chosen, found = self._nearest_k(position[torch.sort((owner << 32) | bits, stable=True).indices],
                                            count.sum(dim=1), k)
        index = torch.where(found, self.order[chosen.clamp_max(len(self.order) - 1)], 0)
        distances = (self.reference[index] - query[:, None]).norm(dim=2).masked_fill(~found, torch.inf)
        if k > 1:  # float32 may have swapped near-ties; keep the exact order
            distances, order = distances.sort(dim=1, stable=True)
            index = index.gather(1, order)
        return distances, index

    @staticmethod
    def _nearest_one(queries: int, owner: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
        """Per query, the cell-order position (low half of its smallest key) and whether it
        had any candidate, both (queries, 1)."""
        none = torch.iinfo(torch.long).max
        best = torch.full((queries,), none, device=keys.device).scatter_reduce_(0, owner, keys, "amin")
        return (best & 0xFFFFFFFF)[:, None], (best != none)[:, None]

    @staticmethod
    def _nearest_k(ranked: Tensor, totals: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Per query, the cell-order positions of its k first candidates in ``ranked`` (every
        query's candidates in turn, nearest first; ``totals`` of them each) and which exist."""
        column = torch.arange(k, device=ranked.device)
        found = column < totals[:, None]
        at = (torch.cumsum(totals, 0) - totals)[:, None] + column
        chosen = ranked[at.clamp_max(len(ranked) - 1)] if len(ranked) else torch.zeros_like(at)
        return chosen, found

    def _corner(self, cells: Tensor) -> Tensor:
        return self.origin + cells.double() * self.cell

    def _cells(self, points: Tensor) -> Tensor:
        return torch.floor((points.double() - self.origin) / self.cell).long()

    def _keys(self, cells: Tensor, groups: Tensor | None = None) -> Tensor:
        """Linear cell keys; with ``groups``, in that cloud's copy of the cells."""
        keys = (cells[..., 0] * self.dims[1] + cells[..., 1]) * self.dims[2] + cells[..., 2]
        return keys if groups is None else keys + groups * self.copy_cells


def _median_spacing(reference: Tensor, group: Tensor | None = None) -> float:
    """Median distance from a seeded sample of reference points to their nearest other point
    (of the same cloud, given each point's ``group``); a positive floor keeps the grid finite
    for duplicate points."""
    generator = torch.Generator().manual_seed(0)
    sample = torch.randperm(len(reference), generator=generator)[:SPACING_SAMPLE].to(reference.device)
    nearest = []
    for rows, start, stop in _sample_spans(sample, group, len(reference)):
        for chunk in rows.split(max(1, DEFAULT_MAX_ELEMENTS // (8 * (stop - start)))):
            gaps = torch.cdist(reference[chunk], reference[start:stop])
            gaps[torch.arange(len(chunk), device=reference.device), chunk - start] = torch.inf
            nearest.append(gaps.min(dim=1).values)
    spacing = float(torch.cat(nearest).median()) if nearest else 0.0
    extent = float((reference.max(dim=0).values - reference.min(dim=0).values).norm())
    return max(spacing, 1e-9 * max(extent, 1.0))


def _sample_spans(sample: Tensor, group: Tensor | None, total: int) -> list[tuple[Tensor, int, int]]:
    """The sampled rows of each cloud with that cloud's span [start, stop) of the reference
    (clouds lie end to end, so each is one span): a sample is measured against its own cloud
    only, which costs the sample times one cloud instead of times all of them."""
    if group is None:
        return [(sample, 0, total)]
    counts = torch.bincount(group).tolist()
    starts = np.cumsum([0, *counts]).tolist()
    owners = group[sample]
    order = torch.argsort(owners, stable=True)
    per_cloud = torch.bincount(owners, minlength=len(counts)).tolist()
    return [(rows, starts[cloud], starts[cloud + 1])
            for cloud, rows in enumerate(sample[order].split(per_cloud)) if len(rows) and counts[cloud] > 1]
