"""A table read from one data file: its records, the line each came from, and its columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    """Records read from one file, with the line number each came from."""

    path: Path
    records: list[dict]
    lines: list[int]
    columns: list[str] = field(default_factory=list)

    @property
    def unit(self) -> str:
        """What a record's number counts: lines of a text file, rows of a Parquet file."""
        return "row" if self.path.suffix.lower() in (".parquet", ".pq") else "line"

    def where(self, i: int) -> str:
        """'file, line N' for record i, as error messages name it."""
        return f"{self.path}, {self.unit} {self.lines[i]}"
