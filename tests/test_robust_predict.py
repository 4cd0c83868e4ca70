"""predict never writes over user files or its inputs; unreadable inputs fail clearly."""

import os
from pathlib import Path

import numpy as np
import pytest

from mvr3d.engine.predict import MANIFEST_NAME, check_output, list_scans
from mvr3d.errors import InputError
from mvr3d.io import read_points, write_points


def scans_in(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    points = np.random.default_rng(0).normal(size=(50, 3))
    for name in names:
        write_points(folder / name, points)
    return folder


def test_output_equal_to_input_is_refused(tmp_path):
    folder = scans_in(tmp_path / "d", "scores.csv", "a.txt")
    with pytest.raises(InputError, match="input folder"):
        check_output(folder, folder)
    with pytest.raises(InputError, match="input folder"):
        check_output(folder, folder / "sub")


def test_foreign_folder_is_refused(tmp_path):
    test = scans_in(tmp_path / "cls" / "test", "g0.pcd")
    gt = scans_in(tmp_path / "cls" / "gt", "g0.txt")
    before = (gt / "g0.txt").read_bytes()
    with pytest.raises(InputError, match="did not write"):
        check_output(test, gt)
    assert (gt / "g0.txt").read_bytes() == before


def test_owned_folder_is_reused_and_stale_temps_cleaned(tmp_path):
    from mvr3d.engine.predict import _claim, planned_outputs

    test = scans_in(tmp_path / "test", "s4.pcd")
    out = tmp_path / "out"
    check_output(test, out)  # new folder: fine
    _claim(out, planned_outputs([test / "s4.pcd"]))
    (out / ".s4.txt.abc123.tmp").write_text("half")
    (out / "notes.md").write_text("mine")
    check_output(test, out)  # our own folder, plus an unrelated user file
    _claim(out, planned_outputs([test / "s4.pcd"]))
    assert not (out / ".s4.txt.abc123.tmp").exists()
    assert (out / "notes.md").read_text() == "mine" and (out / MANIFEST_NAME).is_file()
    scans_in(test, "notes.md.pcd")  # would not clash; a scan named like a user file does
    (out / "s5.txt").write_text("user")
    scans_in(test, "s5.pcd")
    with pytest.raises(InputError, match="s5.txt"):
        check_output(test, out)


def test_output_over_an_input_file_is_refused(tmp_path):
    test = scans_in(tmp_path / "test", "a.pcd")
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text('{"format": "mvr3d-predict", "files": ["a.txt"]}')
    os.symlink(test / "a.pcd", out / "a.txt")
    with pytest.raises(InputError, match="overwrite an input"):
        check_output(test, out)


def test_fifo_and_device_links_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.pcd"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.txt"
    os.symlink("/dev/zero", zero)
    dangling = tmp_path / "gone.ply"
    os.symlink(tmp_path / "missing.ply", dangling)
    for path, message in ((fifo, "FIFO"), (zero, "device"), (dangling, "broken symbolic link")):
        with pytest.raises(InputError, match=message):
            read_points(path)
        with pytest.raises(InputError, match=message):
            list_scans(path)
    with pytest.raises(InputError, match="not regular scan files"):
        list_scans(tmp_path)


def test_predict_reads_the_recommended_folder_layout(tmp_path):
    """``test/good`` and ``test/bump`` with label files beside the defective scans: every
    scan is found, the label files are skipped, outputs are named after the subfolder."""
    from mvr3d.engine.predict import planned_outputs

    test = tmp_path / "test"
    for folder, stem in (("good", "good_00"), ("bump", "bump_00"), ("bump", "good_00")):
        (test / folder).mkdir(parents=True, exist_ok=True)
        write_points(test / folder / f"{stem}.pcd", np.random.default_rng(0).normal(size=(50, 3)))
    (test / "bump" / "bump_00.labels.txt").write_text("0\n" * 50)
    (test / ".cache").mkdir()
    (test / ".cache" / "x.pcd").write_text("not a scan")
    scans = list_scans(test)
    assert [p.relative_to(test).as_posix() for p in scans] == ["bump/bump_00.pcd", "bump/good_00.pcd", "good/good_00.pcd"]
    names = planned_outputs(scans, heatmaps=False, root=test)
    assert names == ["bump__bump_00.txt", "bump__good_00.txt", "good__good_00.txt", "scores.csv", "regions.csv",
                     "predict.json", "report.html"]
    assert list_scans(test / "bump") == [test / "bump" / "bump_00.pcd", test / "bump" / "good_00.pcd"]


def test_low_coverage_is_reported(tmp_path, caplog):
    from mvr3d.engine.predict import _write_outputs
    from mvr3d.io import PointCloud
    from mvr3d.scans import ScanScore

    points = np.random.default_rng(1).normal(size=(20, 3))
    cloud = PointCloud(points)
    scores = ScanScore(np.zeros(20, np.float32), 0.0, 0.2)
    with caplog.at_level("WARNING"):
        row = _write_outputs("s", tmp_path / "s.pcd", cloud, scores, tmp_path, (True, False))
    assert row == {"file": "s", "object_score": 0.0, "coverage": 0.2}
    assert "saw only 20 % of its points" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        _write_outputs("t", tmp_path / "t.pcd", cloud, ScanScore(np.zeros(20, np.float32), 0.0, 0.9), tmp_path, (True, False))
    assert "saw only" not in caplog.text


def test_predict_records_what_made_its_scores(tmp_path):
    import json

    from mvr3d.detectors import create_detector
    from mvr3d.engine.predict import predict_files

    rng = np.random.default_rng(2)
    detector = create_detector("btf_raw", seed=0).fit([rng.normal(size=(300, 3)) for _ in range(2)], progress=False)
    scans = tmp_path / "scans"
    scans.mkdir()
    write_points(scans / "a.pcd", rng.normal(size=(200, 3)))
    rows = predict_files(detector, scans, tmp_path / "out", heatmaps=False, checkpoint=tmp_path / "ckpt")
    record = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert record["method"] == "btf_raw" and record["scans"] == len(rows) == 1
    assert record["settings"]["seed"] == 0 and record["checkpoint"] == str(tmp_path / "ckpt")
    assert record["provenance"]["versions"]["mvr3d"]
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert "predict.json" in manifest["files"]
