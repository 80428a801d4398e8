"""Writes that readers see whole or not at all: a file, or a folder replaced in one step.

A file is written to a temporary sibling and renamed into place (``atomic_write``).

A folder (a run folder, a model folder, an export) is built in a staging sibling,
``.NAME.tmp-PID-XXXX``, and put in place by ``replace_folder``. When a folder already
stands at the path, the two are swapped with one ``renameat2(RENAME_EXCHANGE)`` call (Linux
3.15+, on ext4, xfs, btrfs, tmpfs, overlayfs and most local file systems): at every
instant the path holds the old folder or the new one, and a kill between any two steps
leaves one of them there. The old folder, now at the staging name, is removed after.

Where the kernel or the file system cannot swap (another OS, some network file systems),
the old folder is first renamed to ``.NAME.old-PID`` and the new one renamed into place:
two steps, so a kill between them leaves nothing at the path, and the next write to that
path (``clean_leftovers``, called by ``staged_folder``) renames the old folder back.

``clean_leftovers`` also removes staging folders whose process is gone (a run killed while
writing could leave one of any size). A leftover belongs to a process by the PID in its
name; a PID that is alive (or that this process cannot signal) is left alone.

Files and folders follow the user's umask (``mkstemp``/``mkdtemp`` create them 0600/0700).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

RENAME_EXCHANGE = 2  # linux/fs.h
_STAGING = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old|logs)-(?P<pid>\d+)(?:-.*)?")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _follow_umask(path: str | os.PathLike, mode: int) -> None:
    try:
        os.chmod(path, mode & ~_umask())
    except OSError:  # a file system without modes (vfat mounts): nothing to follow
        pass


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        _follow_umask(tmp, 0o666)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # not Linux, or a C library without renameat2 (glibc < 2.28)
        return False
    at_cwd = -100  # AT_FDCWD: paths are taken as given (absolute here)
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # the kernel or the file system cannot swap: take the two-step path
    raise OSError(err, os.strerror(err), str(b))


def replace_folder(src: Path, dst: Path) -> None:
    """Put the folder ``src`` at ``dst`` (see the module docstring); an existing ``dst`` is replaced."""
    src, dst = Path(src).absolute(), Path(dst).absolute()
    if not dst.exists():
        os.replace(src, dst)
        return
    if _exchange(src, dst):
        shutil.rmtree(src, ignore_errors=True)  # the old folder, now at the staging name
        return
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to clean up
        return True
    return True


def leftovers(dst: Path) -> Iterator[tuple[Path, str]]:
    """Staging folders of ``dst`` left by processes that are gone: (path, "tmp", "old" or "logs")."""
    dst = Path(dst).absolute()
    if not dst.parent.is_dir():
        return
    for p in dst.parent.iterdir():
        m = _STAGING.fullmatch(p.name)
        if m and m["name"] == dst.name and p.is_dir() and not p.is_symlink() and not _alive(int(m["pid"])):
            yield p, m["kind"]


def clean_leftovers(dst: Path) -> list[str]:
    """Undo what killed writes to ``dst`` left: an old folder moved aside goes back when nothing stands at
    ``dst``; staging folders are removed. Returns what was done, one line each, for the user."""
    dst = Path(dst).absolute()
    done = []
    for p, kind in sorted(leftovers(dst), key=lambda x: x[1] == "tmp"):  # "old" first: it may go back
        if kind == "old" and not dst.exists():
            os.replace(p, dst)
            done.append(f"restored {dst} from {p.name}, left aside by a write that was killed")
        else:
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p.name}, left by a write that was killed")
    return done


@contextmanager
def staged_folder(dst: str | os.PathLike) -> Iterator[Path]:
    """A fresh staging folder beside ``dst``; on a clean exit it replaces ``dst`` (``replace_folder``), on an
    exception it is removed and ``dst`` is untouched. Leftovers of killed writes to ``dst`` are cleaned first."""
    dst = Path(dst).absolute()
    dst.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(dst)
    tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.tmp-{os.getpid()}-"))
    _follow_umask(tmp, 0o777)
    try:
        yield tmp
        replace_folder(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_replaceable(dst: str | os.PathLike, marker: str, flag: str = "--out", what: str = "an enctune run",
                      allowed: set[str] | None = None) -> None:
    """UserError (exit code 2) unless ``dst`` may be written and later replaced whole: it does not exist, is
    empty, or holds ``marker`` and nothing but the files that marker lists (its JSON ``"files"``; or
    ``allowed`` when given). The current folder and the folders above it are never an output folder: a
    replace would take the user's other files with it."""
    p = Path(dst)
    resolved, cwd = p.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise UserError(f"{flag} {dst}: is the current folder{'' if resolved == cwd else ' or one above it'}. "
                        f"enctune writes {what} as a folder of its own and replaces it whole: give a new folder, "
                        f"e.g. {flag} runs/x.")
    if not p.exists():
        return
    if not p.is_dir():
        raise UserError(f"{flag} {dst}: exists and is a file; expected a folder to write {what} into.")
    names = sorted(x.name for x in p.iterdir())
    if not names:
        return
    if marker not in names:
        raise UserError(f"{flag} {dst}: a folder that is not {what} (no {marker}) and holds "
                        f"{_listing(names)}; enctune replaces only folders it wrote. Choose another {flag}.")
    if allowed is None:
        allowed = _marker_files(p / marker)
        if allowed is None:
            raise UserError(f"{flag} {dst}: its {marker} is damaged, so enctune cannot tell which files are its "
                            f"own; choose another {flag}, or remove the folder yourself.")
    foreign = [n for n in names if n not in allowed | {marker}]
    if foreign:
        raise UserError(f"{flag} {dst}: holds {_listing(foreign)} besides {what}'s own files; enctune would "
                        f"delete them when it replaces the folder. Move them out or choose another {flag}.")


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return f"{shown}{f' and {len(names) - 5} more' if len(names) > 5 else ''}"


def _marker_files(marker: Path) -> set[str] | None:
    import json

    try:
        files = json.loads(marker.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return set(files)
