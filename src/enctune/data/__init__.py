"""Reading and checking data: readers for every format, then splits with row-level validation."""

from .dataset import Columns, Examples, Splits, infer_columns, load_splits, load_texts
from .readers import Table, read_table

__all__ = ["Columns", "Examples", "Splits", "Table", "infer_columns", "load_splits", "load_texts", "read_table"]
