"""The run folder and the folder replace: enctune replaces only its own runs, never the current
folder, and a kill at any point of a replace leaves the old run or the new one at --out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from enctune import atomic
from enctune.cli import main
from enctune.errors import UserError
from enctune.run_folder import RUN_MARKER, check_out

from .conftest import ROOT, make_rows, write_jsonl


@pytest.fixture
def data(tmp_path) -> Path:
    return write_jsonl(tmp_path / "data" / "train.jsonl", make_rows(40, seed=1))


def _train(data, out, tiny, *extra) -> int:
    return main(["train", "--data", str(data), "--out", str(out), "--model", str(tiny), "--strategy", "probe",
                 "--quiet", *extra])


@pytest.mark.parametrize("theirs", ["model", "metrics.json", "checkpoints"])
def test_a_folder_of_the_users_is_refused_before_training_and_kept(theirs, tiny_bert, data, tmp_path, capsys):
    proj = tmp_path / "proj"
    proj.mkdir()
    if theirs.endswith(".json"):
        (proj / theirs).write_text("{}")
    else:
        (proj / theirs).mkdir()
    (proj / "thesis.tex").write_text("mine")
    assert _train(data, proj, tiny_bert) == 2
    err = capsys.readouterr().err
    assert "thesis.tex" in err and "Traceback" not in err
    assert (proj / "thesis.tex").read_text() == "mine" and (proj / theirs).exists()
    assert sorted(p.name for p in proj.iterdir()) == sorted([theirs, "thesis.tex"])


def test_a_run_folder_with_a_foreign_file_is_refused(tiny_bert, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(data, out, tiny_bert) == 0
    marker = json.loads((out / RUN_MARKER).read_text())
    assert set(marker["files"]) == {RUN_MARKER, *(p.name for p in out.iterdir())}
    (out / "notes.md").write_text("mine")
    assert _train(data, out, tiny_bert, "--overwrite") == 2
    assert "notes.md" in capsys.readouterr().err and (out / "notes.md").read_text() == "mine"
    (out / "notes.md").unlink()
    assert _train(data, out, tiny_bert, "--overwrite") == 0  # its own run: replaced


def test_a_finished_run_is_replaced_only_with_overwrite(tiny_bert, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(data, out, tiny_bert, "--seed", "1") == 0
    before = (out / "model" / "head.safetensors").read_bytes()
    capsys.readouterr()
    assert _train(data, out, tiny_bert, "--seed", "2") == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "finished run" in err and "Traceback" not in err
    assert (out / "model" / "head.safetensors").read_bytes() == before  # untouched
    assert _train(data, out, tiny_bert, "--seed", "2", "--overwrite") == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 2


def test_a_run_in_progress_is_continued_or_restarted_without_overwrite(tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / RUN_MARKER).write_text(json.dumps({"files": [RUN_MARKER, "checkpoints"], "state": "in progress"}))
    check_out(out, overwrite=False, resume=False)  # an unfinished run is no result to protect
    (out / RUN_MARKER).write_text(json.dumps({"files": [RUN_MARKER, "checkpoints"], "state": "complete"}))
    with pytest.raises(UserError, match="--overwrite"):
        check_out(out, overwrite=False, resume=False)
    check_out(out, overwrite=False, resume=True)


@pytest.mark.parametrize("out", [".", "..", "./"])
def test_out_is_never_the_current_folder_or_above(out, tiny_bert, data, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert _train(data, out, tiny_bert) == 2
    err = capsys.readouterr().err
    assert "current folder" in err and "Traceback" not in err
    assert list(work.iterdir()) == []


def test_an_empty_or_missing_out_is_written(tiny_bert, data, tmp_path):
    (tmp_path / "empty").mkdir()
    assert _train(data, tmp_path / "empty", tiny_bert) == 0
    assert _train(data, tmp_path / "new" / "deeper", tiny_bert) == 0
    for folder in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert (folder / "model" / "enctune.json").is_file() and (folder / RUN_MARKER).is_file()


def test_files_follow_the_umask(tiny_bert, data, tmp_path):
    old = os.umask(0o022)
    try:
        assert _train(data, tmp_path / "run", tiny_bert) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "run" / "metrics.json").stat().st_mode & 0o777 == 0o644


# ---- the replace, step by step ---------------------------------------------------------------
def _folder(path: Path, tag: str) -> Path:
    path.mkdir(parents=True)
    (path / RUN_MARKER).write_text(json.dumps({"files": ["a.txt", "b.txt"]}))
    (path / "a.txt").write_text(tag)
    (path / "b.txt").write_text(tag)
    return path


def _whole(path: Path) -> str:
    """'old' or 'new' when ``path`` holds one whole folder; fails on half of one."""
    tags = {(path / n).read_text() for n in ("a.txt", "b.txt")}
    assert len(tags) == 1, tags
    return tags.pop()


def test_replace_swaps_in_one_step_here(tmp_path):
    dst = _folder(tmp_path / "run", "old")
    src = _folder(tmp_path / ".run.tmp-1-x", "new")
    assert atomic._exchange(src, dst)  # this machine's file system swaps; the fallback is tested below
    assert _whole(dst) == "new" and _whole(src) == "old"


KILL_AT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from enctune import atomic
    step, exchange = int(sys.argv[2]), sys.argv[3] == "1"
    if not exchange:
        atomic._exchange = lambda a, b: False
    calls = [0]
    real = {"replace": os.replace, "rmtree": atomic.shutil.rmtree, "exchange": atomic._exchange}
    def dying(name):
        def f(*a, **k):
            calls[0] += 1
            if calls[0] == step:
                os._exit(9)  # a kill: no cleanup runs
            return real[name](*a, **k)
        return f
    os.replace = dying("replace")
    atomic.shutil.rmtree = dying("rmtree")
    atomic._exchange = dying("exchange")
    dst = Path(sys.argv[1])
    with atomic.staged_folder(dst) as tmp:
        (tmp / "enctune-run.json").write_text('{"files": ["a.txt", "b.txt"]}')
        (tmp / "a.txt").write_text("new")
        (tmp / "b.txt").write_text("new")
    os._exit(0)
""")


@pytest.mark.parametrize("exchange", [True, False], ids=["swap", "two-renames"])
def test_a_kill_at_any_step_of_the_replace_leaves_a_whole_run_and_the_next_write_recovers(exchange, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    seen = set()
    for step in range(1, 6):
        root = tmp_path / f"step{step}"
        dst = _folder(root / "run", "old")
        r = subprocess.run([sys.executable, "-c", KILL_AT, str(dst), str(step), "1" if exchange else "0"], env=env)
        killed = r.returncode == 9
        # at the moment of the kill: the old run or the new one, or (two renames only) the old one aside
        if dst.exists():
            state = _whole(dst)
        else:
            assert not exchange and killed
            state = "aside"
        seen.add(state)
        # the next write to that path (or check_out before a run) puts the old run back and removes the rest
        atomic.clean_leftovers(dst)
        assert _whole(dst) in ("old", "new")
        assert sorted(p.name for p in root.iterdir()) == ["run"], f"step {step}"
    assert "new" in seen and "old" in seen
    assert ("aside" in seen) == (not exchange)


def test_leftovers_of_live_processes_are_left_alone(tmp_path):
    dst = _folder(tmp_path / "run", "old")
    mine = _folder(tmp_path / f".run.tmp-{os.getpid()}-abc", "new")
    dead_pid = _dead_pid()
    dead = _folder(tmp_path / f".run.tmp-{dead_pid}-abc", "new")
    other = _folder(tmp_path / f".other.tmp-{dead_pid}-abc", "new")
    atomic.clean_leftovers(dst)
    assert mine.exists() and other.exists() and not dead.exists() and _whole(dst) == "old"


def test_check_out_restores_a_run_left_aside_and_says_so(tmp_path, capsys):
    from enctune import progress

    progress.set_quiet(False)
    aside = _folder(tmp_path / f".run.old-{_dead_pid()}", "old")
    with pytest.raises(UserError, match="--overwrite"):  # restored, it is a finished run again: kept
        check_out(tmp_path / "run")
    assert not aside.exists() and _whole(tmp_path / "run") == "old"
    assert "restored" in capsys.readouterr().err
    check_out(tmp_path / "run", overwrite=True)


def test_check_replaceable_names_a_damaged_marker(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / RUN_MARKER).write_text("{not json")
    (out / "metrics.json").write_text("{}")
    with pytest.raises(UserError, match="damaged"):
        check_out(out)


def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)
