"""Rows (one dict each) written to a file whose extension names the format: JSON lines, CSV or Parquet.

JSON lines keep every value as it is. CSV and Parquet are flat tables: a dict value becomes one
column per key (``probabilities`` -> ``probabilities_positive``, ``probabilities_negative``) and a
list becomes its JSON text (``labels``, ``entities``). The file is written atomically: a failure
leaves no half-written output.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..atomic import atomic_write
from ..errors import UserError

ROW_FORMATS = (".jsonl", ".ndjson", ".csv", ".parquet")


def check_row_format(path: str | Path, flag: str = "--output") -> str:
    """The format's extension, or a UserError naming the ones there are."""
    suffix = Path(path).suffix.lower()
    if suffix not in ROW_FORMATS:
        raise UserError(f"{flag} {path}: unknown format '{suffix or '(no extension)'}'; expected one of "
                        f"{', '.join(ROW_FORMATS)}.")
    return suffix


def flat(row: dict) -> dict:
    """One level of nesting spread into columns; lists as JSON text."""
    out: dict = {}
    for key, value in row.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                out[f"{key}_{sub}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
        elif isinstance(value, list):
            out[key] = json.dumps(value, ensure_ascii=False)
        else:
            out[key] = value
    return out


def _columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def write_rows(path: str | Path, rows: list[dict]) -> None:
    suffix = check_row_format(path)

    def write(tmp: str) -> None:
        if suffix in (".jsonl", ".ndjson"):
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            return
        table = [flat(r) for r in rows]
        columns = _columns(table)
        if suffix == ".csv":
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns, restval="")
                writer.writeheader()
                writer.writerows(table)
        else:
            import pyarrow as pa  # lazy: pyarrow (~0.2 s) only for Parquet output
            import pyarrow.parquet as pq

            pq.write_table(pa.table({c: [r.get(c) for r in table] for c in columns}), tmp)

    atomic_write(path, write)
