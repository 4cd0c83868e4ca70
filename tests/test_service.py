"""`mvr3d serve` over real HTTP: a server on 127.0.0.1 in a thread, an httpx client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mvr3d.detectors import create_detector
from mvr3d.io import write_points
from shapes import blob

httpx = pytest.importorskip("httpx")  # the 'serve' extra and its test client; installed by `make test`
uvicorn = pytest.importorskip("uvicorn")
from mvr3d.service import create_app  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def detector():
    fitted = create_detector("btf_raw", seed=0).fit([blob(3000, s) for s in range(3)], progress=False)
    fitted.calibrate([blob(3000, s) for s in range(3)], 0.05)
    return fitted


@pytest.fixture(scope="module")
def server(detector) -> Iterator[str]:
    port = free_port()
    app = create_app(detector, max_upload_bytes=200_000, window=0.05, max_batch=4)
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    for _ in range(200):
        if instance.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def scan_file(tmp_path: Path, seed: int, name: str = "part.pcd") -> Path:
    path = tmp_path / name
    write_points(path, blob(1500, seed))
    return path


def test_health(server: str) -> None:
    answer = httpx.get(f"{server}/health").json()
    assert answer["status"] == "ok" and answer["method"] == "btf_raw" and answer["threshold"] is True


def test_inspect_answers_what_the_api_does(server: str, detector, tmp_path: Path) -> None:
    path = scan_file(tmp_path, 20)
    reply = httpx.post(f"{server}/inspect", params={"filename": "part.pcd"}, content=path.read_bytes())
    assert reply.status_code == 200
    body = reply.json()
    expected = detector.inspect(path)
    assert body["file"] == "part.pcd" and body["points"] == 1500
    assert body["object_score"] == pytest.approx(expected.object_score, rel=1e-6)
    assert body["verdict"] == expected.verdict and len(body["regions"]) == len(expected.regions)


def test_concurrent_requests_each_get_their_own_answer(server: str, detector, tmp_path: Path) -> None:
    paths = [scan_file(tmp_path, 30 + i, f"p{i}.pcd") for i in range(6)]
    before = httpx.get(f"{server}/health").json()

    def send(path: Path) -> dict:
        return httpx.post(f"{server}/inspect", params={"filename": path.name}, content=path.read_bytes()).json()

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, paths))
    for path, body in zip(paths, answers, strict=True):
        assert body["file"] == path.name
        assert body["object_score"] == pytest.approx(detector.score(path).object_score, rel=1e-6)
    after = httpx.get(f"{server}/health").json()
    assert after["scans"] - before["scans"] == 6
    assert after["batches"] - before["batches"] <= 6


def test_bad_uploads_get_a_clear_4xx(server: str, tmp_path: Path) -> None:
    garbage = httpx.post(f"{server}/inspect", params={"filename": "x.pcd"}, content=b"not a point cloud\n")
    assert garbage.status_code == 400 and "x.pcd" in garbage.json()["detail"]
    assert "upload" not in garbage.json()["detail"]  # the server's temporary name stays hidden
    unknown = httpx.post(f"{server}/inspect", params={"filename": "x.docx"}, content=b"abc")
    assert unknown.status_code == 415 and ".pcd" in unknown.json()["detail"]
    empty = httpx.post(f"{server}/inspect", params={"filename": "x.pcd"}, content=b"")
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    big = httpx.post(f"{server}/inspect", params={"filename": "x.txt"}, content=b"0 0 0\n" * 50_000)
    assert big.status_code == 413
    assert httpx.get(f"{server}/health").json()["status"] == "ok"  # still serving


def test_the_scorer_batches_what_has_queued_up(detector) -> None:
    from mvr3d.service import BatchScorer

    scans = [blob(800, 40 + i) for i in range(5)]
    scorer = BatchScorer(detector, window=0.2, max_batch=4)
    waiting = [scorer.submit(points) for points in scans]  # all queued before the scorer runs
    scorer.start()
    results = [done.result(timeout=60) for done in waiting]
    scorer.stop()
    assert (scorer.batches, scorer.scans) == (2, 5)  # 4 together, then the fifth
    for points, result in zip(scans, results, strict=True):
        assert result.object_score == pytest.approx(detector.score(points).object_score, rel=1e-6)
