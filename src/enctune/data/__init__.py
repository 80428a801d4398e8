"""Reading and checking data: readers for every format, columns, checked examples, split files.

Nothing here knows a task: a task reads its own shape of rows through ``examples_from_table``
(or its own ``read``), and the run's first step (``steps.load_splits``) puts the two together.
"""

from .columns import LABEL_NAMES, PAIR_NAMES, TEXT_NAMES, Columns, infer_columns, pick_column
from .examples import Examples, examples_from_table, is_missing_label, label_map, label_str
from .readers import Table, read_table
from .splits import (
    carried_columns,
    carve_validation,
    find_split_files,
    load_texts,
    overlap_warnings,
    read_inputs,
    split_files,
)

__all__ = ["LABEL_NAMES", "PAIR_NAMES", "TEXT_NAMES", "Columns", "Examples", "Table", "carve_validation",
           "examples_from_table", "find_split_files", "infer_columns", "is_missing_label", "label_map", "label_str",
           "load_texts", "overlap_warnings", "pick_column", "read_inputs", "read_table", "split_files",
           "carried_columns"]
