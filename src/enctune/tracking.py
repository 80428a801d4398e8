"""Experiment tracking through the trackers Accelerate integrates (``--report-to tensorboard,mlflow``).

Off by default. When on, every training phase logs what its progress bar shows (the smoothed loss, the
learning rate, examples per second) at each optimizer step, and each evaluation's scores, under the
phase's name (``full fine-tuning/loss``, ``train head/validation_accuracy``); the run's settings are
stored as hyperparameters and its final scores logged at the end.

Where the logs go: TensorBoard writes into the run folder's ``logs/`` (while the run trains, into a
staging folder beside ``--out``, which the run folder takes over when it is written: ``tensorboard
--logdir runs/x/logs``); MLflow writes where MLflow is configured to (``MLFLOW_TRACKING_URI``, else
its own default: ``mlflow.db`` in the current folder), in the experiment ``enctune``
(``MLFLOW_EXPERIMENT_NAME`` overrides it). A tracker that cannot start (a server out of reach) stops
the run before it trains, with the tracker's own message.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny")}


def parse_report_to(value: str | None) -> list[str]:
    """``"tensorboard,mlflow"`` -> the names; UserError for an unknown one or a package that is missing."""
    import importlib.util

    names = [n.strip() for n in (value or "").split(",") if n.strip() and n.strip() != "none"]
    for n in names:
        if n not in TRACKERS:
            raise UserError(f"--report-to {n}: unknown tracker; expected one of {', '.join(TRACKERS)} (or none).")
        module, package = TRACKERS[n]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"--report-to {n} needs the {package} package: pip install {package} "
                            "(or pip install 'enctune[track]').")
    return names


class Tracking:
    """The trackers of one run: ``log(phase, values, step)`` during training, ``close(scores)`` at the end."""

    def __init__(self, names: list[str], logs: Path, run_name: str, config: dict):
        from accelerate.tracking import MLflowTracker, TensorBoardTracker  # lazy: accelerate (~2.5 s)

        self.logs, self.trackers = logs, []
        for name in names:
            if name == "tensorboard":
                tracker = TensorBoardTracker(run_name, str(logs))
            else:
                tracker = MLflowTracker(os.environ.get("MLFLOW_EXPERIMENT_NAME", "enctune"), run_name=run_name)
            try:
                tracker.start()
                tracker.store_init_configuration({k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                                  for k, v in config.items()})
            except Exception as e:  # the tracker's own errors (a refused connection, a bad URI): the user's to fix
                self.abandon()
                raise UserError(f"--report-to {name}: the tracker did not start: {type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else ''}") from None
            self.trackers.append(tracker)

    def log(self, phase: str, values: dict, step: int) -> None:
        named = {f"{phase}/{k}": v for k, v in values.items() if isinstance(v, (int, float)) and v == v}
        for tracker in self.trackers:
            tracker.log(named, step=step)

    def close(self, scores: dict) -> None:
        final = {f"{split}/{k}": v for split, m in scores.items() for k, v in (m or {}).items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for tracker in self.trackers:
            tracker.log(final)
            tracker.finish()

    def abandon(self) -> None:
        """A run that failed: each tracker's run ended (MLflow's marked failed), the staged TensorBoard logs
        removed with the rest of what the run would have written."""
        for tracker in self.trackers:
            if tracker.name == "mlflow":
                import mlflow  # lazy: mlflow (~1 s), only when it tracks

                mlflow.end_run(status="FAILED")
            else:
                tracker.finish()
        shutil.rmtree(self.logs, ignore_errors=True)


@contextmanager
def tracked(names: list[str], logs: Path, run_name: str, config: dict) -> Iterator[Tracking | None]:
    """The run's ``Tracking`` (None when nothing is tracked) for the ``with`` block that trains; an exception
    leaving the block abandons it (``Tracking.abandon``)."""
    tracking = Tracking(names, logs, run_name, config) if names else None
    try:
        yield tracking
    except BaseException:
        if tracking is not None:
            tracking.abandon()
        raise
