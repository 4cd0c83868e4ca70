"""Command-line flags generated from the config dataclasses.

Every scalar field of a config dataclass becomes ``--field-name``, typed from its
annotation, with the choices and help kept in the field's ``metadata`` and its default
shown in the help: the dataclass is the one place a setting is defined, and a new field
reaches the command line without touching it. Flags default to None ("not given"), so a
``--config`` file's values stay unless a flag overrides them.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable

# Field types the command line parses itself, by the annotation's text.
Parser = Callable[[str], object]


def field_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def scalar_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are not themselves dataclasses."""
    hints = typing.get_type_hints(cls)
    return [f for f in dataclasses.fields(cls) if not dataclasses.is_dataclass(hints[f.name])]


def add_dataclass_options(
    group: argparse._ActionsContainer, cls: type, *, exclude: Iterable[str] = (),
    parsers: dict[str, Parser] | None = None, only: Iterable[str] | None = None, defaults: object = None,
) -> list[str]:
    """Add a flag per scalar field of ``cls`` to ``group``; returns the fields added.

    ``parsers`` maps a field to the function that parses its text (for fields whose type
    is not a plain int, float, str or bool); ``defaults``, an instance, gives the defaults
    the help shows where they differ from the class's (a nested config's, say).
    """
    hints = typing.get_type_hints(cls)
    parsers = parsers or {}
    skipped, wanted = set(exclude), None if only is None else set(only)
    added = []
    for field in scalar_fields(cls):
        if field.name in skipped or (wanted is not None and field.name not in wanted):
            continue
        kind = _plain_type(hints[field.name])
        if defaults is not None:
            default = getattr(defaults, field.name)
        else:
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        text = field.metadata.get("help", f"{cls.__name__}.{field.name}")
        options: dict = {"default": None, "dest": field.name, "help": f"{text} (default {default})"}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = parsers.get(field.name, kind)
            if "choices" in field.metadata:
                options["choices"] = field.metadata["choices"]
        group.add_argument(field_flag(field.name), **options)
        added.append(field.name)
    return added


def field_help(cls: type, name: str) -> str:
    """The help text kept in field ``name``'s metadata."""
    return next(f for f in dataclasses.fields(cls) if f.name == name).metadata["help"]


def given_values(args: argparse.Namespace, names: Iterable[str]) -> dict[str, object]:
    """The fields among ``names`` that were given on the command line."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _plain_type(hint: object) -> type:
    """int, float, str or bool from an annotation such as ``int | None``; str otherwise."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = members[0] if len(members) == 1 else str
    return hint if hint in (int, float, str, bool) else str
