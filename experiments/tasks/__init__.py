"""Task types: each paradigm is one registered object in its own folder (its module, page
module and lab screen), interpsy's own and a lab's alike registered through the entry point
group `interpsy.tasks`."""
from experiments.tasks.base import TaskType
from experiments.tasks.registry import ENTRY_POINT_GROUP, get_task, task_types

__all__ = ["ENTRY_POINT_GROUP", "TaskType", "get_task", "task_types"]
