"""Comparison baselines: FPFH, coreset, ICP and the four detectors on toy shapes."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from mvr3d.baselines import BASELINES, greedy_coreset
from mvr3d.baselines.registration import RegistrationDetector
from mvr3d.errors import InputError
from mvr3d.geometry import NeighbourIndex, voxel_downsample
from mvr3d.geometry import aligner as aligner_module
from mvr3d.geometry.fpfh import fpfh
from mvr3d.geometry.icp import icp


def sphere(n: int, rng: np.random.Generator, noise: float = 0.005) -> np.ndarray:
    points = rng.normal(size=(n, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points + rng.normal(scale=noise, size=points.shape)


def bumpy(n: int, rng: np.random.Generator) -> np.ndarray:
    """A star-shaped blob without symmetries, so every local patch differs."""
    unit = sphere(n, rng, noise=0.0)
    radius = 1 + 0.2 * np.sin(3 * unit[:, 0]) * np.cos(2 * unit[:, 1]) + 0.1 * unit[:, 2] ** 2
    return unit * radius[:, None]


def box(
    n: int, rng: np.random.Generator, sides: tuple[float, float, float] = (1.0, 0.6, 0.3)
) -> np.ndarray:
    """Points on the surface of an axis-aligned box centred at the origin."""
    half = np.asarray(sides) / 2
    points = rng.uniform(-half, half, size=(n, 3))
    axis = rng.integers(3, size=n)
    points[np.arange(n), axis] = half[axis] * rng.choice([-1.0, 1.0], size=n)
    return points


def with_bulge(
    points: np.ndarray, fraction: float = 0.05, height: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Push the ``fraction`` of points in one cap outward by ``height`` (sphere radius 1)."""
    direction = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    cos = unit @ direction
    mask = cos > np.quantile(cos, 1 - fraction)
    bulged = points.copy()
    bulged[mask] += height * unit[mask]
    return bulged, mask


# ------------------------------------------------------------------------ FPFH
def test_fpfh_rotation_invariant() -> None:
    rng = np.random.default_rng(0)
    points = bumpy(3000, rng)
    rot = Rotation.from_euler("xyz", [40, -25, 70], degrees=True).as_matrix()
    a = fpfh(points, k=24)
    b = fpfh(points @ rot.T + [0.5, -1.0, 2.0], k=24)
    assert a.shape == (3000, 33) and a.dtype == np.float32
    assert np.abs(a - b).mean() < 0.01 * np.abs(a).mean()
    # Each sub-histogram of the SPFH sums to 100, and so does the neighbour part.
    np.testing.assert_allclose(a.reshape(-1, 3, 11).sum(axis=2), 200, rtol=1e-4)


def test_fpfh_separates_plane_and_sphere() -> None:
    rng = np.random.default_rng(1)
    plane = np.c_[rng.uniform(-1, 1, size=(3000, 2)), np.zeros(3000)]
    mean_sphere_a = fpfh(sphere(3000, rng, noise=0.0)).mean(axis=0)
    mean_sphere_b = fpfh(sphere(3000, rng, noise=0.0)).mean(axis=0)
    mean_plane = fpfh(plane).mean(axis=0)
    within = np.abs(mean_sphere_a - mean_sphere_b).sum()
    assert np.abs(mean_plane - mean_sphere_a).sum() > 10 * within


def test_voxel_downsample_maps_back() -> None:
    rng = np.random.default_rng(2)
    points = rng.uniform(size=(5000, 3))
    sampled, inverse = voxel_downsample(points, 0.1)
    assert len(sampled) <= 1000 and inverse.shape == (5000,)
    assert np.abs(sampled[inverse] - points).max() <= 0.1 * np.sqrt(3)
    with pytest.raises(InputError):
        voxel_downsample(points, 0.0)


# --------------------------------------------------------------------- coreset
@pytest.mark.parametrize("dim", [16, 200])  # 200 > 128 exercises the random projection
def test_coreset_distinct_and_covering(dim: int) -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(2000, dim)).astype(np.float32)
    radii = []
    for count in (10, 50, 200):
        index = greedy_coreset(data, count, seed=0)
        assert len(index) == count and len(np.unique(index)) == count
        radii.append(cKDTree(data[index]).query(data)[0].max())
    assert radii[0] > radii[1] > radii[2]
    np.testing.assert_array_equal(
        greedy_coreset(data, 50, seed=0), greedy_coreset(data, 50, seed=0)
    )


# ------------------------------------------------------------------------- ICP
@pytest.mark.parametrize("point_to_plane", [False, True])
def test_icp_recovers_rigid_motion_of_partial_cloud(point_to_plane: bool) -> None:
    rng = np.random.default_rng(4)
    target = box(20000, rng)
    partial = target[target[:, 0] + 0.5 * target[:, 2] > 0.1][:3000]
    rot = Rotation.from_euler("zyx", [20, -12, 8], degrees=True).as_matrix()
    shift = np.array([0.08, -0.05, 0.04])
    source = partial @ rot.T + shift
    est_rot, est_shift, residual = icp(source, target, iterations=40, point_to_plane=point_to_plane)
    # The estimate must undo the motion: est_rot = rot^-1, est_shift = -rot^-1 shift.
    angle = Rotation.from_matrix(est_rot @ rot).magnitude()
    assert np.degrees(angle) < 1.0
    np.testing.assert_allclose(est_shift, -rot.T @ shift, atol=0.01)
    assert residual < 0.01


def test_registration_finds_pose_of_rotated_partial_scan() -> None:
    rng = np.random.default_rng(5)
    train = [box(8000, rng) for _ in range(2)]
    test = box(8000, rng)
    test = test[test[:, 2] > -0.1]  # partial: most of one face missing
    rot = Rotation.from_euler("xyz", [130, 40, -75], degrees=True).as_matrix()
    det = RegistrationDetector(seed=0).fit(train)
    result = det.score(test @ rot.T + [3.0, 1.0, -2.0])
    assert np.median(result.point_scores) < 0.02


def test_registration_brute_force_search_matches_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU path (brute-force neighbours) finds the same pose and scores as the CPU's k-d tree."""
    rng = np.random.default_rng(8)
    train = [box(6000, rng) for _ in range(2)]
    test = box(5000, rng)
    test = test[test[:, 2] > -0.1] @ Rotation.from_euler("xyz", [30, -50, 100], degrees=True).as_matrix().T
    tree = RegistrationDetector(seed=0).fit(train).score(test)
    monkeypatch.setattr(aligner_module, "NeighbourIndex", functools.partial(NeighbourIndex, brute_force=True))
    brute = RegistrationDetector(seed=0).fit(train).score(test)
    np.testing.assert_allclose(brute.point_scores, tree.point_scores, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------- detectors
@pytest.fixture(scope="module")
def toy() -> dict[str, np.ndarray]:
    # Several points per voxel, as in real scans: with ~1 point per voxel the raw patch
    # moments are dominated by the sampling pattern.
    rng = np.random.default_rng(6)
    train = [sphere(20000, rng) for _ in range(4)]
    good = sphere(20000, rng)
    bad, mask = with_bulge(sphere(20000, rng))
    return {"train": train, "good": good, "bad": bad, "mask": mask}


@pytest.fixture(scope="module", params=sorted(BASELINES))
def fitted(request: pytest.FixtureRequest, toy: dict) -> object:
    return BASELINES[request.param](seed=0).fit(toy["train"])


def test_baseline_flags_bulge(fitted: object, toy: dict) -> None:
    good = fitted.score(toy["good"])
    bad = fitted.score(toy["bad"])
    mask = toy["mask"]
    assert bad.point_scores.shape == (len(toy["bad"]),) and bad.point_scores.dtype == np.float32
    assert bad.coverage == 1.0
    assert bad.object_score > good.object_score
    assert bad.point_scores[mask].mean() > bad.point_scores[~mask].mean()


def test_baseline_scores_in_input_order(fitted: object, toy: dict) -> None:
    perm = np.random.default_rng(7).permutation(len(toy["bad"]))
    plain = fitted.score(toy["bad"]).point_scores
    permuted = fitted.score(toy["bad"][perm]).point_scores
    np.testing.assert_allclose(permuted, plain[perm], rtol=1e-4, atol=1e-6)


def test_baseline_deterministic(toy: dict) -> None:
    for cls in BASELINES.values():
        a = cls(seed=0).fit(toy["train"][:2]).score(toy["bad"]).point_scores
        b = cls(seed=0).fit(toy["train"][:2]).score(toy["bad"]).point_scores
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_rejects_bad_input(name: str, toy: dict) -> None:
    with pytest.raises(InputError):
        BASELINES[name]().fit([])
    with pytest.raises(InputError):
        BASELINES[name]().score(toy["good"])  # not fitted
    det = BASELINES[name]().fit(toy["train"][:1])
    with pytest.raises(InputError):
        det.score(np.zeros((0, 3)))
    with pytest.raises(InputError):
        det.score(np.full((10, 3), np.nan))


# ------------------------------------------------------------- template surface
def test_template_detector_finds_a_bulge_on_a_partial_box_in_a_new_pose() -> None:
    """Partial one-sided scan, rotated and shifted far from the templates: registration
    must find it, and the bulge must rank above the rest of the surface."""
    rng = np.random.default_rng(11)
    train = [box(12000, rng) + rng.normal(scale=0.002, size=(12000, 3)) for _ in range(3)]
    scan = box(12000, rng)
    scan = scan[scan[:, 2] + 0.4 * scan[:, 0] > -0.05]  # one side only, off-centre
    bump = np.linalg.norm(scan[:, :2] - [0.2, 0.1], axis=1) < 0.06
    scan[bump & (scan[:, 2] > 0.14), 2] += 0.03
    labels = bump & (scan[:, 2] > 0.14)
    rot = Rotation.from_euler("xyz", [25, -15, 140], degrees=True).as_matrix()
    moved = scan @ rot.T + [2.0, -1.0, 0.5]
    detector = BASELINES["template"](seed=0, device="cpu").fit(train)
    result = detector.score(moved)
    assert result.point_scores.shape == (len(scan),)
    from mvr3d.metrics import auroc

    assert auroc(result.point_scores, labels) > 0.95
    clean = detector.score(box(12000, rng) @ rot.T)
    assert result.object_score > 2 * clean.object_score


def test_fused_reference_distance_ignores_sampling_gaps() -> None:
    """On a flat, sparsely sampled plane the nearest-sample distance of an on-surface point
    is the sampling gap; the local-plane distance is ~0."""
    from mvr3d.geometry import SurfaceReference

    rng = np.random.default_rng(3)
    plane = np.c_[rng.uniform(-1, 1, (4000, 2)), np.zeros(4000)]
    query = np.c_[rng.uniform(-0.5, 0.5, (500, 2)), np.zeros(500)]
    reference = SurfaceReference(plane)
    gap = np.linalg.norm(plane[None, :50, :2] - query[:50, None, :2], axis=2).min(axis=1)
    assert np.median(reference.distance(query)) < 1e-9 < np.median(gap)
    lifted = reference.distance(query + [0, 0, 0.05])
    np.testing.assert_allclose(lifted, 0.05, atol=1e-6)


def test_smoothed_offset_averages_noise_and_keeps_a_bump() -> None:
    """Noise along the normal shrinks about as 1/sqrt(k) over k neighbours while a smooth
    bump keeps its height; normals flipped at random (PCA gives no orientation) change
    nothing."""
    import torch

    from mvr3d.geometry.surface import smoothed_offset
    from mvr3d.metrics import auroc

    rng = np.random.default_rng(5)
    xy = rng.uniform(-1, 1, (20000, 2))
    bump = 0.03 * np.clip(1 - np.linalg.norm(xy - 0.5, axis=1) / 0.2, 0, None)
    signed = torch.from_numpy(bump + rng.normal(scale=0.01, size=len(xy)))
    points = torch.from_numpy(np.c_[xy, signed.numpy()])
    normals = torch.zeros(len(xy), 3, dtype=torch.float64)
    normals[:, 2] = 1.0
    flip = torch.from_numpy(rng.random(len(xy)) < 0.5)
    raw = smoothed_offset(points, signed, normals, 1)
    smooth = smoothed_offset(points, signed, normals, 64)
    flipped = smoothed_offset(points, torch.where(flip, -signed, signed), torch.where(flip[:, None], -normals, normals), 64)
    torch.testing.assert_close(flipped, smooth)
    flat = torch.from_numpy(bump == 0)
    # |mean of 64 N(0, 0.01)| has median 0.674 * 0.01 / 8 ~ 8e-4; the raw |noise| ~ 6.7e-3.
    assert float(smooth[flat].median()) < 0.25 * float(raw[flat].median())
    inside = torch.from_numpy(bump > 0.02)
    assert float(smooth[inside].median()) > 0.02
    labels = bump > 0.01
    assert auroc(smooth.numpy(), labels) > auroc(raw.numpy(), labels) + 0.05


@pytest.mark.parametrize("accelerated", [False, True])
def test_smoothed_offsets_of_several_scans_equal_each_scan_alone(accelerated: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scans smoothed together (one grouped anchor search) get what each gets alone, with
    anchored and exact (anchors None) scans mixed; ``accelerated`` forces the GPU's search
    paths (brute force, cell grids) on the CPU. Overlapping scans are the hard case: each
    point must blend its own scan's anchors only."""
    import torch

    from mvr3d.geometry import surface
    from mvr3d.geometry.neighbours import NeighbourIndex

    if accelerated:
        class Accelerated(NeighbourIndex):
            def __init__(self, reference: torch.Tensor, brute_force: bool | None = None, **options: object) -> None:
                super().__init__(reference, brute_force=True, **options)

        monkeypatch.setattr(surface, "NeighbourIndex", Accelerated)
    rng = np.random.default_rng(8)
    points, signed, normals, anchors = [], [], [], []
    for n in (12000, 9000, 3000):
        xy = rng.uniform(-1, 1, (n, 2))
        offset = rng.normal(scale=0.01, size=n)
        points.append(torch.from_numpy(np.c_[xy, offset]))
        signed.append(torch.from_numpy(offset))
        normals.append(torch.from_numpy(np.tile([0.0, 0.0, 1.0], (n, 1))))
        anchors.append(surface.anchor_points(points[-1].numpy(), 16))
    assert anchors[0] is not None and anchors[-1] is None
    # A scan smaller than the neighbourhood (its own k) and an empty one ride along.
    for n in (20, 0):
        points.append(torch.from_numpy(rng.normal(size=(n, 3))))
        signed.append(points[-1][:, 2].clone())
        normals.append(torch.from_numpy(np.tile([0.0, 0.0, 1.0], (n, 1))))
        anchors.append(None)
    together = surface.smoothed_offsets(points, signed, normals, 32, anchors)
    assert len(together[-1]) == 0 and surface.smoothed_offsets([], [], [], 32, []) == []
    for scan, value in enumerate(together[:-1]):
        alone = surface.smoothed_offset(points[scan], signed[scan], normals[scan], 32, anchors[scan])
        torch.testing.assert_close(value, alone, rtol=1e-12, atol=1e-15)


def test_template_detector_without_smoothing_param_loads_as_saved(tmp_path) -> None:
    """A template checkpoint from before ``smoothing_k`` existed scores as it did: unsmoothed."""
    import json

    from mvr3d.baselines.template import TemplateDetector
    from mvr3d.detectors import load_detector

    rng = np.random.default_rng(0)
    detector = TemplateDetector(device="cpu").fit([bumpy(3000, rng) for _ in range(2)], progress=False)
    detector.save(tmp_path / "m")
    record = tmp_path / "m" / "detector.json"
    saved = json.loads(record.read_text())
    assert saved["params"]["smoothing_k"] == 256
    del saved["params"]["smoothing_k"]
    record.write_text(json.dumps(saved))
    assert load_detector(tmp_path / "m", device="cpu").smoothing_k == 0
    with pytest.raises(InputError, match="smoothing_k"):
        TemplateDetector(smoothing_k=-1)


def test_template_detector_from_before_the_dense_pose_search_keeps_the_sparse_one(tmp_path) -> None:
    import json

    from mvr3d.baselines.template import TemplateDetector
    from mvr3d.detectors import load_detector

    rng = np.random.default_rng(1)
    detector = TemplateDetector(device="cpu").fit([bumpy(3000, rng) for _ in range(2)], progress=False)
    assert (detector.aligner_.n_random, detector.aligner_.keep_best, detector.aligner_.survivors) == (200, 12, 432)
    detector.save(tmp_path / "m")
    record = tmp_path / "m" / "detector.json"
    saved = json.loads(record.read_text())
    for name in ("random_rotations", "keep_poses", "survivors"):
        del saved["params"][name]
    record.write_text(json.dumps(saved))
    aligner = load_detector(tmp_path / "m", device="cpu").aligner_
    assert (aligner.n_random, aligner.keep_best, aligner.survivors) == (24, 4, 0)
    with pytest.raises(InputError, match="keep_poses"):
        TemplateDetector(keep_poses=0)


def test_template_noise_floor_scales_scores_and_old_checkpoints_keep_none(tmp_path) -> None:
    """In the old noise units (``scan_noise`` "spread") the noise floor divides a scan's
    deviations by sqrt(spread^2 + floor^2), with the floor from the raw offsets' spread over
    sqrt(smoothing_k); a checkpoint from before the floor existed loads without it and scores
    as it did."""
    import json

    from mvr3d.baselines.template import TemplateDetector
    from mvr3d.detectors import load_detector

    rng = np.random.default_rng(2)
    detector = TemplateDetector(device="cpu", smoothing_k=16, location_scans=0, scan_noise="spread")
    detector.fit([bumpy(3000, rng) for _ in range(2)], progress=False)
    scan = bumpy(2500, rng) + rng.normal(scale=0.01, size=(2500, 3))
    deviations, floors, _, _ = detector._deviations([scan])
    assert floors.shape == (1,) and 0 < float(floors[0]) < 0.01  # about the noise over sqrt(16)
    floored = detector.score(scan).point_scores
    detector.noise_floor = False
    plain = detector.score(scan).point_scores
    values = deviations[0].double().numpy()
    spread = 1.4826 * np.median(np.abs(values - np.median(values)))
    np.testing.assert_allclose(floored, plain * spread / np.hypot(spread, float(floors[0])), rtol=1e-4, atol=1e-5)
    detector.noise_floor = True
    detector.save(tmp_path / "m")
    record = tmp_path / "m" / "detector.json"
    saved = json.loads(record.read_text())
    assert saved["params"]["noise_floor"] is True
    del saved["params"]["noise_floor"]
    record.write_text(json.dumps(saved))
    old = load_detector(tmp_path / "m", device="cpu")
    assert old.noise_floor is False
    np.testing.assert_allclose(old.score(scan).point_scores, plain, rtol=1e-5, atol=1e-6)


def test_benchmark_key_follows_method_parameters(monkeypatch) -> None:
    """A changed detector parameter must not resume into runs made with the old one."""
    from mvr3d.baselines.template import TemplateDetector
    from mvr3d.engine.benchmark import _legacy_config_key, config_key
    from mvr3d.models import MVRConfig

    config = MVRConfig()
    key = config_key(config, "template")
    assert key != config_key(MVRConfig(seed=1), "template")
    assert _legacy_config_key(config, "template") is None  # its scores changed with smoothing
    assert _legacy_config_key(config, "btf_raw") is not None
    code = TemplateDetector.__init__.__code__
    names = code.co_varnames[1 : code.co_argcount]
    defaults = list(TemplateDetector.__init__.__defaults__)
    defaults[len(defaults) - len(names) + names.index("survivors")] = 8
    monkeypatch.setattr(TemplateDetector.__init__, "__defaults__", tuple(defaults))
    assert config_key(config, "template") != key


def test_projection_to_local_planes_removes_noise_and_keeps_a_wide_bump() -> None:
    """Noise along the normal shrinks about as 1/sqrt(k); a bump several neighbourhoods wide
    keeps most of its height."""
    import torch

    from mvr3d.geometry.surface import project_to_planes

    rng = np.random.default_rng(9)
    xy = rng.uniform(-1, 1, size=(20000, 2))
    bump = 0.1 * np.exp(-(np.square(xy).sum(axis=1)) / (2 * 0.25**2))
    noise = rng.normal(scale=0.005, size=len(xy))
    projected = project_to_planes(torch.from_numpy(np.c_[xy, bump + noise]), 16).numpy()
    flat = np.linalg.norm(xy, axis=1) > 0.8
    assert np.std(projected[flat, 2]) < 0.4 * np.std(noise[flat])
    top = np.linalg.norm(xy, axis=1) < 0.05
    assert np.median(projected[top, 2]) > 0.9 * 0.1
