"""The one interface every method implements, so that fit, predict, benchmark and report
handle MVR and the baselines alike (as scikit-learn estimators share ``BaseEstimator``).

A :class:`Detector` is built unfitted, learns normal shape with :meth:`~Detector.fit`,
scores scans with :meth:`~Detector.score` / :meth:`~Detector.score_many` (one score per
input point, in input order) and is saved to / loaded from a folder. Methods are looked
up by name in :mod:`mvr3d.models.registry`; :func:`load_detector` opens any saved folder.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from mvr3d.errors import CheckpointError, InputError, NotFittedError
from mvr3d.models import persistence
from mvr3d.models.inspection import Inspection, inspect_result
from mvr3d.models.thresholds import DEFAULT_FALSE_ALARM_RATE, Threshold, calibrate
from mvr3d.scans import ScanLike, ScanScore, as_points, load_clouds


class Detector(ABC):
    """An anomaly detector for point clouds; register subclasses with ``@register_detector``."""

    name: ClassVar[str] = ""  # the registry name, set by register_detector
    # The pass/fail threshold: set by calibrate(), saved and loaded with the detector.
    threshold_: Threshold | None = None
    # Whether calibrate() refits a copy per left-out scan by default (off where a fit is costly).
    calibrate_leave_one_out: ClassVar[bool] = True
    # Whether calibrate() shows the detector its normal views in random poses: for methods
    # that register each scan, so that failures of the pose search count as normal scores.
    calibrate_posed: ClassVar[bool] = False
    # Scans per score_many call that predict and benchmark send unless told otherwise.
    score_batch: ClassVar[int] = 4

    @abstractmethod
    def fit(self, scans: Iterable[ScanLike], progress: bool = True) -> Detector:
        """Learn from normal scans; returns ``self``."""

    @abstractmethod
    def score(self, scan: ScanLike) -> ScanScore:
        """Per-point scores (input order and count) and the object score of one scan."""

    def score_many(self, scans: Sequence[ScanLike]) -> list[ScanScore]:
        """One result per scan, in order (detectors that batch scans override this)."""
        return [self.score(scan) for scan in scans]

    @property
    @abstractmethod
    def is_fitted(self) -> bool:
        """Whether the detector has learnt (or loaded) what scoring needs."""

    def check_is_fitted(self) -> None:
        """Raise :class:`NotFittedError` naming the method unless the detector is fitted."""
        if not self.is_fitted:
            label = f"detector {self.name!r} ({type(self).__name__})" if self.name else type(self).__name__
            raise NotFittedError(f"{label} is not fitted: call fit() or {type(self).__name__}.load() first")

    def calibrate(self, normal_scans: Iterable[ScanLike], false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
                  leave_one_out: bool | None = None) -> Threshold:
        """Set ``threshold_`` from simulated views of ``normal_scans`` (the training scans),
        each scored by a copy fitted without the scan it comes from (leave one out; see
        :mod:`mvr3d.models.thresholds`), or by this detector when ``leave_one_out`` is off
        (default: ``calibrate_leave_one_out`` of the method)."""
        self.check_is_fitted()
        if leave_one_out is None:
            leave_one_out = self.calibrate_leave_one_out
        self.threshold_ = calibrate(self.unfitted_copy, self, load_clouds(normal_scans), false_alarm_rate,
                                    leave_one_out=leave_one_out, posed=self.calibrate_posed)
        return self.threshold_

    def unfitted_copy(self) -> Detector:
        """A new, unfitted detector with the same settings (for leave-one-out calibration)."""
        raise NotImplementedError(f"{type(self).__name__} cannot copy itself; calibrate with leave_one_out=False")

    def inspect(self, scan: ScanLike) -> Inspection:
        """Scores, verdict and anomalous regions of one scan (needs a threshold)."""
        return self.inspect_many([scan])[0]

    def inspect_many(self, scans: Sequence[ScanLike]) -> list[Inspection]:
        """:meth:`inspect` for several scans, scored together as :meth:`score_many` does."""
        if self.threshold_ is None:
            raise NotFittedError(f"{type(self).__name__} has no pass/fail threshold: call calibrate() first, or fit "
                                 "from the command line with --false-alarm-rate")
        points = [as_points(scan) for scan in scans]
        return [inspect_result(p, r, self.threshold_) for p, r in zip(points, self.score_many(points), strict=True)]

    @abstractmethod
    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Write the fitted detector to ``folder`` (atomically); returns the folder."""

    @classmethod
    @abstractmethod
    def load(cls, folder: str | Path, device: str | None = None) -> Detector:
        """A detector saved by :meth:`save`, ready to score (on ``device`` where it has one)."""


class ArrayStateDetector(Detector):
    """A detector whose constructor parameters are JSON values and whose fitted state is a
    few arrays: saved as ``detector.json`` + ``state.safetensors``
    (:mod:`mvr3d.models.persistence`). Subclasses give :meth:`state_arrays` and
    :meth:`restore_state`; parameters are read back from attributes of the same name."""

    @abstractmethod
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything :meth:`fit` learnt, as named arrays (saved in their own dtypes)."""

    @abstractmethod
    def restore_state(self, arrays: dict[str, np.ndarray], path: Path) -> None:
        """Take the fitted state from ``arrays`` (read from ``path``); :class:`CheckpointError`
        naming the array when one is missing or of the wrong shape."""

    @classmethod
    def param_defaults(cls) -> dict[str, object]:
        """Constructor parameters and their defaults; ``device`` is not one: it is where the
        detector runs, chosen again at load."""
        signature = inspect.signature(cls.__init__)
        return {
            name: param.default
            for name, param in list(signature.parameters.items())[1:]
            if name != "device" and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
        }

    # Parameters added after a detector's first release, with the value that reproduces a
    # checkpoint saved before them: such a checkpoint scores as it did when it was saved.
    legacy_params: ClassVar[dict[str, object]] = {}

    def get_params(self) -> dict[str, object]:
        """The constructor arguments this detector was built with (as scikit-learn's)."""
        return {name: getattr(self, name) for name in self.param_defaults()}

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        from mvr3d.models import registry  # local: import cycle, registry imports this module

        self.check_is_fitted()
        if not self.name or registry.detector_class(self.name) is not type(self):
            raise InputError(f"{type(self).__name__} is not a registered detector; it cannot be saved by name")
        path = persistence.save(Path(folder), self.name, self.get_params(), self.state_arrays(), overwrite)
        if self.threshold_ is not None:
            self.threshold_.save(path)
        return path

    @classmethod
    def load(cls, folder: str | Path, device: str | None = None) -> ArrayStateDetector:
        folder = Path(folder)
        params, arrays = persistence.load(folder, cls.name)
        detector = cls._from_params(params, device, folder / persistence.DETECTOR_NAME)
        detector.restore_state(arrays, folder / persistence.STATE_NAME)
        detector.threshold_ = Threshold.load(folder)
        return detector

    def unfitted_copy(self) -> ArrayStateDetector:
        kwargs = self.get_params()
        if "device" in inspect.signature(type(self).__init__).parameters:
            kwargs["device"] = getattr(self, "device", None)
        return type(self)(**kwargs)

    @classmethod
    def _from_params(cls, params: dict, device: str | None, path: Path) -> ArrayStateDetector:
        defaults = cls.param_defaults()
        params = {**cls.legacy_params, **params}
        persistence.check_params(params, defaults, path)
        missing = sorted(set(defaults) - set(params))
        if missing:
            raise CheckpointError(f"{path}: field 'params.{missing[0]}' missing")
        kwargs = dict(params)
        if device is not None and "device" in inspect.signature(cls.__init__).parameters:
            kwargs["device"] = device
        try:
            return cls(**kwargs)
        except InputError as error:
            raise CheckpointError(f"{path}: field 'params': {error}") from None


def load_detector(folder: str | Path, device: str | None = None) -> Detector:
    """Any saved detector: the method named in ``detector.json``, or MVR for a folder with
    MVR's ``config.json`` (checkpoints saved before detector.json existed included).

    Only registered methods load: import :mod:`mvr3d.detectors` to have them all.
    """
    from mvr3d.models import registry  # local: import cycle, registry imports this module

    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder not found")
    method = persistence.checkpoint_method(folder)
    if method is None:
        raise CheckpointError(f"{folder}: not a saved detector (neither {persistence.DETECTOR_NAME} nor config.json is there)")
    try:
        cls = registry.detector_class(method)
    except InputError as error:
        raise CheckpointError(f"{folder / persistence.DETECTOR_NAME}: field 'method': {error}") from None
    return cls.load(folder, device=device)
