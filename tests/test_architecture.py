"""The import drawing of docs/architecture.md holds: no circle among the four packages' modules
(module-level imports, TYPE_CHECKING imports and the package __init__ each import runs), and
the torch-free layers import no torch."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("experiments", "server", "analysis", "stimuli")
TORCH_FREE = ("experiments", "server", "analysis")


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def _top_imports(path: Path) -> list[str]:
    """Modules imported when `path` is imported or type-checked (not inside functions)."""
    tree = ast.parse(path.read_text())
    nodes = [*tree.body, *(n for top in tree.body if isinstance(top, ast.If) for n in top.body)]
    names: list[str] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported in _top_imports(path):
            parts = imported.split(".")
            for k in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                target = ".".join(parts[:k])
                if target in modules and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def test_no_module_imports_itself_round_a_circle():
    try:
        order = list(graphlib.TopologicalSorter(_graph()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None
    assert len(order) > 100


def test_the_torch_free_layers_import_no_torch_at_load():
    heavy = {"torch", "torchvision", "timm", "open_clip", "lucent"}
    found = [f"{name}: {imported}" for name, path in _modules().items()
             if name.split(".")[0] in TORCH_FREE
             for imported in _top_imports(path) if imported.split(".")[0] in heavy]
    assert not found, found
