"""Launch one variant in a fresh ``python -m bench.worker`` process and collect its JSON line.

The worker's stderr (progress bars, warnings, tracebacks) goes to a log file in the run's
work folder (``<work>/logs/NNNN-<variant>.log``); a failed or timed-out worker becomes a result with ``status: failed`` and the
tail of that log, so one broken variant never stops the bench.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def say(message: str) -> None:
    """A progress line on stderr (stdout stays free for nothing but results)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _last_json_line(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


class Runner:
    """Runs workers from ``repo`` with the same interpreter, logging into ``log_dir``."""

    def __init__(self, repo: Path, work: Path, timeout: float | None):
        self.repo, self.log_dir, self.timeout = repo, work / "logs", timeout
        # enctune's feature cache never touches the user's ~/.cache: rows that measure it set their own
        self.env = {**WORKER_ENV, "ENCTUNE_CACHE": str(work / "enctune-cache")}
        self.count = 0
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def run(self, variant: str, args: dict, label: str) -> dict:
        self.count += 1
        log = self.log_dir / f"{self.count:04d}-{variant}.log"
        cmd = [sys.executable, "-m", "bench.worker", variant, json.dumps(args)]
        env = {**os.environ, **self.env}
        say(f"{label}: {variant} ...")
        t0 = time.perf_counter()
        with open(log, "w", encoding="utf-8") as err:
            try:
                proc = subprocess.run(cmd, cwd=self.repo, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                                      timeout=self.timeout)
                result = _last_json_line(proc.stdout)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                result, rc = None, None
        seconds = round(time.perf_counter() - t0, 2)
        if result is None:
            why = f"timed out after {self.timeout} s" if rc is None else f"exited with code {rc} and no result"
            result = {"variant": variant, "status": "failed", "error": f"worker {why}; log tail: {_tail(log)}"}
        result["process_seconds"] = seconds
        result["returncode"] = rc
        status = result["status"] if result["status"] == "ok" else f"FAILED ({result.get('error', '')[:200]})"
        say(f"{label}: {variant} {status} in {seconds:.1f} s")
        return result
