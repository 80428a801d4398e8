"""Tasks: head, loss, metrics and decoding per kind of prediction. ``TASKS`` maps names to classes."""

from .base import TASKS, Prepared, Task, get_task
from .classify import ClassifyTask
from .detect import detect_task
from .extract import ExtractTask
from .multilabel import MultilabelTask
from .regress import RegressTask
from .tag import TagTask

__all__ = ["TASKS", "ClassifyTask", "ExtractTask", "MultilabelTask", "Prepared", "RegressTask", "TagTask", "Task",
           "detect_task", "get_task"]
