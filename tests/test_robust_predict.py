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
