"""Type checks of an MVRConfig dict read from a file (``--config``, a checkpoint's config.json).

JSON can hold any type in any field; the dataclasses check values, not types, so a string
where a number belongs would surface as a TypeError deep inside. These checks name the
field and what it should hold instead.
"""

from __future__ import annotations

import dataclasses
import math

from mvr3d.models.mvr.config import MVRConfig, Runtime, split_runtime
from mvr3d.render import RenderConfig

_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "None": (type(None),)}
# torch.manual_seed takes a 64-bit value, numpy a non-negative one.
SEED_RANGE = (0, 2**63 - 1)


def _allowed(annotation: str) -> tuple[type, ...] | None:
    kinds: tuple[type, ...] = ()
    for name in (part.strip() for part in str(annotation).split("|")):
        if name not in _TYPES:
            return None  # a type these checks do not know: leave it to the dataclass
        kinds += _TYPES[name]
    return kinds


def _describe(annotation: str) -> str:
    return " or ".join({"None": "null", "str": "a string", "int": "an integer", "float": "a number",
                        "bool": "true/false"}.get(p.strip(), p.strip()) for p in str(annotation).split("|"))


def _check_fields(data: dict, cls: type, prefix: str) -> list[str]:
    problems = []
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        problems.append(f"unknown field(s) {', '.join(prefix + k for k in unknown)}")
    for name, value in data.items():
        spec = known.get(name)
        if spec is None or name == "render":
            continue
        kinds = _allowed(spec.type)
        if kinds is None:
            continue
        bad_bool = isinstance(value, bool) and bool not in kinds
        bad_float = isinstance(value, float) and not math.isfinite(value)
        if bad_bool or bad_float or not isinstance(value, kinds):
            problems.append(f"field {prefix}{name} must be {_describe(spec.type)}, got {value!r}"[:200])
    return problems


def config_problems(data: object) -> list[str]:
    """What is wrong with ``data`` as MVRConfig fields (empty when the types are right)."""
    if not isinstance(data, dict):
        return [f"the configuration must be a JSON object of MVRConfig fields, got {type(data).__name__}"]
    # Runtime fields may sit beside the config (files saved before Runtime was its own object).
    config, runtime = split_runtime(data)
    problems = _check_fields(config, MVRConfig, "") + _check_fields(runtime, Runtime, "")
    if "render" in data:
        render = data["render"]
        if isinstance(render, dict):
            problems += _check_fields(render, RenderConfig, "render.")
        elif not isinstance(render, RenderConfig):
            problems.append(f"field render must be a JSON object of RenderConfig fields, got {render!r}"[:200])
    seed = data.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        problems.append(f"field seed must be between {SEED_RANGE[0]} and 2**63 - 1, got {seed}")
    return problems
