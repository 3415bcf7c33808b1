"""The package's shape: which way imports run, no cycles, modules of one concept each.

The floors (docs/architecture.md): ``layers <- models <- registry <- engine <- cli``;
``analysis``, ``data`` and ``classical`` stand beside that line and import no model file;
``deploy`` and ``visualize`` sit at the engine's floor; ``images`` and ``utils`` are the
neutral ground floor everyone may use; nothing imports ``cli``. The test reads the source
(every import statement, also those inside functions and under ``TYPE_CHECKING``), so it
sees what the interpreter would only meet on some code path.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cnnzoo"
MAX_LINES = 450  # past this a module usually holds two concepts
ONE_PIECE = "Why one module:"  # how a longer module's docstring says why it must stay whole

# The floors each floor may import (its own included). The package root (cnnzoo/__init__.py,
# the facade a user imports) may import any floor but cli.
GROUND = {"utils", "images"}
ALLOWED: dict[str, set[str]] = {
    "utils": {"utils"},
    "images": {"utils", "images"},
    "layers": {"utils", "layers"},
    "models": {"utils", "layers", "models"},
    "registry": {"utils", "layers", "models", "registry"},
    "analysis": {"utils", "analysis"},
    "data": GROUND | {"data"},
    "classical": GROUND | {"classical"},
    "deploy": GROUND | {"layers", "models", "registry", "analysis", "data", "classical", "deploy"},
    "visualize": GROUND | {"layers", "models", "registry", "analysis", "data", "classical", "visualize"},
    "engine": GROUND | {"layers", "models", "registry", "analysis", "data", "classical", "deploy", "visualize",
                        "engine"},
    "cli": GROUND | {"layers", "models", "registry", "analysis", "data", "classical", "deploy", "visualize",
                     "engine", "cli", "root"},
    "root": GROUND | {"layers", "models", "registry", "analysis", "data", "classical", "deploy", "visualize",
                      "engine", "root"},
}
ROOT_MODULES_FLOOR = {"registry": "registry", "torchvision_compat": "registry"}
# Sub-packages that belong to another floor: the weights create_model loads are the registry's.
PACKAGE_FLOOR = {"pretrained": "registry"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def floor(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if len(parts) == 2 and parts[1] in ROOT_MODULES_FLOOR:
        return ROOT_MODULES_FLOOR[parts[1]]
    return PACKAGE_FLOOR.get(parts[1], parts[1])


def imported_modules(module: str) -> Iterator[tuple[str, int]]:
    """Every cnnzoo module ``module`` imports, with the line: ``from X import Y`` counts as
    importing ``X.Y`` when that is a module, else ``X``."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "cnnzoo":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                source = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "cnnzoo":
                continue
            for alias in node.names:
                target = f"{source}.{alias.name}"
                yield (target if target in MODULES else source), node.lineno


def import_graph() -> dict[str, set[str]]:
    return {module: {target for target, _ in imported_modules(module) if target != module} for module in MODULES}


def test_the_import_walk_sees_the_package():
    graph = import_graph()
    assert "cnnzoo.engine.trainer" in graph and "cnnzoo.registry" in graph["cnnzoo.engine.trainer"]
    assert all(target in MODULES for targets in graph.values() for target in targets)


def backward_imports(module: str, targets: list[tuple[str, int]]) -> list[str]:
    """The imports of ``module`` that run against the floors' order."""
    allowed = ALLOWED[floor(module)]
    return [f"line {line}: {target} (floor {floor(target)})" for target, line in targets if floor(target) not in allowed]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk of ``graph`` meets, as the path that closes it."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module):
    wrong = backward_imports(module, list(imported_modules(module)))
    assert not wrong, f"{module} (floor {floor(module)}) imports against the flow: " + "; ".join(wrong)


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_the_checks_catch_a_backward_import_and_a_cycle():
    # Made-up modules: a model importing the engine, analysis importing a model, anything
    # importing cli; and a circle of three.
    assert backward_imports("cnnzoo.models.resnet", [("cnnzoo.engine.trainer", 3)])
    assert backward_imports("cnnzoo.analysis.summary", [("cnnzoo.models.vgg", 5)])
    assert backward_imports("cnnzoo.engine.config", [("cnnzoo.cli.options", 7)])
    assert not backward_imports("cnnzoo.engine.trainer", [("cnnzoo.registry", 1), ("cnnzoo.utils.text", 2)])
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_hold_one_concept(module):
    path = MODULES[module]
    lines = len(path.read_text().splitlines())
    if lines > MAX_LINES:
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert ONE_PIECE in docstring, (
            f"{module} has {lines} lines (over {MAX_LINES}): split it where its concepts split, "
            f"or say in its docstring ({ONE_PIECE!r}) why it must be one piece"
        )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_local_imports_of_cnnzoo_say_why(module):
    """A cnnzoo import inside a function hides a dependency; the few kept (for the start-up
    time of the command line) carry a comment on the line or the line above."""
    path = MODULES[module]
    source = path.read_text().splitlines()
    silent = []
    for function in ast.walk(ast.parse(path.read_text())):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cnnzoo") or (
                isinstance(node, ast.Import) and any(a.name.startswith("cnnzoo") for a in node.names)
            ):
                if not _has_reason(source, node.lineno):
                    silent.append(f"line {node.lineno} in {function.name}()")
    assert not silent, f"{module}: function-local cnnzoo imports without a reason: " + ", ".join(silent)


def _has_reason(source: list[str], lineno: int) -> bool:
    """A comment on the import's line, or just above the group of imports it belongs to."""
    if "#" in source[lineno - 1]:
        return True
    index = lineno - 2
    while index >= 0 and source[index].strip().startswith(("from ", "import ")):
        index -= 1
    return index >= 0 and source[index].strip().startswith("#")
