"""The package's layout keeps its promises (README.md, "Layout"): modules stay short, imports
point one way (each layer imports only those below it), and no router imports another."""

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "project"
MAX_LINES = 250
# Lowest first. A module imports only from its own layer or those before it.
LAYERS = [
    ("project.config", "project.text", "project.errors"),
    ("project.models",),
    ("project.db",),
    ("project.database",),
    ("project.mail",),
    ("project.auth",),
    ("project.data",),
    ("project.services",),
    ("project.web",),
    ("project.api", "project.admin"),
    ("project.app", "project.__main__"),
]


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each module of the package, and the modules of the package it imports."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
        found[_name(path)] = names
    return {
        module: {name for name in names if name in found and name not in (module, "project")}
        for module, names in found.items()
    }


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_no_module_is_over_250_lines_but_the_models() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long.keys() <= {"project/models.py"}, long


def test_every_import_points_down() -> None:
    upward = sorted(
        f"{module} -> {imported}"
        for module, imports in _imports().items()
        for imported in imports
        if module != "project" and _layer(imported) > _layer(module)
    )
    assert upward == []


def test_no_router_imports_another() -> None:
    routers = {m for m in _imports() if m.startswith("project.api.") and m != "project.api.deps"}
    crossing = sorted(
        f"{module} -> {imported}"
        for module in routers
        for imported in _imports()[module]
        if imported in routers
    )
    assert crossing == []


def test_no_import_cycle() -> None:
    imports = _imports()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for imported in imports[module]:
            visit(imported, (*path, module))
        done.add(module)

    for module in imports:
        visit(module, ())
