"""Hostile-input probe of the ``mvr3d`` command line (issue 18's categories).

Every case builds its own files under a scratch folder, runs one ``mvr3d`` command in a
fresh process under a time limit, and is judged on four counts:

- traceback: the output holds a Python traceback (anything but one ``error:`` line);
- hang: the command ran past its time limit and was killed;
- changed: a file that existed before the command (the user's) was changed or removed;
- wrong: the exit status or the message is not the expected one (e.g. a skipped training
  file not named, a refusal that does not name the file).

    .venv/bin/python fuzz/hostile_probe.py            # every case, a table of counts
    .venv/bin/python fuzz/hostile_probe.py -k ply -v  # cases whose name holds "ply"

tests/test_hostile.py runs the same cases in-process (``run_in_process``), so the suite and
this probe cannot drift apart. The kill -9 resume cases live in ``kill_resume_probe``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "backbone": "tiny_test", "weights": "random", "views": 3, "augment_rotations": 1,
    "augment_degrees": 20.0, "iterations": 2, "batch_size": 4, "warmup": 1, "map_blur_sigma": 1.0,
    "device": "cpu", "train_directions": 4, "side_candidates": 16, "calibration_scans": 2,
    "render": {"render_size": 56, "image_size": 28, "depth_range": "scan"},
}  # fmt: skip
RENDER_ARGS = ["--views", "2", "--render-size", "56", "--image-size", "28"]


def sphere(n: int = 300, seed: int = 0, scale: float = 10.0) -> np.ndarray:
    points = np.random.default_rng(seed).normal(size=(n, 3))
    return scale * points / np.linalg.norm(points, axis=1, keepdims=True)


def write_txt(path: Path, points: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, points, fmt="%.17g")
    return path


def write_ply_text(path: Path, body: str, props: str = "property float x\nproperty float y\nproperty float z\n",
                   count: int | None = None) -> Path:
    rows = [r for r in body.strip().splitlines()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"ply\nformat ascii 1.0\nelement vertex {count if count is not None else len(rows)}\n{props}end_header\n"
        + "\n".join(rows) + "\n"
    )
    return path


def cube_stl(path: Path, claimed: int | None = None) -> Path:
    """A closed binary STL cube (12 triangles); ``claimed`` lies about the count."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float) * 10
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
             (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]  # fmt: skip
    blob = bytearray(b"\0" * 80) + struct.pack("<I", len(faces) if claimed is None else claimed)
    for face in faces:
        blob += struct.pack("<12fH", 0, 0, 0, *corners[list(face)].ravel(), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(blob))
    return path


@dataclass
class Env:
    """Shared by all cases: the tiny config and one fitted checkpoint (copied before edits)."""

    root: Path
    config: Path = field(init=False)
    checkpoint: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.root / "shared" / "tiny.json"
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps(TINY))
        self.checkpoint = self.root / "shared" / "ckpt"

    def make_checkpoint(self) -> None:
        if (self.checkpoint / "config.json").is_file():
            return
        from mvr3d.models import MVRConfig, MVRDetector, Runtime
        from mvr3d.models.mvr.config import split_runtime

        config, runtime = split_runtime(json.loads(self.config.read_text()))  # the same file --config reads
        MVRDetector(MVRConfig.from_dict(config), Runtime(**runtime)).fit(
            [sphere(300, 0), sphere(300, 1)], progress=False
        ).save(self.checkpoint)

    def copy_checkpoint(self, where: Path) -> Path:
        shutil.copytree(self.checkpoint, where)
        return where

    def fit(self, data: Path, out: Path, *extra: str) -> list[str]:
        return ["fit", "--method", "mvr", "--data", str(data), "--out", str(out), "--config", str(self.config), *extra]

    def predict(self, scan: Path, out: Path, checkpoint: Path | None = None) -> list[str]:
        return ["predict", "--checkpoint", str(checkpoint or self.checkpoint), "--input", str(scan),
                "--output", str(out)]


def train_folder(tmp: Path, *clouds: np.ndarray) -> Path:
    data = tmp / "data"
    for i, cloud in enumerate(clouds or (sphere(300, 0), sphere(300, 1))):
        write_txt(data / "train" / "good" / f"t{i}.txt", cloud)
    return data


@dataclass
class Case:
    name: str
    category: str
    build: Callable[[Path, Env], list[str]]
    expect: str = "error"  # "error": one error line, non-zero exit; "ok": exit 0; "any": either
    output: str = ""  # a regex the combined output must match
    needs: str = ""  # "checkpoint" when it scores with the shared checkpoint; "root" for tmpfs
    # Fits take ~10-20 s on an idle 2-core machine and over 60 s beside another full-CPU job; a real
    # hang runs into any limit, so the limit leaves room for a busy machine.
    timeout: float = 150.0
    owned: tuple[str, ...] = ()  # pre-existing files the command may change (its own state)


CASES: list[Case] = []


def case(name: str, category: str, expect: str = "error", output: str = "", **kwargs) -> Callable:
    def register(build: Callable[[Path, Env], list[str]]) -> Callable:
        CASES.append(Case(name, category, build, expect, output, **kwargs))
        return build

    return register


# --------------------------------------------------------------- extreme coordinates
EXTREMES = {
    "1e308": lambda: sphere() * 1e307,  # radius 1e308: squares and spans overflow float64
    "f32_overflow": lambda: np.vstack([sphere(), [[1e39, 0, 0]]]),
    "scaled_1e30": lambda: sphere() * 1e30,
    "scaled_1e-30": lambda: sphere() * 1e-30,
    "span_1e300": lambda: np.vstack([sphere(), [[1e300, -1e300, 1e300]]]),
}


def _ply_float32(path: Path, points: np.ndarray) -> Path:
    body = "\n".join(" ".join(repr(float(v)) for v in row) for row in points)
    return write_ply_text(path, body)


for _label, _make in EXTREMES.items():
    for _command in ("render", "predict", "fit"):
        def _build(tmp: Path, env: Env, make=_make, command=_command, label=_label) -> list[str]:
            points = make()
            scan = _ply_float32(tmp / "scan.ply", points) if label == "f32_overflow" else write_txt(tmp / "scan.txt", points)
            if command == "render":
                return ["render", str(scan), "--out", str(tmp / "out"), *RENDER_ARGS]
            if command == "predict":
                return env.predict(scan, tmp / "out")
            data = tmp / "data"
            for i in range(2):
                target = data / "train" / "good" / f"t{i}{scan.suffix}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(scan, target) if i == 0 else write_txt(target.with_suffix(".txt"), make())
            return env.fit(data, tmp / "ckpt")

        CASES.append(Case(f"{_command}_{_label}", "traceback", _build, "any",
                          needs="checkpoint" if _command == "predict" else ""))


# ------------------------------------------------------------- degenerate training data
@case("fit_two_points", "traceback", output=r"t0\.txt")
def _(tmp, env):
    return env.fit(train_folder(tmp, sphere(2), sphere(300, 1)), tmp / "ckpt")


@case("fit_three_points", "traceback", output=r"t0\.txt")
def _(tmp, env):
    return env.fit(train_folder(tmp, sphere(3), sphere(300, 1)), tmp / "ckpt")


@case("fit_identical_points", "traceback", output=r"t0\.txt")
def _(tmp, env):
    return env.fit(train_folder(tmp, np.ones((300, 3)), sphere(300, 1)), tmp / "ckpt")


@case("fit_collinear_points", "traceback", "any")
def _(tmp, env):
    line = np.linspace(0, 1, 300)[:, None] * np.array([[1.0, 2.0, 3.0]])
    return env.fit(train_folder(tmp, line, sphere(300, 1)), tmp / "ckpt")


# ------------------------------------------------------------------ edited checkpoints
def _edited(edit: Callable[[dict], None]) -> Callable[[Path, Env], list[str]]:
    def build(tmp: Path, env: Env) -> list[str]:
        checkpoint = env.copy_checkpoint(tmp / "ckpt")
        record = json.loads((checkpoint / "config.json").read_text())
        edit(record)
        (checkpoint / "config.json").write_text(json.dumps(record))
        return env.predict(write_txt(tmp / "scan.txt", sphere(200, 5)), tmp / "out", checkpoint)

    return build


_CHECKPOINT_EDITS = {
    "wrong_type_iterations": lambda r: r["config"].update(iterations="many"),
    "wrong_type_render_size": lambda r: r["config"]["render"].update(render_size=[64]),
    "wrong_type_views": lambda r: r["config"].update(views=3.5),
    "render_not_dict": lambda r: r["config"].update(render=7),
    "missing_config": lambda r: r.pop("config"),
    "missing_state": lambda r: r.pop("state"),
    "missing_radius": lambda r: r["state"].pop("radius"),
    "radius_string": lambda r: r["state"].update(radius="big"),
    "null_config": lambda r: r.update(config=None),
    "config_list": lambda r: r.update(config=[1, 2]),
    "state_list": lambda r: r.update(state=[1]),
    "files_list": lambda r: r.update(files=["teacher.safetensors"]),
    "unknown_field": lambda r: r["config"].update(colour="red"),
    "centres_strings": lambda r: r["state"].update(template_centres=[["a", "b", "c"]]),
    "null_seed": lambda r: r["config"].update(seed=None),
}
for _label, _edit in _CHECKPOINT_EDITS.items():
    CASES.append(Case(f"checkpoint_{_label}", "traceback", _edited(_edit), output=r"config\.json", needs="checkpoint"))


@case("checkpoint_record_is_list", "traceback", output=r"config\.json", needs="checkpoint")
def _(tmp, env):
    checkpoint = env.copy_checkpoint(tmp / "ckpt")
    (checkpoint / "config.json").write_text("[1, 2, 3]")
    return env.predict(write_txt(tmp / "scan.txt", sphere(200, 5)), tmp / "out", checkpoint)


def _state_file(tmp: Path, payload: object) -> list[str]:
    import torch

    data = train_folder(tmp)
    (tmp / "ckpt").mkdir()
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    (tmp / "ckpt" / "training-state.pt").write_bytes(buffer.getvalue())
    return data


@case("state_config_not_dict", "traceback", output=r"training-state\.pt", owned=("ckpt/*",))
def _(tmp, env):
    data = _state_file(tmp, {"version": 1, "config": [1, 2], "data": "x", "iteration": 1})
    return env.fit(data, tmp / "ckpt")


@case("state_is_list", "traceback", output=r"training-state\.pt", owned=("ckpt/*",))
def _(tmp, env):
    return env.fit(_state_file(tmp, [1, 2, 3]), tmp / "ckpt")


@case("state_missing_fields", "traceback", output=r"training-state\.pt", owned=("ckpt/*",))
def _(tmp, env):
    data = _state_file(tmp, {"version": 1, "config": dict(TINY), "data": None})
    return env.fit(data, tmp / "ckpt")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@case("state_pickle_payload", "security", output=r"training-state\.pt", owned=("ckpt/*",))
def _(tmp, env):
    import pickle

    data = train_folder(tmp)
    (tmp / "ckpt").mkdir()
    (tmp / "ckpt" / "training-state.pt").write_bytes(pickle.dumps({"version": 1, "x": _Payload()}))
    return env.fit(data, tmp / "ckpt")


@case("weights_pickle_payload", "security", output=r"evil\.pth")
def _(tmp, env):
    import pickle

    (tmp / "evil.pth").write_bytes(pickle.dumps({"w": _Payload()}))
    config = dict(TINY, weights=str(tmp / "evil.pth"))
    (tmp / "c.json").write_text(json.dumps(config))
    return ["fit", "--method", "mvr", "--data", str(train_folder(tmp)), "--out", str(tmp / "ckpt"), "--config", str(tmp / "c.json")]


@case("npy_object_pickle", "security", output=r"scan\.npy")
def _(tmp, env):
    import pickle

    blob = io.BytesIO()
    np.save(blob, np.array([_Payload()], dtype=object), allow_pickle=True)
    (tmp / "scan.npy").write_bytes(blob.getvalue())
    _ = pickle  # the payload is pickled inside the .npy
    return ["render", str(tmp / "scan.npy"), "--out", str(tmp / "out"), *RENDER_ARGS]


# ---------------------------------------------------------------------------- misuse
@case("fit_config_json_list", "misuse", output=r"c\.json")
def _(tmp, env):
    (tmp / "c.json").write_text("[1, 2]")
    return ["fit", "--method", "mvr", "--data", str(train_folder(tmp)), "--out", str(tmp / "ckpt"), "--config", str(tmp / "c.json")]


@case("fit_config_wrong_type", "misuse", output=r"iterations")
def _(tmp, env):
    (tmp / "c.json").write_text(json.dumps(dict(TINY, iterations="ten")))
    return ["fit", "--method", "mvr", "--data", str(train_folder(tmp)), "--out", str(tmp / "ckpt"), "--config", str(tmp / "c.json")]


@case("fit_config_render_list", "misuse", output=r"render")
def _(tmp, env):
    (tmp / "c.json").write_text(json.dumps(dict(TINY, render=[1])))
    return ["fit", "--method", "mvr", "--data", str(train_folder(tmp)), "--out", str(tmp / "ckpt"), "--config", str(tmp / "c.json")]


@case("fit_config_not_utf8", "misuse", output=r"c\.json")
def _(tmp, env):
    (tmp / "c.json").write_bytes(b"\xff\xfe{\x00")
    return ["fit", "--method", "mvr", "--data", str(train_folder(tmp)), "--out", str(tmp / "ckpt"), "--config", str(tmp / "c.json")]


@case("fit_huge_seed", "misuse", output=r"seed")
def _(tmp, env):
    return env.fit(train_folder(tmp), tmp / "ckpt", "--seed", "99999999999999999999999")


@case("fit_negative_seed", "misuse", output=r"seed")
def _(tmp, env):
    return env.fit(train_folder(tmp), tmp / "ckpt", "--seed", "-5")


@case("fit_out_is_file", "misuse", output=r"taken")
def _(tmp, env):
    (tmp / "taken").write_text("mine")
    return env.fit(train_folder(tmp), tmp / "taken")


@case("predict_output_is_file", "misuse", output=r"taken", needs="checkpoint")
def _(tmp, env):
    (tmp / "taken").write_text("mine")
    return env.predict(write_txt(tmp / "scan.txt", sphere()), tmp / "taken")


@case("render_out_is_file", "misuse", output=r"taken")
def _(tmp, env):
    (tmp / "taken").write_text("mine")
    return ["render", str(write_txt(tmp / "scan.txt", sphere())), "--out", str(tmp / "taken"), *RENDER_ARGS]


@case("fit_zero_iterations", "misuse", output=r"iterations")
def _(tmp, env):
    return env.fit(train_folder(tmp), tmp / "ckpt", "--iterations", "0")


@case("fit_save_every_zero", "misuse", output=r"save.every")
def _(tmp, env):
    return env.fit(train_folder(tmp), tmp / "ckpt", "--save-every", "0")


@case("predict_checkpoint_missing", "misuse", output=r"nowhere")
def _(tmp, env):
    return env.predict(write_txt(tmp / "scan.txt", sphere()), tmp / "out", tmp / "nowhere")


@case("predict_output_is_input", "user data", output=r"input", needs="checkpoint")
def _(tmp, env):
    folder = tmp / "scans"
    write_txt(folder / "scores.csv", sphere())
    write_txt(folder / "a.txt", sphere(300, 3))
    return env.predict(folder, folder)


@case("predict_into_ground_truth", "user data", output=r"did not write", needs="checkpoint")
def _(tmp, env):
    write_txt(tmp / "cls" / "gt" / "g0.txt", sphere())
    return env.predict(write_txt(tmp / "cls" / "test" / "g0.txt", sphere()), tmp / "cls" / "gt")


@case("predict_foreign_folder", "user data", output=r"did not write", needs="checkpoint")
def _(tmp, env):
    for name in ("g0.txt", "g0.ply", "scores.csv"):
        (tmp / "out").mkdir(exist_ok=True)
        (tmp / "out" / name).write_text("mine")
    return env.predict(write_txt(tmp / "in" / "g0.txt", sphere()), tmp / "out")


@case("fit_into_foreign_folder", "user data", output=r"not an mvr3d checkpoint")
def _(tmp, env):
    (tmp / "ckpt").mkdir()
    (tmp / "ckpt" / "notes.md").write_text("mine")
    return env.fit(train_folder(tmp), tmp / "ckpt")


@case("fit_over_checkpoint", "user data", output=r"already there")
def _(tmp, env):
    env.copy_checkpoint(tmp / "ckpt")
    return env.fit(train_folder(tmp), tmp / "ckpt")


# ------------------------------------------------------------------ disk full (tmpfs)
def _tmpfs(tmp: Path, size: str) -> Path:
    where = tmp / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    return where


@case("fit_disk_full", "disk full", output=r"(?i)no space", needs="root")
def _(tmp, env):
    return env.fit(train_folder(tmp), _tmpfs(tmp, "48k") / "ckpt")


@case("predict_disk_full", "disk full", output=r"(?i)no space", needs="root")
def _(tmp, env):
    return env.predict(write_txt(tmp / "scan.txt", sphere(3000)), _tmpfs(tmp, "32k") / "out")


@case("render_disk_full", "disk full", output=r"(?i)no space", needs="root")
def _(tmp, env):
    return ["render", str(write_txt(tmp / "scan.txt", sphere())), "--out", str(_tmpfs(tmp, "8k") / "out"), *RENDER_ARGS]


# --------------------------------------------------------------------- hangs and memory
@case("render_fifo", "hang", output=r"FIFO")
def _(tmp, env):
    os.mkfifo(tmp / "pipe.txt")
    return ["render", str(tmp / "pipe.txt"), "--out", str(tmp / "out"), *RENDER_ARGS]


@case("render_dev_zero_link", "hang", output=r"device")
def _(tmp, env):
    os.symlink("/dev/zero", tmp / "zero.txt")
    return ["render", str(tmp / "zero.txt"), "--out", str(tmp / "out"), *RENDER_ARGS]


@case("predict_fifo_in_folder", "hang", output=r"pipe\.txt", needs="checkpoint")
def _(tmp, env):
    write_txt(tmp / "in" / "a.txt", sphere())
    os.mkfifo(tmp / "in" / "pipe.txt")
    return env.predict(tmp / "in", tmp / "out")


def _honest_npz(path: Path, rows: int) -> Path:
    """A small zip holding an .npy member that truly expands to ``rows`` x 3 float64."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (rows, 3)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        with archive.open("points.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            block = np.zeros((1 << 16, 3)).tobytes()
            for _ in range(rows >> 16):
                member.write(block)
            member.write(np.zeros((rows % (1 << 16), 3)).tobytes())
    return path


@case("render_honest_huge_npz", "memory", output=r"huge\.npz", timeout=90)  # reads 1.2 GB: ~20 s idle, 30+ s on a busy 2-core machine
def _(tmp, env):
    return ["render", str(_honest_npz(tmp / "huge.npz", 50_000_000)), "--out", str(tmp / "out"), *RENDER_ARGS]


@case("render_many_views", "memory", output=r"views", timeout=30)
def _(tmp, env):
    return ["render", str(write_txt(tmp / "scan.txt", sphere())), "--out", str(tmp / "out"),
            "--views", "100000", "--render-size", "56", "--image-size", "28"]


@case("render_huge_render_size", "memory", output=r"render.size", timeout=30)
def _(tmp, env):
    return ["render", str(write_txt(tmp / "scan.txt", sphere())), "--out", str(tmp / "out"),
            "--views", "2", "--render-size", "200000", "--image-size", "28"]


@case("fit_many_views", "memory", output=r"views", timeout=30)
def _(tmp, env):
    return env.fit(train_folder(tmp), tmp / "ckpt", "--views", "100000")


# -------------------------------------------------------------------- silent behaviour
@case("fit_names_skipped_files", "silent", "ok", output=r"(?s)(?=.*pipe\.txt)(?=.*gone\.ply)(?=.*folder\.txt)")
def _(tmp, env):
    data = train_folder(tmp)
    good = data / "train" / "good"
    os.mkfifo(good / "pipe.txt")
    os.symlink(tmp / "missing.ply", good / "gone.ply")
    (good / "folder.txt").mkdir()
    return env.fit(data, tmp / "ckpt")


@case("fit_samples_stl_mesh", "silent", "ok", output=r"fitted on 2 scans")
def _(tmp, env):
    data = tmp / "data"
    write_txt(data / "train" / "good" / "t0.txt", sphere())
    cube_stl(data / "train" / "good" / "cube.stl")
    return env.fit(data, tmp / "ckpt")


@case("fit_samples_obj_mesh", "silent", "ok", output=r"fitted on 2 scans")
def _(tmp, env):
    data = tmp / "data"
    write_txt(data / "train" / "good" / "t0.txt", sphere())
    lines = [f"v {x} {y} {z}" for x, y, z in sphere(30, 2)] + ["f 1 2 3", "f 2 3 4", "f 4 5 6", "f 7 8 9"]
    (data / "train" / "good" / "part.obj").write_text("\n".join(lines) + "\n")
    return env.fit(data, tmp / "ckpt")


for _label, _value in {"300": "300", "minus4": "-4", "fraction": "1.5", "word": "abc"}.items():
    def _build(tmp: Path, env: Env, value=_value) -> list[str]:
        props = "property uchar x\nproperty uchar y\nproperty uchar z\n"
        scan = write_ply_text(tmp / "scan.ply", f"1 2 3\n4 5 6\n{value} 7 8\n9 10 11\n", props)
        return ["render", str(scan), "--out", str(tmp / "out"), *RENDER_ARGS]

    CASES.append(Case(f"ply_uchar_{_label}", "silent", _build, output=r"scan\.ply.*(row 3|abc)"))


@case("ply_int8_128", "silent", output=r"scan\.ply")
def _(tmp, env):
    props = "property char x\nproperty char y\nproperty char z\n"
    scan = write_ply_text(tmp / "scan.ply", "1 2 3\n128 5 6\n7 8 9\n", props)
    return ["render", str(scan), "--out", str(tmp / "out"), *RENDER_ARGS]


@case("ply_duplicate_property", "silent", output=r"scan\.ply.*x")
def _(tmp, env):
    props = "property float x\nproperty float x\nproperty float y\nproperty float z\n"
    scan = write_ply_text(tmp / "scan.ply", "\n".join("1 2 3 4" for _ in range(5)), props)
    return ["render", str(scan), "--out", str(tmp / "out"), *RENDER_ARGS]


@case("stl_false_triangle_count", "silent", output=r"cube\.stl: (?!.*ModuleNotFound)")
def _(tmp, env):
    scan = cube_stl(tmp / "cube.stl", claimed=1000)
    return ["render", str(scan), "--out", str(tmp / "out"), *RENDER_ARGS]


@case("stl_truncated", "silent", output=r"cube\.stl")
def _(tmp, env):
    scan = cube_stl(tmp / "cube.stl")
    scan.write_bytes(scan.read_bytes()[:200])
    return ["render", str(scan), "--out", str(tmp / "out"), *RENDER_ARGS]


@case("render_valid_stl", "silent", "ok")
def _(tmp, env):
    return ["render", str(cube_stl(tmp / "cube.stl")), "--out", str(tmp / "out"), *RENDER_ARGS]


# ------------------------------------------------------------------- resume and locks
@case("fit_resumes_after_kill_in_state_save", "resume", "ok", owned=("ckpt/*", "ckpt/.*"))
def _(tmp, env):
    (tmp / "ckpt").mkdir()
    (tmp / "ckpt" / ".training-state.pt.k1ll3d.tmp").write_bytes(b"\x80half")
    (tmp / "ckpt" / ".mvr3d.lock").write_text("999999999")
    return env.fit(train_folder(tmp), tmp / "ckpt")


@case("fit_resumes_after_kill_in_final_save", "resume", "ok", owned=("ckpt/*", "ckpt/.*"))
def _(tmp, env):
    shutil.copytree(env.checkpoint, tmp / "ckpt")
    (tmp / "ckpt" / "config.json").unlink()
    (tmp / "ckpt" / ".config.json.x1y2.tmp").write_text('{"half')
    (tmp / "ckpt" / ".student.safetensors.a1b2.tmp").write_bytes(b"half")
    data = train_folder(tmp)
    # A state for these scans and settings, as the killed fit left it.
    from mvr3d.models import MVRConfig, MVRDetector, Runtime
    from mvr3d.models.mvr.config import split_runtime

    config, runtime = split_runtime(json.loads(env.config.read_text()))
    clouds = [np.loadtxt(p) for p in sorted((data / "train" / "good").iterdir())]
    MVRDetector(MVRConfig.from_dict(config), Runtime(**runtime)).fit(clouds, progress=False, state_file=tmp / "ckpt" / "training-state.pt")
    return env.fit(data, tmp / "ckpt")


@case("fit_lock_with_garbage", "resume", "ok", owned=("ckpt/*", "ckpt/.*"), timeout=60)
def _(tmp, env):
    (tmp / "ckpt").mkdir()
    (tmp / "ckpt" / ".mvr3d.lock").write_text("not a pid\n")
    return env.fit(train_folder(tmp), tmp / "ckpt")


@case("fit_lock_empty_old", "resume", "ok", owned=("ckpt/*", "ckpt/.*"), timeout=60)
def _(tmp, env):
    (tmp / "ckpt").mkdir()
    lock = tmp / "ckpt" / ".mvr3d.lock"
    lock.write_text("")
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    return env.fit(train_folder(tmp), tmp / "ckpt")


@case("predict_cleans_stale_temps", "resume", "ok", needs="checkpoint", owned=("out/*", "out/.*"))
def _(tmp, env):
    scan = write_txt(tmp / "in" / "s4.txt", sphere())
    (tmp / "out").mkdir()
    (tmp / "out" / ".s4.txt.abc123.tmp").write_text("half")
    (tmp / "out" / ".mvr3d.lock").write_text("garbage")
    return env.predict(scan, tmp / "out")


# ====================================================================== running cases
def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root`` (symlinks and FIFOs by their target name)."""
    digests = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            digests[relative] = "link:" + os.readlink(path)
        elif path.is_file() and not path.is_fifo():
            digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


@dataclass
class Result:
    case: Case
    code: int | None
    output: str
    seconds: float
    hung: bool = False
    changed: list[str] = field(default_factory=list)

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.output or self.code not in (0, 2, None, 130)

    @property
    def problems(self) -> list[str]:
        found = []
        if self.hung:
            found.append("hang")
        if self.traceback:
            found.append("traceback")
        if self.changed:
            found.append("changed " + ",".join(self.changed[:3]))
        if not self.hung and not self.traceback:
            if self.case.expect == "error" and self.code == 0:
                found.append("no error")
            if self.case.expect == "ok" and self.code != 0:
                found.append("failed")
            errors = [line for line in self.output.splitlines() if "error:" in line]
            if self.code == 2 and len(errors) != 1:
                found.append(f"{len(errors)} error lines")
            if self.case.output and not re.search(self.case.output, self.output):
                found.append(f"output lacks /{self.case.output}/")
        return found


def _changed(before: dict[str, str], after: dict[str, str], owned: tuple[str, ...]) -> list[str]:
    import fnmatch

    return [
        name for name, digest in before.items()
        if after.get(name) != digest and not any(fnmatch.fnmatch(name, pattern) for pattern in owned)
    ]


def run_case(case_: Case, env: Env, scratch: Path, *, in_process: bool = False) -> Result:
    tmp = scratch / case_.name
    tmp.mkdir(parents=True)
    mounts = []
    try:
        argv = case_.build(tmp, env)
        mounts = [p for p in tmp.rglob("small") if os.path.ismount(p)]
        before = hash_tree(tmp)
        started = time.perf_counter()
        if in_process:
            code, output, hung = _in_process(argv, case_.timeout, cwd=tmp)
        else:
            code, output, hung = _subprocess(argv, case_.timeout, cwd=tmp)
        seconds = time.perf_counter() - started
        changed = _changed(before, hash_tree(tmp), case_.owned)
        if (tmp / "PWNED").exists() or (Path.cwd() / "PWNED").exists():
            changed.append("PWNED (a pickle payload ran)")
        return Result(case_, code, output, seconds, hung, changed)
    finally:
        for mount in mounts:
            subprocess.run(["umount", "-l", str(mount)], check=False)


_CHILD = "import sys; from mvr3d.cli import main; sys.exit(main(sys.argv[1:]))"


def _subprocess(argv: list[str], timeout: float, cwd: Path) -> tuple[int | None, str, bool]:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )
    try:
        output, _ = child.communicate(timeout=timeout)
        return child.returncode, output, False
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
        return None, output, True


class _TimeLimit(BaseException):
    pass


def _in_process(argv: list[str], timeout: float, cwd: Path) -> tuple[int | None, str, bool]:
    """Run ``mvr3d.cli.main`` here; SIGALRM ends a blocked call. Uncaught exceptions are
    formatted as Python would print them, so they count as tracebacks."""
    import traceback

    from mvr3d.cli import main

    def alarm(signum, frame):
        raise _TimeLimit

    buffer = io.StringIO()
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    old_cwd = os.getcwd()
    hung, code = False, None
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            except _TimeLimit:
                hung = True
            except Exception:
                traceback.print_exc(file=buffer)
                code = 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(old_cwd)
    return code, buffer.getvalue(), hung


# ------------------------------------------------------------------- kill -9 resume
def kill_resume_probe(scratch: Path, env: Env, kills: int = 6, seed: int = 7) -> dict[str, int]:
    """SIGKILL ``mvr3d fit`` at random moments (saves included: save_every=1), rerun the same
    command until it finishes; count reruns that refused the folder or crashed."""
    import random

    rng = random.Random(seed)
    counts = {"kills": 0, "resumed": 0, "blocked": 0, "tracebacks": 0}
    data = train_folder(scratch / "kill")
    config = dict(TINY, iterations=12)
    (scratch / "kill" / "c.json").write_text(json.dumps(config))
    for attempt in range(kills):
        out = scratch / "kill" / f"ckpt{attempt}"
        argv = ["fit", "--method", "mvr", "--data", str(data), "--out", str(out), "--config", str(scratch / "kill" / "c.json"),
                "--save-every", "1"]
        child = subprocess.Popen([sys.executable, "-c", _CHILD, *argv], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not out.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 6.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        counts["kills"] += 1
        rerun = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, timeout=300)
        if "Traceback" in rerun.stderr:
            counts["tracebacks"] += 1
        if rerun.returncode == 0 and (out / "config.json").is_file() and not list(out.glob(".*.tmp")):
            counts["resumed"] += 1
        elif "already there" in rerun.stderr:  # killed after the checkpoint was complete
            counts["resumed"] += 1
        else:
            counts["blocked"] += 1
            print(f"  kill {attempt}: rerun failed: {rerun.stderr.strip()[-300:]}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    parser.add_argument("-v", action="store_true", help="print every case's output")
    parser.add_argument("--kills", type=int, default=6, help="kill -9 resume attempts (0: none)")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="mvr3d-hostile-"))
    env = Env(scratch)
    env.make_checkpoint()
    root = os.geteuid() == 0
    table: dict[str, dict[str, int]] = {}
    for case_ in CASES:
        if args.k not in case_.name:
            continue
        row = table.setdefault(case_.category, {"cases": 0, "traceback": 0, "hang": 0, "changed": 0, "wrong": 0, "skipped": 0})
        if case_.needs == "root" and not root:
            row["skipped"] += 1
            continue
        result = run_case(case_, env, scratch)
        row["cases"] += 1
        problems = result.problems
        row["traceback"] += result.traceback
        row["hang"] += result.hung
        row["changed"] += bool(result.changed)
        row["wrong"] += bool(problems) and not (result.traceback or result.hung or result.changed)
        status = "ok " if not problems else "BAD"
        last = (result.output.strip().splitlines() or [""])[-1][:150]
        print(f"{status} {case_.name:<42} rc={result.code} {result.seconds:5.1f}s {'; '.join(problems)}  | {last}")
        if args.v or problems:
            if args.v:
                print("    " + result.output.strip().replace("\n", "\n    ")[-2000:])
    if args.kills and not args.k:
        counts = kill_resume_probe(scratch, env, args.kills)
        table["resume after kill -9"] = {
            "cases": counts["kills"], "traceback": counts["tracebacks"], "hang": 0, "changed": 0,
            "wrong": counts["blocked"], "skipped": 0,
        }
    print("\n| category | cases | tracebacks | hangs | user files changed | wrong result | skipped |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    total = {k: 0 for k in ("cases", "traceback", "hang", "changed", "wrong", "skipped")}
    for category, row in table.items():
        print(f"| {category} | {row['cases']} | {row['traceback']} | {row['hang']} | {row['changed']} | {row['wrong']} | {row['skipped']} |")
        for key in total:
            total[key] += row[key]
    print(f"| **all** | {total['cases']} | {total['traceback']} | {total['hang']} | {total['changed']} | {total['wrong']} | {total['skipped']} |")
    shutil.rmtree(scratch, ignore_errors=True)
    return int(any(total[k] for k in ("traceback", "hang", "changed", "wrong")))


if __name__ == "__main__":
    sys.exit(main())
