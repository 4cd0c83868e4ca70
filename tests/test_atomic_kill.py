"""Crash safety: SIGKILL during atomic writes, and the output-folder lock.

A killed writer may leave its temporary file (``.name.XXXX.tmp`` next to the target)
behind: nothing runs after SIGKILL to unlink it. That is accepted; what must never happen
is a partial file under the target name.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mvr3d.cli.common import output_lock
from mvr3d.errors import MVR3DError
from mvr3d.io import write_points

KILLS = 4
SEED = 1234

# Alternates two payloads forever, so a kill lands on a write that replaces old content.
_BYTES_CHILD = """
import sys
from mvr3d.utils.atomic import atomic_write_bytes
target, old, new = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
print("ready", flush=True)
while True:
    atomic_write_bytes(target, new)
    atomic_write_bytes(target, old)
"""

_POINTS_CHILD = """
import sys
import numpy as np
from mvr3d.io import write_points
target = sys.argv[1]
clouds = [np.load(sys.argv[2]), np.load(sys.argv[3])]
print("ready", flush=True)
while True:
    for cloud in reversed(clouds):
        write_points(target, cloud)
"""


def _kill_at_random(code: str, args: list[Path], rng: random.Random) -> None:
    """Start the writer, let it run a random while after its imports, then SIGKILL it."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        # Sometimes no delay at all, to hit the very first write (target still absent).
        time.sleep(0.0 if rng.random() < 0.2 else rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL


def _assert_whole(target: Path, allowed: list[bytes]) -> None:
    if target.exists():
        content = target.read_bytes()
        assert any(content == a for a in allowed), f"partial file: {len(content)} bytes"
    for entry in target.parent.iterdir():
        is_tmp = entry.name.startswith(f".{target.name}.") and entry.name.endswith(".tmp")
        assert entry == target or is_tmp or entry.name.startswith("src"), entry.name


def _payloads(tmp_path: Path, size: int) -> tuple[Path, Path]:
    # Large enough that a write takes a while, and the halves differ everywhere.
    old, new = tmp_path / "src_old", tmp_path / "src_new"
    old.write_bytes(b"o" * size)
    new.write_bytes(b"N" * (size + 4096))
    return old, new


def test_kill_during_atomic_write_bytes(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    old, new = _payloads(tmp_path, 8 << 20)
    target = tmp_path / "scores.bin"
    allowed = [old.read_bytes(), new.read_bytes()]
    for _ in range(KILLS):
        _kill_at_random(_BYTES_CHILD, [target, old, new], rng)
        _assert_whole(target, allowed)


def test_kill_during_write_points(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    clouds = [np.random.default_rng(i).normal(size=(300_000, 3)) for i in range(2)]
    sources, allowed = [], []
    for i, cloud in enumerate(clouds):
        np.save(tmp_path / f"src_{i}.npy", cloud)
        sources.append(tmp_path / f"src_{i}.npy")
        # The exact bytes write_points produces, via the same code path.
        reference = tmp_path / "ref" / "cloud.npy"
        allowed.append(write_points(reference, cloud).read_bytes())
    target = tmp_path / "out" / "cloud.npy"
    target.parent.mkdir()
    for _ in range(KILLS):
        _kill_at_random(_POINTS_CHILD, [target, *sources], rng)
        _assert_whole(target, allowed)


def test_second_lock_on_one_folder_is_refused(tmp_path: Path) -> None:
    with output_lock(tmp_path):
        with pytest.raises(MVR3DError, match="another mvr3d run"), output_lock(tmp_path):
            pass
        assert (tmp_path / ".mvr3d.lock").read_text() == str(os.getpid())
    assert not (tmp_path / ".mvr3d.lock").exists()


def test_lock_held_by_another_live_process_is_refused(tmp_path: Path) -> None:
    holder = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / ".mvr3d.lock").write_text(str(holder.pid))
        refused = pytest.raises(MVR3DError, match=f"another mvr3d run \\(pid {holder.pid}\\)")
        with refused, output_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # reaped, so its pid names no process (barring pid reuse)
    (tmp_path / ".mvr3d.lock").write_text(str(dead.pid))
    with output_lock(tmp_path):
        assert (tmp_path / ".mvr3d.lock").read_text() == str(os.getpid())
    assert not (tmp_path / ".mvr3d.lock").exists()


_FIT_CLI = "import sys; from mvr3d.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.parametrize("delay", [0.0, 1.5])
def test_fit_killed_anywhere_resumes_with_the_same_command(tmp_path: Path, delay: float) -> None:
    """SIGKILL ``mvr3d fit`` (a state save every iteration, so kills land in saves too), then
    the same command must finish: stale temps cleaned, own partial files and the lock taken over."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
    import hostile_probe

    data = hostile_probe.train_folder(tmp_path)
    config = tmp_path / "c.json"
    config.write_text(__import__("json").dumps(dict(hostile_probe.TINY, iterations=30)))
    out = tmp_path / "ckpt"
    argv = [sys.executable, "-c", _FIT_CLI, "fit", "--method", "mvr", "--data", str(data), "--out", str(out), "--config", str(config),
            "--save-every", "1"]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / ".mvr3d.lock").exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished = (out / "config.json").is_file()  # killed after the checkpoint was complete
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in rerun.stderr
    if finished:
        assert rerun.returncode == 2 and "already there" in rerun.stderr, rerun.stderr
        return
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "config.json").is_file() and not list(out.glob(".*.tmp"))
    assert not (out / "training-state.pt").exists() and not (out / ".mvr3d.lock").exists()
