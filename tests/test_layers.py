"""Import layers: a module may import its own layer and the layers below, never above.

Every ``import`` in every module under ``src/mvr3d`` counts, function-local ones too (a
lazy import is still a dependency). Layers, low to high:

====  ==========================================  =============================================
rank  packages and top-level modules              what they hold
====  ==========================================  =============================================
0     ``mvr3d`` (__init__), errors, utils,        exceptions, small helpers, ranking metrics
      metrics
1     io, geometry, scans                         files, point-cloud geometry, the scan contract
2     render, data                                rendering, datasets and benchmark building
3     models, baselines, detectors                detectors (models must not import baselines)
4     engine                                      fitting/predicting/benchmarking jobs
5     cli, visualization, service,                user interfaces, reports and the HTTP service
      ``mvr3d.__main__``
====  ==========================================  =============================================

Within one rank imports are free, except for the pairs in ``FORBIDDEN``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mvr3d

PACKAGE = Path(mvr3d.__file__).parent

LAYERS: dict[str, int] = {
    "__init__": 0,
    "errors": 0,
    "utils": 0,
    "metrics": 0,
    "io": 1,
    "geometry": 1,
    "scans": 1,
    "render": 2,
    "data": 2,
    "models": 3,
    "baselines": 3,
    "detectors": 3,  # imports models and baselines to list every method
    "engine": 4,
    "cli": 5,
    "visualization": 5,
    "service": 5,
    "__main__": 5,
}

# (importer, imported) pairs of one rank that must not depend on each other that way;
# detectors imports both models and baselines, so neither may import it back.
FORBIDDEN = {("models", "baselines"), ("models", "detectors"), ("baselines", "detectors")}

# Violations that predate this check: being removed in the structure refactor. Entries
# are (importing module, imported module); delete one as soon as its import is gone.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def top_level(module: str) -> str:
    """The package or top-level module of ``mvr3d`` that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every ``mvr3d`` module ``path`` imports, at any depth of the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            if base == "mvr3d":  # ``from mvr3d import geometry`` names a subpackage
                found.update(f"mvr3d.{alias.name}" for alias in node.names)
            else:
                found.add(base)
    return {module for module in found if module == "mvr3d" or module.startswith("mvr3d.")}


def violations() -> set[tuple[str, str]]:
    bad = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        own = top_level(importer) if path.name != "__main__.py" else "__main__"
        for imported in imported_modules(path):
            other = top_level(imported)
            if other not in LAYERS:  # a name imported from mvr3d/__init__.py
                other = "__init__"
            if LAYERS[other] > LAYERS[own] or (own, other) in FORBIDDEN:
                bad.add((importer, imported))
    return bad


def test_every_package_has_a_layer() -> None:
    names = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert names <= set(LAYERS), f"give these a layer in LAYERS: {sorted(names - set(LAYERS))}"


def test_no_module_imports_a_higher_layer() -> None:
    new = violations() - KNOWN_VIOLATIONS
    assert not new, "imports of a higher layer:\n" + "\n".join(f"  {a} -> {b}" for a, b in sorted(new))


def test_known_violations_are_still_there() -> None:
    """A fixed violation leaves the list, so that it cannot silently come back."""
    gone = KNOWN_VIOLATIONS - violations()
    assert not gone, "remove from KNOWN_VIOLATIONS:\n" + "\n".join(f"  {a} -> {b}" for a, b in sorted(gone))


def test_function_local_imports_are_seen() -> None:
    # io/mesh.py imports mvr3d.io (its own package, a cycle) only inside read_mesh.
    assert "mvr3d.io" in imported_modules(PACKAGE / "io" / "mesh.py")
