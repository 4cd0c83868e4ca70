"""One contract for every registered detector (as scikit-learn's ``check_estimator``):
built by name, refuses to score unfitted, scores every point of every scan in order,
saves and loads to identical scores, refuses damaged folders, and works from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mvr3d.cli import main
from mvr3d.detectors import Detector, create_detector, detector_class, list_detectors, load_detector
from mvr3d.engine.benchmark import make_detector
from mvr3d.errors import CheckpointError, InputError, NotFittedError
from mvr3d.models import MVRConfig
from mvr3d.models.registry import register_detector
from mvr3d.render import RenderConfig
from mvr3d.scans import ScanScore

BUILT_IN = ("btf_fpfh", "btf_raw", "mvr", "patchcore_fpfh", "registration", "template")
METHODS = list_detectors()


def tiny_config() -> MVRConfig:
    """tests/test_detector.py's tiny MVR (random tiny ViT, small renders)."""
    return MVRConfig(
        backbone="tiny_test", weights="random", render=RenderConfig(render_size=112, image_size=56, depth_range="scan"),
        views=3, augment_rotations=1, augment_degrees=20.0, iterations=2, batch_size=4, warmup=1,
        map_blur_sigma=1.0, train_directions=4, side_candidates=16, calibration_scans=2,
    )


def blob(n: int, seed: int) -> np.ndarray:
    """A lumpy closed surface without symmetries, lightly noisy."""
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=(n, 3))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    radius = 1 + 0.2 * np.sin(3 * unit[:, 0]) * np.cos(2 * unit[:, 1]) + 0.1 * unit[:, 2] ** 2
    return 10 * unit * radius[:, None] + rng.normal(scale=0.02, size=(n, 3))


TRAIN = [blob(1500, s) for s in range(2)]
# Few scans (MVR and the registration methods spend seconds on each scan's pose search), of
# different sizes, so that a result given to the wrong scan shows in its length.
TESTS = [blob(700, 10), blob(1100, 11)[:900] * 1.02]


@pytest.fixture(scope="module", params=METHODS)
def fitted(request: pytest.FixtureRequest) -> Detector:
    return make_detector(request.param, tiny_config()).fit(TRAIN, progress=False)


@pytest.fixture(scope="module")
def scored(fitted: Detector) -> list[ScanScore]:
    return fitted.score_many(TESTS)


def test_every_built_in_method_is_registered() -> None:
    assert set(BUILT_IN) <= set(METHODS)
    for name in METHODS:
        assert issubclass(detector_class(name), Detector) and detector_class(name).name == name


def test_unknown_method_lists_the_available_ones() -> None:
    with pytest.raises(InputError, match="available: .*btf_raw.*mvr"):
        create_detector("nope")


def test_the_models_registry_alone_finds_every_built_in_method() -> None:
    # A fresh interpreter that imports only mvr3d.models: the default method lives in
    # mvr3d.baselines, which the registry must discover by itself.
    code = ("from mvr3d.models import create_detector, list_detectors; "
            "print(type(create_detector('template')).__name__, ','.join(list_detectors()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    name, methods = done.stdout.split()
    assert name == "TemplateDetector" and set(BUILT_IN) <= set(methods.split(","))


def test_a_name_cannot_be_taken_twice() -> None:
    with pytest.raises(ValueError, match="already taken"):
        register_detector("mvr")(type("Other", (detector_class("btf_raw"),), {}))


@pytest.mark.parametrize("name", METHODS)
def test_scoring_or_saving_unfitted_names_the_method(name: str, tmp_path: Path) -> None:
    detector = make_detector(name, tiny_config())
    assert not detector.is_fitted
    with pytest.raises(NotFittedError, match=f"'{name}'.*not fitted"):
        detector.score(TESTS[0])
    with pytest.raises(NotFittedError, match="not fitted"):
        detector.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_score_many_keeps_order_and_count(fitted: Detector, scored: list[ScanScore]) -> None:
    assert fitted.is_fitted and len(scored) == len(TESTS)
    for scan, result in zip(TESTS, scored, strict=True):
        assert result.point_scores.shape == (len(scan),)
        assert np.isfinite(result.point_scores).all() and np.isfinite(result.object_score)
        assert 0 <= result.coverage <= 1


def test_save_then_load_scores_identically(fitted: Detector, scored: list[ScanScore], tmp_path: Path) -> None:
    fitted.save(tmp_path / "model")
    loaded = load_detector(tmp_path / "model")
    assert type(loaded) is type(fitted) and loaded.is_fitted
    # Same code, same machine, same state restored exactly (float arrays stored in their
    # own dtypes): every operation repeats bit for bit, so equality is required.
    for a, b in zip(scored, loaded.score_many(TESTS), strict=True):
        np.testing.assert_array_equal(a.point_scores, b.point_scores)
        assert a.object_score == b.object_score
    with pytest.raises(CheckpointError, match="already there"):
        fitted.save(tmp_path / "model")


def test_calibrate_inspect_and_keep_the_threshold(fitted: Detector, scored: list[ScanScore], tmp_path: Path) -> None:
    with pytest.raises(NotFittedError, match="no pass/fail threshold"):
        fitted.inspect(TESTS[0])
    try:
        threshold = fitted.calibrate(TRAIN, 0.05, leave_one_out=False)  # views of its own templates: quick
        assert fitted.threshold_ is threshold and threshold.strategy == "own-templates"
        decided = fitted.inspect_many(TESTS)
        for result, inspection in zip(scored, decided, strict=True):
            assert inspection.object_score == pytest.approx(result.object_score, rel=1e-6)
            assert inspection.verdict == ("fail" if inspection.object_score > threshold.object_threshold else "pass")
            assert (inspection.normalised_score > 0.5) == inspection.failed
            assert all(region.points >= 10 and region.peak_score > threshold.point_threshold
                       for region in inspection.regions)
        fitted.save(tmp_path / "model")
        assert load_detector(tmp_path / "model").threshold_ == threshold
    finally:
        fitted.threshold_ = None


def _record_file(folder: Path) -> Path:
    return folder / "detector.json" if (folder / "detector.json").is_file() else folder / "config.json"


def test_damaged_folders_are_refused_naming_the_file(fitted: Detector, tmp_path: Path) -> None:
    folder = fitted.save(tmp_path / "model")
    record = _record_file(folder)
    text = record.read_text()
    record.write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match=f"{record.name}: corrupted JSON"):
        load_detector(folder)
    record.write_text(text)
    arrays = sorted(folder.glob("*.safetensors"))
    arrays[-1].unlink()
    with pytest.raises(CheckpointError, match=f"{arrays[-1].name}: .*missing"):
        load_detector(folder)
    with pytest.raises(CheckpointError, match="not found"):
        load_detector(tmp_path / "nowhere")


def _edit_record(folder: Path, edit) -> None:
    record = json.loads((folder / "detector.json").read_text())
    edit(record)
    (folder / "detector.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def saved_btf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    detector = create_detector("btf_raw", seed=0).fit(TRAIN, progress=False)
    return detector.save(tmp_path_factory.mktemp("btf") / "model")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(method="patchcore_fpfh"), "field 'method' is 'patchcore_fpfh', not 'btf_raw'"),
        (lambda r: r.update(format_version=7), "format version 7"),
        (lambda r: r["params"].update(patch_k="many"), r"params\.patch_k"),
        (lambda r: r["params"].update(colour="red"), r"params\.colour"),
        (lambda r: r["params"].pop("seed"), r"params\.seed' missing"),
        (lambda r: r["params"].update(voxel_size_ratio=-1.0), "voxel_size_ratio must be positive"),
        (lambda r: r.update(params=[1]), "'params' must be a JSON object"),
    ],
)
def test_edited_detector_json_is_refused(saved_btf: Path, tmp_path: Path, edit, message: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for path in saved_btf.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    _edit_record(folder, edit)
    loader = detector_class("btf_raw").load if "method" in message else load_detector
    with pytest.raises(CheckpointError, match=message):
        loader(folder)


def test_unknown_method_in_detector_json(saved_btf: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for path in saved_btf.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    _edit_record(folder, lambda r: r.update(method="nope"))
    with pytest.raises(CheckpointError, match="detector.json: field 'method': unknown method 'nope'"):
        load_detector(folder)


def test_state_of_the_wrong_shape_is_refused(saved_btf: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    from mvr3d.models.components.weights import sha256_file

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "detector.json").write_bytes((saved_btf / "detector.json").read_bytes())
    arrays = load_file(str(saved_btf / "state.safetensors"))
    arrays["bank"] = arrays["bank"][:, :5].copy()
    save_file(arrays, str(folder / "state.safetensors"))
    _edit_record(folder, lambda r: r["files"].update({"state.safetensors": sha256_file(folder / "state.safetensors")}))
    with pytest.raises(CheckpointError, match=r"state.safetensors: array 'bank' has shape \(\d+, 5\), expected \(N, 9\)"):
        load_detector(folder)
    (folder / "state.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="state.safetensors: checksum mismatch"):
        load_detector(folder)


def _scan_folder(root: Path) -> tuple[Path, Path]:
    for i, cloud in enumerate(TRAIN):
        (root / "data" / "train" / "good").mkdir(parents=True, exist_ok=True)
        np.savetxt(root / "data" / "train" / "good" / f"t{i}.txt", cloud, fmt="%.17g")
    (root / "scans").mkdir()
    for i, cloud in enumerate(TESTS):
        np.savetxt(root / "scans" / f"s{i}.txt", cloud, fmt="%.17g")
    return root / "data", root / "scans"


def test_cli_fit_then_predict_a_baseline(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, scans = _scan_folder(tmp_path)
    model, out = tmp_path / "model", tmp_path / "out"
    assert main(["fit", "--method", "btf_raw", "--data", str(data), "--out", str(model), "--seed", "3"]) == 0
    assert json.loads((model / "detector.json").read_text())["params"]["seed"] == 3
    assert main(["predict", "--checkpoint", str(model), "--input", str(scans), "--output", str(out)]) == 0
    direct = create_detector("btf_raw", seed=3).fit(TRAIN, progress=False)
    for i in range(len(TESTS)):
        written = np.loadtxt(out / f"s{i}.txt")
        np.testing.assert_allclose(written[:, 3], direct.score(np.loadtxt(scans / f"s{i}.txt")).point_scores, rtol=1e-6)
    capsys.readouterr()
    # MVR's options would silently do nothing for a baseline: refused.
    assert main(["fit", "--method", "btf_raw", "--data", str(data), "--out", str(tmp_path / "m2"), "--iterations", "5"]) == 2
    assert "--iterations only apply to --method mvr" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(model), "--input", str(scans), "--output", str(out), "--compile"]) == 2
    assert "--compile only apply to MVR checkpoints" in capsys.readouterr().err
    # A saved baseline is a checkpoint: refit without --overwrite is refused.
    assert main(["fit", "--method", "btf_raw", "--data", str(data), "--out", str(model)]) == 2
    assert "already there" in capsys.readouterr().err
