"""Exception types raised by mvr3d.

Every error a user can provoke with bad input derives from :class:`MVR3DError`, so
callers can catch one type; messages name the file or field and what was expected.
"""

from __future__ import annotations

from pathlib import Path


class MVR3DError(Exception):
    """Base class of every error mvr3d raises on purpose."""


class InputError(MVR3DError, ValueError):
    """A file, array or argument the user gave is malformed or unusable."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class DatasetError(InputError):
    """A dataset folder does not have the expected layout."""


class CheckpointError(MVR3DError):
    """A saved detector cannot be loaded (missing, corrupted or incompatible)."""


class WeightsNotFoundError(MVR3DError):
    """No source of pretrained backbone weights could be used."""


class ResourceError(MVR3DError, MemoryError):
    """A job needs more memory than is available."""


class NotFittedError(InputError, CheckpointError):
    """A detector was asked to score (or save) before ``fit`` or ``load``.

    Both an :class:`InputError` (the call is a usage mistake) and a
    :class:`CheckpointError` (no fitted state is there), so code that caught either
    when each detector raised its own keeps working.
    """


class ExportError(MVR3DError):
    """An exported network cannot be written, or does not reproduce the eager maps."""
