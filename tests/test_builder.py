"""The tiny benchmark preset: layout, labels, partial posed scans, determinism, safety."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from mvr3d.cli import make_benchmark as cli
from mvr3d.data import Real3DAD, demo_shapes_dir, make_benchmark, make_demo_dataset
from mvr3d.data.scanner import load_mesh, sample_with_normals
from mvr3d.errors import InputError


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, float]:
    out = tmp_path_factory.mktemp("tiny") / "bench"
    start = time.perf_counter()
    meta = make_benchmark(demo_shapes_dir(), out, preset="tiny", seed=0)
    return out, meta, time.perf_counter() - start


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_tiny_builds_fast_with_real3d_layout(built: tuple[Path, dict, float]) -> None:
    out, meta, seconds = built
    assert seconds < 10
    assert len(meta["classes"]) == 2 and json.loads((out / "meta.json").read_text()) == meta
    for name, entry in meta["classes"].items():
        assert entry["licence"].startswith("MIT")
        train = Real3DAD(out, name, "train")
        test = Real3DAD(out, name, "test")
        assert len(train) == 4 and [s.name for s in train][0] == "0_template"
        assert sum(s.label for s in test) == 4 and len(test) == 8
        stems = {s.name for s in test}
        assert {p.stem for p in (out / name / "gt").glob("*.txt")} == {
            s for s in stems if "good" not in s
        }
        assert {s.split("_")[1] for s in stems} == {"good", "bulge", "sink"}
        for sample in test:
            assert 3000 <= sample.num_points <= 5000


def test_scans_come_from_every_side_with_nuisances_recorded(built: tuple[Path, dict, float]) -> None:
    """Realistic presets: scanner directions over the whole sphere, and meta.json records
    each scan's view, visible share and noise for the nuisance check."""
    _, meta, _ = built
    scans = [s for entry in meta["classes"].values() for s in entry["scans"].values()]
    heights = [s["view"][2] for s in scans]
    assert min(heights) < -0.3 and max(heights) > 0.3
    for scan in scans:
        assert 0.0 < scan["visible_share"] < 1.0 and 0.001 <= scan["noise"] <= 0.003


def test_templates_are_merged_noisy_scans(built: tuple[Path, dict, float]) -> None:
    """Templates carry scanner noise like the tests, not exact samples of the mesh."""
    out, meta, _ = built
    for name, entry in meta["classes"].items():
        mesh = load_mesh(demo_shapes_dir() / entry["source"], entry["size_mm"])
        surface, _ = sample_with_normals(mesh, 200_000, np.random.default_rng(0))
        off = cKDTree(surface).query(Real3DAD(out, name, "train")[0].points)[0]
        assert np.median(off) > 0.0004 * entry["size_mm"]


def test_anomaly_fraction_in_range(built: tuple[Path, dict, float]) -> None:
    out, meta, _ = built
    for name in meta["classes"]:
        for sample in Real3DAD(out, name, "test"):
            share = sample.point_labels.mean()
            assert (0.01 <= share <= 0.05) if sample.label else share == 0
            assert share == pytest.approx(
                meta["classes"][name]["scans"][sample.name]["anomaly_fraction"], abs=1e-6
            )


def template_frame(points: np.ndarray, scan_meta: dict) -> np.ndarray:
    rotation, shift = np.array(scan_meta["rotation"]), np.array(scan_meta["translation"])
    return (points - shift) @ rotation


def test_labels_on_displaced_points_and_scans_partial_and_posed(
    built: tuple[Path, dict, float],
) -> None:
    out, meta, _ = built
    for name, entry in meta["classes"].items():
        mesh = load_mesh(demo_shapes_dir() / entry["source"], entry["size_mm"])
        surface, _ = sample_with_normals(mesh, 200_000, np.random.default_rng(0))
        tree = cKDTree(surface)
        template = Real3DAD(out, name, "train")[0].points
        template_tree = cKDTree(template)
        spacing = np.median(template_tree.query(template, k=2)[0][:, 1])
        for sample in Real3DAD(out, name, "test"):
            scan_meta = entry["scans"][sample.name]
            aligned = template_frame(sample.points, scan_meta)
            off_surface = tree.query(aligned)[0]
            raw_off = tree.query(sample.points)[0]
            assert np.median(raw_off) > 3 * np.median(off_surface)  # posed differently
            if sample.label:
                labelled, normal = (
                    off_surface[sample.point_labels == 1],
                    off_surface[sample.point_labels == 0],
                )
                assert np.median(labelled) > 1.3 * np.median(normal)  # noisy scans
                far = off_surface > 0.015 * entry["size_mm"]
                assert not far.any() or sample.point_labels[far].mean() > 0.9
            # One-sided: much of the complete template has no scan point nearby.
            near = cKDTree(aligned).query(template)[0] < 3 * spacing
            assert near.mean() < 0.8


def test_same_seed_same_bytes(built: tuple[Path, dict, float], tmp_path: Path) -> None:
    out, _, _ = built
    again = make_demo_dataset(tmp_path / "again", seed=0)
    assert files_of(again) == files_of(out)
    parallel = make_benchmark(demo_shapes_dir(), tmp_path / "parallel", "tiny", seed=0, workers=2)
    assert files_of(tmp_path / "parallel") == files_of(out) and parallel["preset"] == "tiny"
    other = make_benchmark(demo_shapes_dir(), tmp_path / "other", preset="tiny", seed=1)
    assert other["classes"] != json.loads((out / "meta.json").read_text())["classes"]


def test_refuses_foreign_folder_and_rebuilds_own(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(InputError, match="refusing"):
        make_benchmark(demo_shapes_dir(), foreign, preset="tiny")
    assert [p.name for p in foreign.iterdir()] == ["thesis.txt"]

    own = tmp_path / "own"
    make_benchmark(demo_shapes_dir(), own, preset="tiny", seed=3)
    (own / "angle_block" / "test" / "stale.pcd").write_bytes(b"old")
    make_benchmark(demo_shapes_dir(), own, preset="tiny", seed=3)
    assert not (own / "angle_block" / "test" / "stale.pcd").exists()

    meta = json.loads((own / "meta.json").read_text())
    (own / "meta.json").write_text(json.dumps({**meta, "preset": "standard"}))
    with pytest.raises(InputError, match="'standard' benchmark"):
        make_benchmark(demo_shapes_dir(), own, preset="tiny")
    with pytest.raises(InputError, match="unknown preset"):
        make_benchmark(demo_shapes_dir(), tmp_path / "x", preset="huge")


def test_cli_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["make-benchmark", "--out", str(tmp_path / "b"), "--seed", "2"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "angle_block" in printed and "idler_riser" in printed and "tiny" in printed


def test_demo_predicts_one_good_and_one_defective_scan(tmp_path):
    from mvr3d.engine.demo import sample_scans

    test = tmp_path / "test"
    test.mkdir()
    for name in ("0_good.pcd", "1_good.pcd", "2_bulge.pcd", "3_sink.pcd"):
        (test / name).write_text(name)
    folder = sample_scans(test, tmp_path / "samples")
    assert sorted(p.name for p in folder.iterdir()) == ["0_good.pcd", "2_bulge.pcd"]
    assert (folder / "2_bulge.pcd").read_text() == "2_bulge.pcd"


def test_demo_refuses_weights_for_a_method_without_a_backbone(tmp_path, capsys):
    from mvr3d.cli import main

    assert main(["demo", "--out", str(tmp_path / "d"), "--method", "template", "--weights", "w.safetensors"]) == 2
    assert "--weights only applies to --method mvr" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_scan_points_override_sets_every_test_scan_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--scan-points`` builds scans of the asked size (a speed target stated for 100 k-point
    scans is measured on such scans) under a preset name of their own."""
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["make-benchmark", "--out", str(tmp_path / "b"), "--scan-points", "6000", "6000"])
    assert args.func(args) == 0
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert meta["preset"] == "tiny-points-6000-6000" and meta["settings"]["scan_points"] == [6000, 6000]
    for name in meta["class_names"]:
        sizes = [len(Real3DAD(tmp_path / "b", name, "test")[i].points) for i in range(8)]
        assert sizes == [6000] * 8
    # A plain tiny build may not overwrite it, nor it a plain one.
    with pytest.raises(InputError, match="'tiny-points-6000-6000' benchmark"):
        make_benchmark(demo_shapes_dir(), tmp_path / "b", preset="tiny")
    with pytest.raises(InputError, match=r"1 <= MIN <= MAX, got 500 and 400"):
        make_benchmark(demo_shapes_dir(), tmp_path / "c", preset="tiny", scan_points=(500, 400))


def test_good_scans_override_sets_the_good_test_scans_per_class(tmp_path: Path) -> None:
    """``--good-scans`` gives a nuisance check the good scans it needs; defective scans stay as
    the preset has them, and the build carries a preset name of its own."""
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["make-benchmark", "--out", str(tmp_path / "b"), "--good-scans", "7"])
    assert args.func(args) == 0
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert meta["preset"] == "tiny-good-7" and meta["settings"]["n_test_good"] == 7
    for name in meta["class_names"]:
        test = Real3DAD(tmp_path / "b", name, "test")
        assert len(test) == 11
        labels = [test[i].label for i in range(11)]
        assert sorted(labels) == [0] * 7 + [1] * 4
        assert meta["classes"][name]["test_good"] == 7
    with pytest.raises(InputError, match="good scans must be at least 1, got 0"):
        make_benchmark(demo_shapes_dir(), tmp_path / "c", preset="tiny", good_scans=0)
