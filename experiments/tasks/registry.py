"""The registered task types: the built-in ones and those of installed packages (entry points;
such a type names its page module and lab screen itself: `page_script`, `lab_screen`).

The built-in types are listed here rather than through interpsy's own `interpsy.tasks` entry
points (the route a plugin takes): an editable install only sees new entry points after it is
installed again, and a missing built-in type would make every stored study unreadable."""
from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import metadata
from typing import Any

from experiments.errors import SpecError
from experiments.tasks.base import TaskType
from experiments.tasks.imi_2afc import ImiTwoAfc
from experiments.tasks.occlusion import Occlusion

ENTRY_POINT_GROUP = "interpsy.tasks"
DEFAULT_TASK = ImiTwoAfc.name


@cache
def task_types() -> dict[str, TaskType]:
    """Name -> task type: built-in first, then each entry point of `interpsy.tasks` (a TaskType
    subclass or instance)."""
    types: dict[str, TaskType] = {task.name: task for task in (ImiTwoAfc(), Occlusion())}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        task = loaded() if isinstance(loaded, type) else loaded
        if not isinstance(task, TaskType):
            raise SpecError(f"entry point {entry.name} = {entry.value} ({ENTRY_POINT_GROUP}) is "
                            f"not a TaskType")
        if task.name in types:
            raise SpecError(f"task type {task.name!r} is registered twice ({entry.value})")
        types[task.name] = task
    return types


def get_task(name: str) -> TaskType:
    """The task type registered as `name`; an unknown name is a SpecError listing the known."""
    types = task_types()
    if name not in types:
        raise SpecError(f"unknown task type {name!r}; registered: {', '.join(sorted(types))}")
    return types[name]


def task_name_of_spec(spec: Mapping[str, Any] | None) -> str:
    """The task type a stored spec (its JSON form) names; IMI's 2-AFC when it names none."""
    return ((spec or {}).get("task") or {}).get("type", DEFAULT_TASK)
