"""``mvr3d export``: an MVR network exported as TorchScript or ONNX gives the eager maps
(within :func:`~mvr3d.engine.export.tolerance`) on a batch of another size than the traced
one, and what has no network, or no checkpoint, is refused in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mvr3d.cli import main
from mvr3d.detectors import create_detector, load_detector
from mvr3d.engine import export
from mvr3d.engine.export import TRACE_BATCH, VERIFY_BATCH, AnomalyMaps, export_network, tolerance
from mvr3d.errors import ExportError, InputError
from mvr3d.models import MVRConfig, MVRDetector
from mvr3d.render import RenderConfig

BATCH = 5  # neither the traced batch nor the checked one: the batch axis must be dynamic
assert BATCH not in (TRACE_BATCH, VERIFY_BATCH)


def tiny_config() -> MVRConfig:
    """The smallest MVR that fits: random tiny ViT, one view, one iteration, no registration."""
    return MVRConfig(
        backbone="tiny_test", weights="random", render=RenderConfig(render_size=56, image_size=56, depth_range="scan"),
        views=1, iterations=1, batch_size=2, warmup=1, augment_rotations=1, train_directions=1,
        align=False, calibrate=False,
    )


def blob(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    unit = rng.normal(size=(n, 3))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    return 10 * unit * (1 + 0.2 * np.sin(3 * unit[:, 0]) * np.cos(2 * unit[:, 1]))[:, None]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    fitted = MVRDetector(tiny_config()).fit([blob(800, 0)], progress=False)
    return fitted.save(tmp_path_factory.mktemp("export") / "mvr")


@pytest.fixture(scope="module")
def fitted(checkpoint: Path) -> MVRDetector:
    """On the CPU, as ``mvr3d export`` loads it, whichever device the fit used: eager maps
    on a GPU (TF32 convolutions) would differ from the CPU runtimes by more than rounding."""
    detector = load_detector(checkpoint, device="cpu")
    assert isinstance(detector, MVRDetector)
    return detector


def images(batch: int = BATCH) -> torch.Tensor:
    return torch.rand(batch, 3, 56, 56, generator=torch.Generator().manual_seed(7))


def eager(detector: MVRDetector, batch: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return AnomalyMaps(detector.net)(batch).numpy()


def test_the_exported_callable_is_what_the_detector_scores_with(fitted: MVRDetector) -> None:
    batch = images()
    np.testing.assert_allclose(eager(fitted, batch), fitted.view_maps(batch).numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_gives_the_eager_maps_on_another_batch_size(fitted: MVRDetector, tmp_path: Path) -> None:
    modes = [module.training for module in fitted.net.modules()]
    report = export_network(fitted, tmp_path / "net.pt", "torchscript")
    assert report.max_abs_diff <= report.tolerance and report.verify_batch == VERIFY_BATCH
    loaded = torch.jit.load(str(report.path))
    with torch.no_grad():
        got = loaded(images()).numpy()
    reference = eager(fitted, images())
    assert got.shape == (BATCH, 4, 4)
    assert np.abs(got - reference).max() <= tolerance(reference)
    sidecar = json.loads(report.sidecar.read_text())
    assert sidecar["format"] == "torchscript" and sidecar["input"]["shape"] == ["batch", 3, 56, 56]
    assert sidecar["check"]["max_abs_diff"] == report.max_abs_diff
    assert [module.training for module in fitted.net.modules()] == modes  # the export works on a copy


def test_cli_exports_onnx_that_runs_in_onnxruntime(fitted: MVRDetector, checkpoint: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "models" / "net.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    assert "max |exported - eager|" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(["maps"], {"images": images().numpy()})[0]
    reference = eager(fitted, images())
    assert np.abs(got - reference).max() <= tolerance(reference)
    sidecar = json.loads(out.with_name("net.onnx.json").read_text())
    assert sidecar["opset"] == export.OPSET and sidecar["checkpoint"] == str(checkpoint.resolve())
    assert sidecar["check"]["max_abs_diff"] <= sidecar["check"]["tolerance"]
    assert sidecar["provenance"]["versions"]["onnxruntime"]


def test_a_mismatch_raises_and_writes_nothing(fitted: MVRDetector, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "tolerance", lambda reference: -1.0)  # nothing can pass
    with pytest.raises(ExportError, match="over the tolerance"):
        export_network(fitted, tmp_path / "net.pt", "torchscript")
    assert list(tmp_path.iterdir()) == []


def test_a_non_mvr_checkpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = create_detector("btf_raw").fit([blob(300, 1)], progress=False).save(tmp_path / "btf")
    out = tmp_path / "net.onnx"
    assert main(["export", "--checkpoint", str(folder), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "only MVR detectors have a network" in error and "btf_raw" in error and "\n" not in error
    assert not out.exists()


def test_a_missing_checkpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", "--checkpoint", str(tmp_path / "nope"), "--format", "torchscript",
                 "--out", str(tmp_path / "net.pt")]) == 2
    assert "checkpoint folder not found" in capsys.readouterr().err


def test_without_onnxruntime_the_error_says_how_to_install_it(checkpoint: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes ``import onnxruntime`` fail
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "net.onnx")]) == 2
    assert "pip install 'mvr3d[export]'" in capsys.readouterr().err


def test_a_template_reference_detector_is_refused(tmp_path: Path) -> None:
    """reference='template' scores without the student: there is no reconstruction to export."""
    config = MVRConfig.from_dict({**tiny_config().to_dict(), "reference": "template", "align": True})
    detector = MVRDetector(config).fit([blob(600, 1)], progress=False)
    with pytest.raises(InputError, match="no reconstruction network to export"):
        export_network(detector, tmp_path / "net.pt", "torchscript")
    assert list(tmp_path.iterdir()) == []
