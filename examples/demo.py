"""The demo behind `make demo`: fine-tune the bundled default encoder on SST-2 and predict.

Runs the same path a user would from the command line:
    enctune train --data examples/sst2 --strategy full --out runs/demo --overwrite
    enctune predict runs/demo "a gorgeous, witty film" "a dull mess"
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent


def main() -> int:
    from enctune.cli import main as cli

    out = HERE.parent / "runs" / "demo"
    t0 = time.perf_counter()
    code = cli(["train", "--data", str(HERE / "sst2"), "--strategy", "full", "--epochs", "1",
                "--out", str(out), "--overwrite"])  # the demo's own folder: a second `make demo` replaces it
    if code:
        return code
    print(f"\ntrained in {time.perf_counter() - t0:.0f} s; a few predictions:")
    return cli(["predict", str(out), "a gorgeous, witty film", "a dull mess",
                "the acting is fine but the plot never comes together", "an unexpected delight from start to finish"])


if __name__ == "__main__":
    sys.exit(main())
