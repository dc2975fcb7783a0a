"""The house's plan, held: no import circles between ppgen's files, each floor imports only the floors
below it, imports inside functions only where they keep a heavy dependency off the start-up path, and
no module past 400 lines. Reference: the import statements themselves, read with ``ast`` (no import
is executed), against the rules in README's "Layout" section."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ppgen"

#: floor -> the ppgen modules/packages it must never import (directly or by a function-level import).
FORBIDDEN = {
    "ppgen.errors": ("ppgen.",),
    "ppgen.core": (
        "ppgen.api",
        "ppgen.result",
        "ppgen.app",
        "ppgen.inference",
        "ppgen.programs",
        "ppgen.models",
    ),
    "ppgen.data": (
        "ppgen.api",
        "ppgen.result",
        "ppgen.app",
        "ppgen.inference",
        "ppgen.programs",
        "ppgen.models",
    ),
    "ppgen.measures": ("ppgen.api", "ppgen.result", "ppgen.app", "ppgen.inference", "ppgen.programs"),
    "ppgen.models": ("ppgen.api", "ppgen.result", "ppgen.app", "ppgen.inference", "ppgen.programs"),
    "ppgen.programs": ("ppgen.api", "ppgen.result", "ppgen.app", "ppgen.inference", "ppgen.models"),
    "ppgen.result": ("ppgen.api", "ppgen.app", "ppgen.inference", "ppgen.models"),
    "ppgen.inference": ("ppgen.api", "ppgen.app", "ppgen.models"),
    "ppgen.api": ("ppgen.app",),
}
#: The function-level imports allowed, each for the reason given.
LAZY = {
    ("ppgen.app.cli", "ppgen.app.commands"): "the verbs need torch; --help, list and usage errors do not",
    ("ppgen.app.calibrate_command", "ppgen.app.cli_data"): "the calibrate verb needs torch; --help does not",
    ("ppgen.app.calibrate_command", "ppgen.app.registry"): "the calibrate verb needs torch; --help does not",
    (
        "ppgen.app.calibrate_command",
        "ppgen.calibration.runner",
    ): "the calibrate verb needs torch; --help does not",
    ("ppgen.app.calibrate_command", "ppgen.errors"): "the calibrate verb needs torch; --help does not",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _target(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str) -> list[tuple[str, bool]]:
    """``(imported ppgen module, inside a function?)`` for each import statement of ``name``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nested = {
        id(node)
        for func in ast.walk(tree)
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(func)
    }
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).strip(".")
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for candidate in candidates:
            if candidate.startswith("ppgen") and (target := _target(candidate)) and target != name:
                found.append((target, id(node) in nested))
                break
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def test_no_import_circles():
    edges = {name: {target for target, _ in found} for name, found in GRAPH.items()}
    # A package's __init__ is imported before any of its modules, so importing a submodule from the
    # package's own __init__ is the package loading its parts, not a circle.
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in edges.get(node, ()):
            if node.startswith(nxt + ".") and MODULES[nxt].name == "__init__.py":
                continue  # a module reaching its own package's __init__ (``from ppgen import __version__``)
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_each_floor_imports_only_the_floors_below():
    broken = [
        (name, target)
        for name, found in GRAPH.items()
        for floor, banned in FORBIDDEN.items()
        if name == floor or name.startswith(floor + ".")
        for target, _ in found
        if target.startswith(banned)
    ]
    assert not broken, broken


def test_imports_inside_functions_only_with_a_reason():
    lazy = {(name, target) for name, found in GRAPH.items() for target, inside in found if inside}
    assert lazy <= set(LAZY), sorted(lazy - set(LAZY))


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_fits_on_a_few_screens(name):
    assert len(MODULES[name].read_text().splitlines()) <= 400
