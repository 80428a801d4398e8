"""The task registry: name -> task class, and detection of the task a data file asks for.

Tasks register themselves with ``@register`` when their module is imported; ``tasks/__init__``
imports every module of the package, so the registry is complete once ``enctune.tasks`` is.
Detection asks every registered task whether it ``claims`` the training table, in each task's
``detect_order``; the first that does wins, with its reason (the fallback, classify, claims any
table and is asked last).
"""

from __future__ import annotations

from ..data import Table
from ..errors import UserError
from .base import ColumnHints, Task

TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> type[Task]:
    if name not in TASKS:
        raise UserError(f"--task '{name}': unknown. Expected one of: {', '.join(TASKS)}.")
    return TASKS[name]


def detect_task(table: Table, text_column: str | None = None, pair_column: str | None = None,
                label_column: str | None = None) -> tuple[str, str]:
    """(task name, why) for the shape of a training table."""
    hints = ColumnHints(text_column, pair_column, label_column)
    for cls in sorted(TASKS.values(), key=lambda c: (c.detect_order, c.name)):
        reason = cls.claims(table, hints)
        if reason:
            return cls.name, reason
    raise UserError(f"{table.path}: no task recognises this data's shape; name one with --task "
                    f"({', '.join(TASKS)}).")
