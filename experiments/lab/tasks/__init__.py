"""The lab client's screen for each task type: one module per type, as the web page's
server/static/js/tasks/<type>.js. Each says which images go where on the two-choice screen
(experiments.lab.layout); the words (question, side labels) are the task type's, and keys,
buttons and feedback the shared two-choice ones (experiments.lab.keys)."""
from __future__ import annotations

from importlib import import_module
from types import ModuleType

from experiments.errors import InterpsyError
from experiments.lab.tasks import imi_2afc, occlusion
from experiments.tasks import get_task

LAYOUTS: dict[str, ModuleType] = {"imi_2afc": imi_2afc, "occlusion": occlusion}


def layout_module(task_type: str) -> ModuleType:
    """The lab screen module of a task type (built in, or its package's `lab_screen`); a clear
    error for a type without one."""
    if task_type in LAYOUTS:
        return LAYOUTS[task_type]
    screen = get_task(task_type).lab_screen
    if screen is None:
        raise InterpsyError(f"the lab client has no screen for task type {task_type!r} "
                            f"(built in: {', '.join(sorted(LAYOUTS))}); its package names one "
                            f"as the type's `lab_screen`, or add a module to "
                            f"experiments/lab/tasks/")
    return import_module(screen)
