"""Where a run's wall time goes: named phases on one monotonic clock.

A training rate (examples per second inside the loop) is not what a user waits for: the command's
wall time also holds the interpreter's start, the imports, reading and tokenizing the data, the
validation passes, the test evaluation, calibration, the report and the writing of the folder.
``enctune train`` records each in ``metrics.json`` under ``costs.phases`` (seconds), with
``startup`` the process's age when training began (interpreter, imports of the command line,
argument parsing) and ``other`` what no phase claimed, so that the phases add up to the process's
wall time up to the moment ``metrics.json`` is serialised. ``python -m bench --rows phases``
prints them beside the loop's own rate.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager


def process_age() -> float | None:
    """Seconds since this process started (Linux: /proc/self/stat's start time against the boot clock;
    10 ms resolution), or None where that cannot be read."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5), after pid and comm
        return max(time.clock_gettime(time.CLOCK_BOOTTIME) - started, 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class Phases:
    """Seconds per named phase, summed over every entry into it.

    >>> phases = Phases()
    >>> with phases("read"):
    ...     pass
    >>> list(phases.seconds)
    ['read']
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.before = process_age()  # the process's age when the phases began
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + max(seconds, 0.0)

    def move(self, seconds: float, source: str, target: str) -> None:
        """Count ``seconds`` of ``source`` as ``target`` (the loop's validation passes inside its training)."""
        seconds = min(seconds, self.seconds.get(source, 0.0))
        self.seconds[source] -= seconds
        self.add(target, seconds)

    def report(self) -> dict[str, float]:
        """Every phase in the order first entered, then ``other`` (what none claimed) and ``total`` (the process's
        wall time so far), in seconds rounded to 10 ms; ``startup`` first when the process's age is known."""
        elapsed = time.perf_counter() - self.started
        out = {"startup": self.before} if self.before is not None else {}
        out.update(self.seconds)
        out["other"] = max(elapsed - sum(self.seconds.values()), 0.0)
        out["total"] = elapsed + (self.before or 0.0)
        return {k: round(v, 2) for k, v in out.items()}
