"""Tasks: what is predicted and how it is scored. ``TASKS`` maps names to classes.

Every module of this package is imported here, and each registers its task: adding a task is
adding its module (and its test). None of them imports torch at import time (see ``base``).
"""

import pkgutil
from importlib import import_module

from .base import ColumnHints, Prepared, Task, TaskOptions
from .registry import TASKS, detect_task, get_task, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "heads":  # heads imports torch; the tasks import it when they build one
        import_module(f"{__name__}.{_module.name}")
for _name in sorted(TASKS):  # listed by name (help, messages), whatever order the modules were found in
    TASKS[_name] = TASKS.pop(_name)

__all__ = ["TASKS", "ColumnHints", "Prepared", "Task", "TaskOptions", "detect_task", "get_task", "register"]
