"""End to end with a tiny random-init ViT: fit, score, save, load, and bad checkpoints."""

import json

import numpy as np
import pytest

from mvr3d.engine.results import read_scores
from mvr3d.errors import CheckpointError, InputError
from mvr3d.metrics import auroc
from mvr3d.models import MVRConfig, MVRDetector, Runtime
from mvr3d.render import RenderConfig


def tiny_config(**overrides) -> MVRConfig:
    settings = dict(
        backbone="tiny_test", weights="random", render=RenderConfig(render_size=112, image_size=56, depth_range="scan"),
        views=3, augment_rotations=1, augment_degrees=20.0, iterations=4, batch_size=4, warmup=2,
        map_blur_sigma=1.0, train_directions=4, side_candidates=16, calibration_scans=2,
    )
    settings.update(overrides)
    return MVRConfig(**settings)


def sphere(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, 3))
    return 10.0 * points / np.linalg.norm(points, axis=1, keepdims=True)


def with_bulge(points: np.ndarray, height: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    direction = np.array([0.0, 0.0, 1.0])
    cosine = points @ direction / np.linalg.norm(points, axis=1)
    weight = np.clip((cosine - 0.9) / 0.1, 0, 1) ** 2
    bumped = points * (1 + height / 10.0 * weight)[:, None]
    return bumped, weight > 0.05


@pytest.fixture(scope="module")
def fitted():
    return MVRDetector(tiny_config()).fit([sphere(3000, s) for s in range(2)], progress=False)


def test_scores_have_input_order_and_count(fitted):
    points = sphere(2500, 7)
    result = fitted.score(points)
    assert result.point_scores.shape == (2500,) and result.point_scores.dtype == np.float32
    assert np.isfinite(result.point_scores).all()
    assert 0.2 < result.coverage < 0.8  # three views around +z see about half a sphere
    order = np.random.default_rng(0).permutation(len(points))
    shuffled = fitted.score(points[order])
    np.testing.assert_allclose(shuffled.point_scores, result.point_scores[order], rtol=1e-5, atol=1e-7)
    assert shuffled.object_score == pytest.approx(result.object_score, rel=1e-5)


def test_save_load_scores_identically(fitted, tmp_path):
    points = sphere(2000, 11)
    before = fitted.score(points)
    fitted.save(tmp_path / "model")
    loaded = MVRDetector.load(tmp_path / "model")
    after = loaded.score(points)
    np.testing.assert_array_equal(before.point_scores, after.point_scores)
    assert before.object_score == after.object_score
    record = json.loads((tmp_path / "model" / "config.json").read_text())
    assert record["provenance"]["versions"]["torch"] and record["config"]["backbone"] == "tiny_test"


def test_runtime_is_not_saved_and_old_checkpoints_with_it_still_load(fitted, tmp_path):
    """Runtime settings are not part of what a checkpoint is; checkpoints written when
    MVRConfig held them keep loading, with those settings as the runtime."""
    fitted.save(tmp_path / "model")
    path = tmp_path / "model" / "config.json"
    record = json.loads(path.read_text())
    assert not {"device", "compile", "view_batch", "score_dtype"} & set(record["config"])
    record["config"].update(device="cpu", compile=False, view_batch=2, score_dtype="float32")
    path.write_text(json.dumps(record))
    old = MVRDetector.load(tmp_path / "model")
    assert old.runtime == Runtime(device="cpu", view_batch=2, score_dtype="float32")
    assert old.config == fitted.config
    points = sphere(900, 12)
    # Two views per network batch instead of three: other batch shapes, same float32 kernels
    # per image up to summation order, hence a tolerance and not equality.
    np.testing.assert_allclose(old.score(points).point_scores, fitted.score(points).point_scores,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="Runtime settings"):
        MVRConfig.from_dict({**fitted.config.to_dict(), "compile": True})


def test_same_seed_gives_bit_identical_scores():
    scans = [sphere(1500, s) for s in range(2)]
    a = MVRDetector(tiny_config()).fit(scans, progress=False).score(sphere(1200, 5))
    b = MVRDetector(tiny_config()).fit(scans, progress=False).score(sphere(1200, 5))
    np.testing.assert_array_equal(a.point_scores, b.point_scores)


def test_pretrained_teacher_localises_a_bulge():
    """After a short fit with the offline DINOv2 ViT-S, a bulged sphere outscores good ones
    and its bulge points outscore the rest."""
    config = tiny_config(
        backbone="dinov2_vits14", weights=None, iterations=20, lr=2e-3, views=5,
        render=RenderConfig(render_size=336, image_size=112, depth_range="scan"), map_blur_sigma=2.0,
    )
    detector = MVRDetector(config).fit([sphere(10000, s) for s in range(2)], progress=False)
    good = [detector.score(sphere(10000, 100 + s)).object_score for s in range(2)]
    bumped, labels = with_bulge(sphere(10000, 200), height=2.0)
    result = detector.score(bumped)
    assert result.object_score > max(good)
    assert auroc(result.point_scores, labels) > 0.7


def test_unfitted_and_bad_scans(fitted):
    with pytest.raises(CheckpointError, match="not fitted"):
        MVRDetector(tiny_config()).score(sphere(100, 0))
    with pytest.raises(InputError, match="at least 2 points"):
        fitted.score(np.zeros((0, 3)))
    with pytest.raises(InputError, match="NaN"):
        fitted.score(np.array([[0, 0, 0], [1, np.nan, 0], [1, 1, 1]], dtype=float))
    with pytest.raises(InputError, match=r"\(N, 3\)"):
        fitted.score(np.zeros((10, 2)))


def test_checkpoint_errors(fitted, tmp_path):
    target = tmp_path / "model"
    fitted.save(target)
    with pytest.raises(CheckpointError, match="already there"):
        fitted.save(target)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("user data")
    with pytest.raises(CheckpointError, match="not an mvr3d checkpoint"):
        fitted.save(foreign)
    assert (foreign / "notes.txt").read_text() == "user data"

    record = json.loads((target / "config.json").read_text())
    record["format_version"] = 99
    (target / "config.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="format version 99"):
        MVRDetector.load(target)

    fitted.save(target, overwrite=True)
    blob = bytearray((target / "student.safetensors").read_bytes())
    blob[-10] ^= 0xFF
    (target / "student.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="checksum"):
        MVRDetector.load(target)

    (target / "config.json").write_text("{ truncated")
    with pytest.raises(CheckpointError, match="corrupted JSON"):
        MVRDetector.load(target)
    with pytest.raises(CheckpointError, match="config.json missing"):
        MVRDetector.load(tmp_path / "nowhere")


def test_bad_config_is_named():
    with pytest.raises(InputError, match="iterations"):
        tiny_config(iterations=0)
    with pytest.raises(InputError, match="multiple of 14"):
        MVRDetector(tiny_config(render=RenderConfig(render_size=100, image_size=50)))


def test_max_points_scores_every_original_point(fitted):
    points = sphere(20000, 3)
    fitted.config.max_points = 3000
    try:
        result = fitted.score(points)
    finally:
        fitted.config.max_points = None
    assert result.point_scores.shape == (20000,)
    assert np.isfinite(result.point_scores).all()
    # Far fewer distinct scores than points: one per voxel, shared by its points.
    assert len(np.unique(result.point_scores)) <= 3000


def test_scanner_noise_augmentation_changes_training_and_is_validated():
    scans = [sphere(1500, s) for s in range(2)]
    clean = MVRDetector(tiny_config()).fit(scans, progress=False)
    noisy = MVRDetector(tiny_config(augment_noise=0.01)).fit(scans, progress=False)
    assert clean.history_ != noisy.history_
    again = MVRDetector(tiny_config(augment_noise=0.01)).fit(scans, progress=False)
    assert again.history_ == noisy.history_  # seeded
    with pytest.raises(InputError, match="augment_noise"):
        tiny_config(augment_noise=-0.1)


def test_predict_files_batches_and_prefetches_in_order(fitted, tmp_path):
    from mvr3d.engine import predict_files
    from mvr3d.io import write_points

    scans = tmp_path / "scans"
    scans.mkdir()
    clouds = {f"part_{i}": sphere(800 + 100 * i, 40 + i).astype(np.float32) for i in range(5)}
    for stem, cloud in clouds.items():
        write_points(scans / f"{stem}.npy", cloud)
    rows = predict_files(fitted, scans, tmp_path / "out", heatmaps=False, batch=2)
    assert [r["file"] for r in rows] == sorted(clouds)
    for row in rows:
        single = fitted.score(clouds[row["file"]])
        written = np.loadtxt(tmp_path / "out" / f"{row['file']}.txt")
        np.testing.assert_allclose(written[:, 3], single.point_scores, rtol=1e-5)
        assert row["object_score"] == pytest.approx(single.object_score, rel=1e-6)
    table = read_scores(tmp_path / "out")
    assert [r.file for r in table] == sorted(clouds)
    assert all(0.0 < r.coverage <= 1.0 for r in table)
    (scans / "part_9.npy").write_bytes(b"broken")
    with pytest.raises(InputError, match="part_9"):
        predict_files(fitted, scans, tmp_path / "out2", heatmaps=False, batch=2)


def test_threaded_scoring_matches_sequential(fitted, monkeypatch):
    """The GPU path scores scans from several threads; the results must not depend on it."""
    scans = [sphere(1000 + 200 * i, 60 + i) for i in range(5)]
    sequential = fitted.score_many(scans)
    monkeypatch.setattr(MVRDetector, "_threaded", lambda self: True)
    threaded = fitted.score_many(scans)
    for a, b in zip(sequential, threaded, strict=True):
        np.testing.assert_array_equal(a.point_scores, b.point_scores)
        assert a.object_score == b.object_score


def test_float16_overflow_falls_back_to_float32(fitted, monkeypatch, caplog):
    """On CUDA scoring runs in float16; a non-finite map must be recomputed in float32."""
    import torch

    images = torch.zeros(2, 3, 56, 56)
    expected = fitted.view_maps(images)
    calls = []

    def fake_maps(images, references, dtype):
        calls.append(dtype)
        return torch.full_like(expected, float("inf")) if dtype == "float16" else expected.clone()

    monkeypatch.setattr(fitted, "_maps", fake_maps)
    monkeypatch.setattr(fitted, "device", torch.device("cuda"))
    maps = fitted.view_maps(images)
    assert calls == ["float16", "float32"]
    assert "float16 overflowed" in caplog.text and "bfloat16" in caplog.text
    torch.testing.assert_close(maps, expected)
    with pytest.raises(InputError, match="score_dtype"):
        Runtime(score_dtype="float8")


def test_scans_scored_together_score_as_alone(fitted):
    """score_many renders and maps all scans in one batch; each result must not depend on it."""
    scans = [sphere(1500, 80), sphere(600, 81) * 1.2, sphere(2400, 82)]
    together = fitted.score_many(scans)
    for scan, joint in zip(scans, together, strict=True):
        alone = fitted.score(scan)
        np.testing.assert_allclose(joint.point_scores, alone.point_scores, rtol=1e-5, atol=1e-7)
        assert joint.coverage == pytest.approx(alone.coverage)
        assert joint.object_score == pytest.approx(alone.object_score, rel=1e-5)


def test_compiled_scoring_matches_eager(fitted):
    """compile=True runs the network and the image operations through torch.compile."""
    compiled = MVRDetector(fitted.config, compile=True)
    compiled.net, compiled.radius_ = fitted.net, fitted.radius_
    compiled.aligner_, compiled.template_centres_ = fitted.aligner_, fitted.template_centres_
    compiled.sides_, compiled.score_stats_ = fitted.sides_, fitted.score_stats_
    compiled.deviation_stats_ = fitted.deviation_stats_
    scans = [sphere(1200, 90), sphere(800, 91)]
    eager = fitted.score_many(scans)
    fast = compiled.score_many(scans)
    assert compiled._compiled_maps_ is not None
    for a, b in zip(eager, fast, strict=True):
        np.testing.assert_allclose(b.point_scores, a.point_scores, rtol=1e-4, atol=1e-6)


def test_compile_flag_reaches_the_config(tmp_path):
    from mvr3d.cli import build_parser
    from mvr3d.cli.common import config_from_args, runtime_from_args

    parser = build_parser()
    base = ["fit", "--data", str(tmp_path), "--class", "a", "--out", str(tmp_path / "o")]
    assert runtime_from_args(parser.parse_args([*base, "--compile"])).compile is True
    assert runtime_from_args(parser.parse_args(base)).compile is False
    assert config_from_args(parser.parse_args([*base, "--deviation-weight", "1.5"])).deviation_weight == 1.5
    with pytest.raises(InputError, match="deviation_weight"):
        config_from_args(parser.parse_args([*base, "--deviation-weight", "-2"]))
    assert parser.parse_args(["predict", "--checkpoint", "c", "--input", "i", "--output", "o", "--compile"]).compile


def test_deviation_weight_flags_points_off_the_template(tmp_path):
    """With the template deviation fused in, a bulge stands out even to a random-init ViT."""
    scans = [sphere(3000, s) for s in range(2)]
    detector = MVRDetector(tiny_config(deviation_weight=2.0, calibrate=False, view_selection="fixed", augment_noise=0.0, scanner_cone_deg=90.0)).fit(scans, progress=False)
    bumped, _ = with_bulge(sphere(3000, 9), height=2.0)
    # Judged on points raised by >= 0.4 (4 % of the radius, 2/3 of the 0.65 sample spacing of
    # 3000 points on this sphere): the bulge's rim moves less than the reference's sampling
    # gaps and no distance to samples can rank it reliably.
    labels = np.linalg.norm(bumped, axis=1) > 10.4
    result = detector.score(bumped)
    alone = MVRDetector(tiny_config(calibrate=False, view_selection="fixed", augment_noise=0.0, scanner_cone_deg=90.0)).fit(scans, progress=False).score(bumped)
    assert auroc(result.point_scores, labels) > max(0.9, auroc(alone.point_scores, labels) + 0.1)
    good = detector.score(sphere(3000, 10))
    assert result.object_score > good.object_score
    assert abs(float(np.median(good.point_scores))) < 1.0  # robust z-scores: normal points near 0
    detector.save(tmp_path / "model")
    loaded = MVRDetector.load(tmp_path / "model")
    assert loaded.config.deviation_weight == 2.0
    np.testing.assert_array_equal(good.point_scores, loaded.score(sphere(3000, 10)).point_scores)


def test_deviation_weight_needs_alignment():
    with pytest.raises(InputError, match="deviation_weight=1.0 needs align=True"):
        tiny_config(deviation_weight=1.0, align=False)
    with pytest.raises(InputError, match="deviation_weight"):
        tiny_config(deviation_weight=-1.0)


def test_calibrated_scan_facing_detector_saves_and_loads(tmp_path):
    """The experimental per-location calibration and scan-facing views: statistics for every
    template point, finite scores, and the same scores after save/load."""
    scans = [sphere(3000, s) for s in range(2)]
    detector = MVRDetector(tiny_config(deviation_weight=1.0, calibrate=True, view_selection="scan")).fit(scans, progress=False)
    for stats in (detector.score_stats_, detector.deviation_stats_):
        assert [len(m) for m in stats.mean_] == [len(t.reference) for t in detector.aligner_.templates_]
        assert all(bool((s > 0).all()) for s in stats.spread_)
    good = detector.score(sphere(3000, 10))
    assert np.isfinite(good.point_scores).all()
    detector.save(tmp_path / "model")
    loaded = MVRDetector.load(tmp_path / "model")
    np.testing.assert_array_equal(good.point_scores, loaded.score(sphere(3000, 10)).point_scores)


def test_threaded_scoring_path_matches_serial(fitted, monkeypatch):
    """The GPU path registers scans from several threads (linalg warmed up first); on a
    CPU forced through the same pool it must give the serial results exactly."""
    scans = [sphere(900, 40 + i) for i in range(4)]
    serial = fitted.score_many(scans)
    monkeypatch.setattr(fitted, "_threaded", lambda: True)
    threaded = fitted.score_many(scans)
    for a, b in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a.point_scores, b.point_scores)


def test_scans_completed_from_their_template_score_only_their_own_points():
    """complete_with_template draws the template where the scan has no points: a half sphere
    gets the other half as fill (never within fill_gap spacings of the scan), and still gets
    one score per own point."""
    from scipy.spatial import cKDTree

    detector = MVRDetector(tiny_config(complete_with_template=True)).fit([sphere(3000, s) for s in range(2)],
                                                                       progress=False)
    whole = sphere(4000, 5)
    half = whole[whole[:, 2] > 0]
    placed = detector._placed(half)
    reference = detector.aligner_.references[placed.template].cpu().numpy()
    fill = placed.fill.cpu().numpy()
    assert 0.3 < len(fill) / len(reference) < 0.7
    cloud = placed.cloud.cpu().numpy()
    spacing = np.median(cKDTree(cloud).query(cloud, k=2)[0][:, 1])
    assert cKDTree(cloud).query(fill)[0].min() > detector.config.fill_gap * spacing * 0.99
    result = detector.score(half)
    assert result.point_scores.shape == (len(half),) and np.isfinite(result.point_scores).all()
    with pytest.raises(InputError, match="needs align"):
        tiny_config(complete_with_template=True, align=False)


def test_denoised_drawing_smooths_what_is_drawn_and_scores_every_scan_point():
    """denoise_k draws each scan projected onto its local planes: the drawn cloud lies closer
    to the true sphere than the noisy scan, point for point, and scores keep the scan's order."""
    rng = np.random.default_rng(3)
    noisy = sphere(4000, 6) + rng.normal(scale=0.15, size=(4000, 3))
    detector = MVRDetector(tiny_config(denoise_k=16)).fit([sphere(3000, s) for s in range(2)], progress=False)
    placed = detector._placed(noisy)
    drawn, cloud = placed.drawn.cpu().numpy(), placed.cloud.cpu().numpy()
    assert drawn.shape == cloud.shape and placed.rendered.shape == placed.cloud.shape
    centre = cloud.mean(axis=0)  # a whole sphere: its centroid is its centre

    def radial_spread(points: np.ndarray) -> float:
        return float(np.std(np.linalg.norm(points - centre, axis=1)))

    assert radial_spread(drawn) < 0.5 * radial_spread(cloud)
    result = detector.score(noisy)
    assert result.point_scores.shape == (len(noisy),) and np.isfinite(result.point_scores).all()
    with pytest.raises(InputError, match="denoise_k"):
        tiny_config(denoise_k=2)


def test_standardised_scores_are_robust_z_scores_of_each_scan():
    """standardise_scores: each scan's point scores have median 0 and 1.4826 MAD of 1, so a
    scan's overall error level cannot carry its object score."""
    detector = MVRDetector(tiny_config(standardise_scores=True)).fit([sphere(3000, s) for s in range(2)], progress=False)
    for result in detector.score_many([sphere(2000, 7), with_bulge(sphere(2500, 8))[0]]):
        scores = np.sort(result.point_scores)

        def lower_median(values: np.ndarray) -> float:  # torch.median's: the lower middle value
            return float(np.sort(values)[(len(values) - 1) // 2])

        assert abs(lower_median(scores)) < 1e-5
        assert 1.4826 * lower_median(np.abs(scores)) == pytest.approx(1.0, abs=1e-4)


def assert_finds_a_bulge_and_reloads(detector: MVRDetector, folder) -> MVRDetector:
    """A bulge on a dense sphere stands out (points and object) and the saved detector scores
    a good sphere exactly as before; returns the loaded detector."""
    bumped, _ = with_bulge(sphere(8000, 9), height=2.0)
    labels = np.linalg.norm(bumped, axis=1) > 10.4  # as in the deviation test above
    result = detector.score(bumped)
    assert auroc(result.point_scores, labels) > 0.9
    good = detector.score(sphere(8000, 10))
    assert result.object_score > 2 * good.object_score
    detector.save(folder / "model")
    loaded = MVRDetector.load(folder / "model")
    np.testing.assert_array_equal(good.point_scores, loaded.score(sphere(8000, 10)).point_scores)
    return loaded


def test_template_reference_finds_a_bulge_without_training(monkeypatch, tmp_path):
    """reference='template' compares each view's teacher tokens with those of the registered
    template cut to the scan: no student is trained, the cut covers the scan's side only,
    and a bulge (absent from the template) stands out even to a random-init ViT."""
    from scipy.spatial import cKDTree

    import mvr3d.models.mvr.detector as detector_module

    def no_training(*args, **kwargs):
        raise AssertionError("the student was trained")

    monkeypatch.setattr(detector_module, "global_cosine_hard_mining", no_training)
    # Denser than the other tests' spheres: the reference is another sample of the surface,
    # and at 3000 points the two samplings alone move a random ViT's tokens as much as a bulge.
    scans = [sphere(8000, s) for s in range(2)]
    detector = MVRDetector(tiny_config(reference="template", view_selection="scan")).fit(scans, progress=False)
    assert detector.history_ == []
    whole = sphere(8000, 5)
    half = whole[whole[:, 2] > 0]
    placed = detector._placed(half)
    cut, cloud = placed.reference.cpu().numpy(), placed.cloud.cpu().numpy()
    assert 0.4 < len(cut) / len(detector.aligner_.references[placed.template]) < 0.7
    spacing = np.median(cKDTree(cloud).query(cloud, k=2)[0][:, 1])
    # 5 %: the detector takes the median spacing from a sample of the scan, not from all of it.
    assert cKDTree(cloud).query(cut)[0].max() <= detector.config.reference_gap * spacing * 1.05
    loaded = assert_finds_a_bulge_and_reloads(detector, tmp_path)
    assert loaded.config.reference == "template"
    with pytest.raises(InputError, match="reference='template' needs align"):
        tiny_config(reference="template", align=False)


def test_template_reference_calibrates_leaving_each_template_out(caplog):
    """Views of a template compared with that same template would match themselves, so the
    template reference (which trains nothing) calibrates on detectors fitted without them;
    the student MVR keeps its own templates (a student fit per template costs minutes)."""
    scans = [sphere(3000, s) for s in range(2)]
    student = MVRDetector(tiny_config())
    assert student.calibrate_leave_one_out is False
    detector = MVRDetector(tiny_config(reference="template")).fit(scans, progress=False)
    threshold = detector.calibrate(scans, 0.05)
    assert threshold.strategy == "leave-one-out" and threshold.normal_scans == 16
    assert "own templates" not in caplog.text


def test_sparse_discount_lowers_scores_where_the_scan_is_sparse():
    """sparse_discount scales each point's error by its relative sampling density: a scan
    whose lower half is sampled at a quarter of the density scores lower there than without
    the discount, and its densely sampled half keeps most of its scores."""
    from dataclasses import replace

    detector = MVRDetector(tiny_config(reference="template")).fit([sphere(4000, s) for s in range(2)], progress=False)
    whole = sphere(6000, 3)
    keep = (whole[:, 2] > 0) | (np.arange(len(whole)) % 4 == 0)
    scan = whole[keep]
    raw = detector.score(scan).point_scores
    detector.config = replace(detector.config, sparse_discount=1.5)
    discounted = detector.score(scan).point_scores
    ratio = discounted / np.maximum(raw, 1e-12)
    assert np.all(discounted <= raw + 1e-6)
    upper, lower = scan[:, 2] > 1.0, scan[:, 2] < -1.0
    assert np.median(ratio[upper]) > 0.9
    assert np.median(ratio[lower]) < 0.5  # spacing ~2x the median: (1/2) ** 1.5 ~ 0.35
    with pytest.raises(InputError, match="sparse_discount"):
        tiny_config(sparse_discount=-1.0)


def test_dense_pose_search_reaches_the_aligner_and_survives_save_load(tmp_path):
    """pose_search='dense' gives registration the template method's start poses; a loaded
    detector registers with the same search (the saved config decides, not the defaults)."""
    from mvr3d.geometry.aligner import DENSE_POSE_SEARCH

    scans = [sphere(3000, s) for s in range(2)]
    sparse = MVRDetector(tiny_config(reference="template")).fit(scans, progress=False)
    dense = MVRDetector(tiny_config(reference="template", pose_search="dense")).fit(scans, progress=False)
    searched = {name: dense.aligner_.params()[name] for name in DENSE_POSE_SEARCH}
    assert searched == DENSE_POSE_SEARCH
    assert sparse.aligner_.params()["n_random"] < DENSE_POSE_SEARCH["n_random"]
    dense.save(tmp_path / "model")
    loaded = MVRDetector.load(tmp_path / "model")
    assert loaded.config.pose_search == "dense" and loaded.aligner_.params() == dense.aligner_.params()
    with pytest.raises(InputError, match="pose_search"):
        tiny_config(pose_search="exhaustive")
