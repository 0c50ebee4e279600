"""The registered task types: every entry point of the group `interpsy.tasks`, interpsy's own
(pyproject.toml) exactly as another package's. Each names its page module and lab screen
(`page_script`, `lab_screen`)."""
from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import metadata
from typing import Any

from experiments.errors import SpecError
from experiments.tasks.base import TaskType

ENTRY_POINT_GROUP = "interpsy.tasks"
DEFAULT_TASK = "imi_2afc"
BUILT_IN = ("imi_2afc", "occlusion")


@cache
def task_types() -> dict[str, TaskType]:
    """Name -> task type, one per entry point of `interpsy.tasks` (a TaskType subclass or
    instance)."""
    types: dict[str, TaskType] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        task = loaded() if isinstance(loaded, type) else loaded
        if not isinstance(task, TaskType):
            raise SpecError(f"entry point {entry.name} = {entry.value} ({ENTRY_POINT_GROUP}) is "
                            f"not a TaskType")
        if task.name in types:
            raise SpecError(f"task type {task.name!r} is registered twice ({entry.value})")
        types[task.name] = task
    missing = [name for name in BUILT_IN if name not in types]
    if missing:
        # Stored studies name these types: without them none could be read.
        raise SpecError(f"interpsy's own task types {', '.join(missing)} are not registered: "
                        f"its package metadata is stale or missing; install it again "
                        f"(`make install` or `pip install -e .`)")
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
