"""The command line: a thin shell over ``enctune.api`` (and, for ``serve``, the HTTP server it starts).

Every user mistake is a ``UserError``: its message goes to stderr and the exit code is 2,
without a traceback. Progress goes to stderr; results (and ``--json``) to stdout. Each command
lives in the module of its kind (``train``, ``predict``, ``search``, ``serve``, ``analysis``), registered on
the one Typer application (``app``).
"""

from __future__ import annotations

import errno
import os
import sys

from ..errors import UserError
from . import analysis, predict, search, serve, train  # noqa: F401 (each registers its commands on ``app``)
from .app import app

# ``enctune --help`` lists the commands in the order a user meets them
ORDER = ("check", "advise", "pretrain", "train", "distill", "evaluate", "predict", "embed", "index", "search", "serve", "export", "probe", "report", "suggest")
app.registered_commands.sort(key=lambda c: ORDER.index(c.name or c.callback.__name__)
                             if (c.name or c.callback.__name__) in ORDER else len(ORDER))

WRITE_ERRORS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                errno.EROFS: "read-only file system"}


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    if code == 0 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from ..distributed import finish  # lazy: torch (~2 s), only under a launcher

        finish()  # under a launcher: leave the process group together, not in the interpreter's teardown
    return code


def _main(argv: list[str] | None) -> int:
    try:
        app(args=argv, prog_name="enctune")  # usage errors: Typer prints them and exits with 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except UserError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk, a folder we may not write: the user's to fix, not a bug
        if e.errno not in WRITE_ERRORS:
            raise
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {WRITE_ERRORS[e.errno]}{where}. Nothing was written there: free some space or choose "
              "another --out/--output, then run again.", file=sys.stderr)
        return 2
    return 0


__all__ = ["app", "main"]
