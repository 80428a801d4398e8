"""The run folder: what ``enctune train --out OUT`` writes, and the rule for replacing one.

Layout::

    OUT/
      enctune-run.json   the marker: format, enctune version, and the files the run wrote
      model/             the model folder (see ``model_folder``)
      metrics.json       scores, costs, history
      config.json        the configuration the run used
      report.html        the run's report
      mistakes.jsonl     the most confident mistakes on validation and test
      checkpoints/       while a run with --checkpoint-every is in progress

enctune replaces only its own run folders: ``check_out`` refuses (before anything trains)
an ``OUT`` that holds anything but a marked run's files, and the current folder or one
above it. A run with checkpoints marks ``OUT`` when it starts (``mark_started``), so a
killed run can be resumed into the same folder. The finished run is written whole into a
staging folder and swapped into place (``atomic.staged_folder``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import progress
from .atomic import atomic_write_text, check_replaceable, clean_leftovers, staged_folder
from .errors import UserError
from .version import __version__

RUN_MARKER = "enctune-run.json"
CHECKPOINTS = "checkpoints"


def check_out(out: str | Path, clean: bool = True, overwrite: bool = False, resume: bool = False) -> None:
    """UserError unless ``out`` may receive a run (see the module docstring). A finished run there is replaced
    only with ``overwrite``; a run in progress (checkpoints only) is continued with ``resume``, else replaced.
    What killed writes to ``out`` left behind is cleaned up first (a run moved aside goes back), and said;
    ``clean`` False leaves that to another process (the main one, under a launcher)."""
    for line in clean_leftovers(Path(out)) if clean else []:
        progress.info(line)
    check_replaceable(out, RUN_MARKER, "--out", "an enctune run")
    marker = Path(out) / RUN_MARKER
    if marker.is_file() and not overwrite and not resume and _state(marker) != "in progress":
        raise UserError(f"--out {out}: holds a finished run already; pass --overwrite to replace it, or choose "
                        "another --out.")


def _state(marker: Path) -> str | None:
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("state")
    except (OSError, ValueError, AttributeError):
        return None


def _marker(files: list[str], state: str) -> str:
    return json.dumps({"format": "enctune-run", "format_version": 1, "enctune_version": __version__,
                       "state": state, "files": sorted(set(files) | {RUN_MARKER})}, indent=2) + "\n"


def mark_started(out: Path) -> None:
    """Mark ``out`` as a run in progress (only checkpoints in it yet), unless it is marked already."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / RUN_MARKER).is_file():
        atomic_write_text(out / RUN_MARKER, _marker([CHECKPOINTS], "in progress"))


def write_run(out: Path, write_model, files: dict, folders: dict[str, Path] | None = None) -> None:
    """Write a finished run to ``out`` in one step: ``write_model(folder)`` writes ``model/``, ``files`` maps
    the other file names to their text (or to a function returning it, called in order after the model is
    written), ``folders`` names folders written beside ``out`` during the run (the trackers' logs), moved in;
    the marker lists them all."""
    folders = {k: v for k, v in (folders or {}).items() if v.is_dir()}
    with staged_folder(out) as tmp:
        write_model(tmp / "model")
        for name, text in files.items():
            atomic_write_text(tmp / name, text() if callable(text) else text)
        for name, folder in folders.items():
            os.replace(folder, tmp / name)
        atomic_write_text(tmp / RUN_MARKER, _marker(["model", *files, *folders], "complete"))


def logs_folder(out: Path) -> Path:
    """Where a run's tracker logs go while it trains: beside ``out``, cleaned up if the run is killed, moved into
    the run folder when it is written."""
    return out.absolute().parent / f".{out.name}.logs-{os.getpid()}"
