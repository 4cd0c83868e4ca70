"""Detectors by name (as timm's ``register_model`` / ``create_model`` / ``list_models``).

A detector class registers itself with ``@register_detector("name")`` when its module is
imported: ``import mvr3d.models`` registers ``mvr``, ``import mvr3d.baselines`` the
baselines. This module imports neither package statically, so that ``models`` never depends
on ``baselines``; a name not registered yet makes it import the built-in detector packages
by name once (plugin discovery), so ``create_detector("template")`` works from anywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from mvr3d.errors import InputError
from mvr3d.models.base import Detector

D = TypeVar("D", bound=type[Detector])

_DETECTORS: dict[str, type[Detector]] = {}
BUILTIN_PACKAGES = ("mvr3d.models", "mvr3d.baselines")

# The method the command line uses unless told otherwise: the one that scored best on the
# realistic ``standard`` preset (scans from any side), chosen on its development seed
# (docs/accuracy.md). There ``template`` led by far; MVR alone stayed near chance on object
# scores, MVR plus the template deviation in between.
DEFAULT_METHOD = "template"


def register_detector(name: str) -> Callable[[D], D]:
    """Class decorator: make ``cls`` available as ``name`` and set ``cls.name``."""
    if not name or not name.isidentifier():
        raise ValueError(f"a detector name must be an identifier, got {name!r}")

    def register(cls: D) -> D:
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise TypeError(f"{cls!r} is not a subclass of mvr3d.models.base.Detector")
        taken = _DETECTORS.get(name)
        # The same class may be registered again (a module reloaded), never another one.
        if taken is not None and taken.__qualname__ != cls.__qualname__:
            raise ValueError(f"detector name {name!r} is already taken by {taken.__qualname__}")
        cls.name = name
        _DETECTORS[name] = cls
        return cls

    return register


def register_builtin() -> None:
    """Import the packages whose modules register the built-in detectors."""
    for package in BUILTIN_PACKAGES:
        importlib.import_module(package)


def list_detectors() -> list[str]:
    """Names of the registered detectors (the built-in ones included), sorted."""
    register_builtin()
    return sorted(_DETECTORS)


def detector_class(name: str) -> type[Detector]:
    """The class registered as ``name``; :class:`InputError` listing the names if none is."""
    if isinstance(name, str) and name not in _DETECTORS:
        register_builtin()
    try:
        return _DETECTORS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown method {name!r}; available: {', '.join(list_detectors())}") from None


def create_detector(name: str, **kwargs: object) -> Detector:
    """A new, unfitted detector ``name`` built with ``kwargs``."""
    return detector_class(name)(**kwargs)
