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


# The layers of docs/architecture.md, lowest first. A module may import its own layer and those
# below, never one above: at load or inside a function (a lazy import is still an arrow).
# The CLI, the demo and the simulated participants orchestrate everything; nothing imports them.
TOP = ("experiments.cli", "experiments.demo", "experiments.simulated_participants")
CLIENTS = ("server", "analysis", "stimuli", "experiments.lab")
BUNDLE_CLIENT_PARTS = ("lab", "analysis")  # a task type's lab screen and analysis hook


def _bundle(module: str) -> str | None:
    """The task type folder `module` lies in (experiments.tasks.<type>), if any."""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["experiments", "tasks"] and len(parts) > 2 \
        else None


def _layer(module: str) -> int:
    if module.startswith(TOP):
        return 2
    if _bundle(module) and module.split(".")[-1] in BUNDLE_CLIENT_PARTS:
        return 1
    return 1 if module.startswith(CLIENTS) else 0


def _every_import(path: Path, modules: dict[str, Path]) -> list[str]:
    """Every module `path` imports anywhere (functions included), and every module of these
    packages a string names in full (import_module, `-m`, a type's `analysis` hook)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                "." in node.value and node.value in modules:
            names.append(node.value)
    return names


def test_no_import_runs_up_a_layer():
    """The study core (experiments without its lab client, CLI and demo) imports no client; no
    client (server, analysis, stimuli, the lab) imports the CLI or the demo. A task type may
    name its own folder's client parts (its lab screen, its analysis hook)."""
    modules = _modules()
    by_length = sorted(modules, key=len, reverse=True)
    upward = []
    for name, path in modules.items():
        for imported in _every_import(path, modules):
            target = next((m for m in by_length
                           if imported == m or imported.startswith(m + ".")), None)
            if target is None or _layer(target) <= _layer(name):
                continue
            if _bundle(name) and _bundle(name) == _bundle(target):
                continue
            upward.append(f"{name} -> {target}")
    assert not upward, upward
