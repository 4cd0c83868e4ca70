"""Real3D-AD reader, user folder layout and layout detection on small trees written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mvr3d.data.real3d
import mvr3d.io
from mvr3d.data import FolderDataset, Real3DAD, list_categories, open_dataset
from mvr3d.errors import DatasetError


def cloud(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def write_gt(path: Path, points: np.ndarray, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.column_stack([points, labels]), fmt="%.6f %.6f %.6f %d")


@pytest.fixture
def real3d_root(tmp_path: Path) -> Path:
    """One category: 2 templates, a good scan, a bulge with defect labels, a clean sink."""
    cat = tmp_path / "duck"
    for folder in ("train", "test"):
        (cat / folder).mkdir(parents=True)
    for k in (0, 1):
        mvr3d.io.write_points(cat / "train" / f"{k}_template.pcd", cloud(50, k))
    (cat / "train" / "notes.pcd").write_bytes(b"")  # not a template: must be ignored
    mvr3d.io.write_points(cat / "test" / "10_good.pcd", cloud(40, 10))
    bulge = cloud(30, 2)
    mvr3d.io.write_points(cat / "test" / "2_bulge.pcd", bulge)
    write_gt(cat / "gt" / "2_bulge.txt", bulge, (np.arange(30) < 4).astype(int))
    sink = cloud(20, 3)
    mvr3d.io.write_points(cat / "test" / "3_sink.pcd", sink)
    write_gt(cat / "gt" / "3_sink.txt", sink, np.zeros(20, int))
    return tmp_path


def test_real3d_train_and_test_labels(real3d_root: Path) -> None:
    train = Real3DAD(real3d_root, "duck", "train")
    assert [s.name for s in train] == ["0_template", "1_template"]
    assert all(s.point_labels is None and s.label == 0 and s.defect == "good" for s in train)
    assert train[0].points.shape == (50, 3) and train[0].category == "duck"

    test = Real3DAD(real3d_root, "duck", "test")
    assert [s.name for s in test] == ["2_bulge", "3_sink", "10_good"]  # natural order
    bulge, sink, good = test[0], test[1], test[2]
    assert bulge.label == 1 and bulge.defect == "bulge"
    assert bulge.point_labels.dtype == np.uint8
    np.testing.assert_array_equal(bulge.point_labels, (np.arange(30) < 4).astype(np.uint8))
    assert sink.label == 0 and sink.point_labels.sum() == 0  # no gt label 1 -> normal
    assert good.label == 0 and good.defect == "good"
    np.testing.assert_array_equal(good.point_labels, np.zeros(40, np.uint8))


def test_good_scan_needs_no_gt(real3d_root: Path) -> None:
    assert not (real3d_root / "duck" / "gt" / "10_good.txt").exists()
    assert Real3DAD(real3d_root, "duck", "test")[-1].label == 0


def test_files_are_read_only_on_access(real3d_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real_read = mvr3d.data.real3d.read_points

    def spy(path, *args, **kwargs):
        calls.append(Path(path))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(mvr3d.data.real3d, "read_points", spy)  # where the reader looks it up
    test = Real3DAD(real3d_root, "duck", "test")
    assert len(test) == 3 and calls == []
    test[2]
    assert [p.name for p in calls] == ["10_good.pcd"]
    test[0]
    assert [p.name for p in calls[1:]] == ["2_bulge.pcd", "2_bulge.txt"]


def test_gt_count_mismatch_names_both_files(real3d_root: Path) -> None:
    points = cloud(30, 2)
    write_gt(real3d_root / "duck" / "gt" / "2_bulge.txt", points[:25], np.zeros(25, int))
    with pytest.raises(DatasetError) as info:
        Real3DAD(real3d_root, "duck", "test")[0]
    message = str(info.value)
    assert "2_bulge.pcd" in message and "2_bulge.txt" in message
    assert "30" in message and "25" in message


def test_missing_gt_is_an_error(real3d_root: Path) -> None:
    (real3d_root / "duck" / "gt" / "3_sink.txt").unlink()
    with pytest.raises(DatasetError, match="3_sink.txt"):
        Real3DAD(real3d_root, "duck", "test")[1]


def test_missing_templates_and_category(tmp_path: Path) -> None:
    (tmp_path / "fish" / "train").mkdir(parents=True)
    mvr3d.io.write_points(tmp_path / "fish" / "train" / "scan.pcd", cloud(5, 0))
    with pytest.raises(DatasetError, match=r"\*template\*\.pcd") as info:
        Real3DAD(tmp_path, "fish", "train")
    assert "fish/train" in str(info.value)
    with pytest.raises(DatasetError, match="test scans"):
        Real3DAD(tmp_path, "fish", "test")
    with pytest.raises(DatasetError, match="'cow' not found"):
        Real3DAD(tmp_path, "cow", "train")
    with pytest.raises(DatasetError, match="split"):
        Real3DAD(tmp_path, "fish", "val")  # type: ignore[arg-type]


def test_list_categories(real3d_root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    (real3d_root / "stray_file.txt").write_text("x")
    (real3d_root / "no_train").mkdir()
    assert list_categories(real3d_root) == ["duck"]
    with pytest.raises(DatasetError, match="no category"):
        list_categories(tmp_path_factory.mktemp("empty"))


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    root = tmp_path / "bracket"
    for sub in ("train/good", "test/good", "test/crack", "test/dent"):
        (root / sub).mkdir(parents=True)
    mvr3d.io.write_points(root / "train" / "good" / "a.npy", cloud(20, 0))
    mvr3d.io.write_points(root / "train" / "good" / "b.pcd", cloud(25, 1))
    mvr3d.io.write_points(root / "test" / "good" / "c.npy", cloud(15, 2))
    mvr3d.io.write_points(root / "test" / "crack" / "d.npy", cloud(10, 3))
    np.savetxt(root / "test" / "crack" / "d.labels.txt", [0, 1, 1, 0, 0, 0, 0, 0, 0, 0], fmt="%d")
    mvr3d.io.write_points(root / "test" / "crack" / "f.npy", cloud(12, 4))  # no labels at all
    dent = cloud(8, 5)
    mvr3d.io.write_points(root / "test" / "dent" / "e.pcd", dent)
    write_gt(root / "ground_truth" / "dent" / "e.txt", dent, np.eye(8, dtype=int)[0])
    (root / "test" / "dent" / "README.md").write_text("not a scan")
    return root


def test_folder_layout_with_labels(folder_root: Path) -> None:
    train = FolderDataset(folder_root, "train")
    assert [s.name for s in train] == ["a", "b"]
    assert all(s.point_labels is None and s.category == "bracket" for s in train)

    test = {s.name: s for s in FolderDataset(folder_root, "test")}
    assert sorted(test) == ["c", "d", "e", "f"]
    assert test["c"].label == 0 and test["c"].point_labels.sum() == 0
    assert test["d"].defect == "crack" and test["d"].label == 1
    np.testing.assert_array_equal(np.flatnonzero(test["d"].point_labels), [1, 2])
    np.testing.assert_array_equal(np.flatnonzero(test["e"].point_labels), [0])
    assert test["f"].label == 1 and test["f"].point_labels is None


def test_folder_label_count_mismatch(folder_root: Path) -> None:
    np.savetxt(folder_root / "test" / "crack" / "d.labels.txt", [0, 1], fmt="%d")
    test = FolderDataset(folder_root, "test")
    index = [path.name for path, _ in test.items].index("d.npy")
    with pytest.raises(DatasetError) as info:
        test[index]
    assert "d.labels.txt" in str(info.value) and "10 points" in str(info.value)


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "train" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="train/good"):
        FolderDataset(tmp_path, "train")


def test_open_dataset_detects_layouts(real3d_root: Path, folder_root: Path) -> None:
    assert isinstance(open_dataset(real3d_root, "duck", "test"), Real3DAD)
    assert isinstance(open_dataset(real3d_root / "duck", split="train"), Real3DAD)
    assert isinstance(open_dataset(folder_root, split="test"), FolderDataset)
    assert isinstance(open_dataset(folder_root.parent, "bracket", "train"), FolderDataset)
    with pytest.raises(DatasetError, match="pass a category"):
        open_dataset(real3d_root)
    with pytest.raises(DatasetError, match="'cat' not found"):
        open_dataset(real3d_root, "cat")
    with pytest.raises(DatasetError, match="unknown layout"):
        open_dataset(folder_root / "test")
