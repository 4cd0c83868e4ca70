"""``mvr3d serve``: a fitted detector behind HTTP for an inspection line.

``POST /inspect?filename=part.pcd`` with the scan file as the request body answers the
verdict, scores and anomalous regions as JSON; ``GET /health`` says what is loaded. The
detector is loaded once; requests that arrive together are scored together (one
``score_many`` call, :class:`BatchScorer`), which is what a GPU needs to be busy. Uploads
are bounded, and a file that cannot be read is a 4xx with the reader's message, never a
traceback.

FastAPI and uvicorn are an optional extra: ``pip install 'mvr3d[serve]'``.
"""

# No "from __future__ import annotations": FastAPI reads the endpoint annotations at run time,
# and they name the lazily imported fastapi module.

import asyncio
import queue
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Self

import numpy as np

from mvr3d import __version__
from mvr3d.errors import InputError, MVR3DError
from mvr3d.io import READ_FORMATS, read_points
from mvr3d.models.base import Detector
from mvr3d.models.inspection import inspect_result
from mvr3d.scans import ScanScore, as_points

DEFAULT_MAX_UPLOAD_MB = 256
# How long the scorer waits for more requests to join a batch once one has arrived.
BATCH_WINDOW_S = 0.005
MAX_BATCH = 8
_INSTALL_HINT = "mvr3d serve needs FastAPI and uvicorn: pip install 'mvr3d[serve]'"


def require_service() -> tuple[ModuleType, ModuleType]:
    try:
        import fastapi  # local: optional dependency (the 'serve' extra)
        import uvicorn  # local: optional dependency
    except ImportError as error:
        raise MVR3DError(f"{_INSTALL_HINT} ({error})") from None
    return fastapi, uvicorn


@dataclass
class BatchScorer:
    """One thread owns the detector; requests queue points and wait for their result.

    Whatever has queued up within ``window`` seconds of the first waiting request (at most
    ``max_batch``) is scored by one ``score_many`` call; the detector is never used by two
    threads at once.
    """

    detector: Detector
    window: float = BATCH_WINDOW_S
    max_batch: int = MAX_BATCH
    batches: int = 0
    scans: int = 0
    _queue: queue.Queue = field(default_factory=queue.Queue, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="mvr3d-scorer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def submit(self, points: np.ndarray) -> Future:
        done: Future = Future()
        self._queue.put((points, done))
        return done

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._score(batch)

    def _score(self, batch: list[tuple[np.ndarray, Future]]) -> None:
        try:
            results = self.detector.score_many([points for points, _ in batch])
        except Exception as error:  # noqa: BLE001 - handed to every waiting request
            for _, done in batch:
                done.set_exception(error)
            return
        self.batches += 1
        self.scans += len(batch)
        for (_, done), result in zip(batch, results, strict=True):
            done.set_result(result)


def answer(name: str, points: np.ndarray, result: ScanScore, detector: Detector) -> dict:
    """The JSON for one scored scan: scores, and with a threshold the verdict and regions."""
    body: dict = {"file": name, "points": len(points), "object_score": float(result.object_score),
                  "coverage": float(result.coverage), "normalised_score": None, "verdict": None, "regions": None}
    if detector.threshold_ is not None:
        decided = inspect_result(points, result, detector.threshold_)
        body.update(normalised_score=decided.normalised_score, verdict=decided.verdict,
                    regions=[region.to_dict() for region in decided.regions])
    return body


def create_app(detector: Detector, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20,
               window: float = BATCH_WINDOW_S, max_batch: int = MAX_BATCH) -> object:
    """The FastAPI application serving ``detector`` (fitted; its threshold, if any, decides)."""
    fastapi, _ = require_service()
    detector.check_is_fitted()
    scorer = BatchScorer(detector, window, max_batch)

    @asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        scorer.start()
        yield
        scorer.stop()

    app = fastapi.FastAPI(title="mvr3d", version=__version__, lifespan=lifespan)
    app.state.scorer = scorer

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "version": __version__, "method": detector.name,
                "threshold": detector.threshold_ is not None, "batches": scorer.batches, "scans": scorer.scans}

    @app.post("/inspect")
    async def inspect(request: fastapi.Request, filename: str = "scan.pcd") -> dict:
        suffix = Path(filename).suffix.lower()
        if suffix not in READ_FORMATS:
            raise fastapi.HTTPException(415, f"{filename}: unknown scan format; readable: {', '.join(sorted(READ_FORMATS))}")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_upload_bytes:
            raise fastapi.HTTPException(413, f"scan larger than the {max_upload_bytes} byte limit")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > max_upload_bytes:
                raise fastapi.HTTPException(413, f"scan larger than the {max_upload_bytes} byte limit")
        try:
            points = await asyncio.to_thread(_read_upload, bytes(data), suffix, filename)
        except InputError as error:
            raise fastapi.HTTPException(400, str(error)) from None
        try:
            result = await asyncio.wrap_future(scorer.submit(points))
        except InputError as error:
            raise fastapi.HTTPException(422, str(error)) from None
        return answer(filename, points, result, detector)

    return app


def _read_upload(data: bytes, suffix: str, filename: str) -> np.ndarray:
    """Points of an uploaded file: the readers dispatch on the extension, so it lands in a
    temporary file of that name (deleted at once) and is read and validated like any scan."""
    if not data:
        raise InputError(f"{filename}: the request body is empty; send the scan file as the body")
    with tempfile.TemporaryDirectory(prefix="mvr3d-serve-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return as_points(read_points(path))
        except InputError as error:
            raise InputError(str(error).replace(str(path), filename)) from None
