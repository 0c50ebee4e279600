"""Task types: each paradigm is one registered object (IMI's 2-AFC built in; a lab adds its own
through the entry point group `interpsy.tasks`)."""
from experiments.tasks.base import TaskType
from experiments.tasks.registry import ENTRY_POINT_GROUP, get_task, task_types

__all__ = ["ENTRY_POINT_GROUP", "TaskType", "get_task", "task_types"]
