"""Tasks: head, loss, metrics and decoding per kind of prediction. ``TASKS`` maps names to classes."""

from .base import TASKS, Task
from .classify import ClassifyTask

__all__ = ["TASKS", "ClassifyTask", "Task"]
