"""The shape of the package (ARCHITECTURE.md), checked so that it stays: small modules, a loop that reads in
one screen, the layering, no private names across modules, lazy imports that say what they save, task names
compared only inside tasks/, and the registries and the help text loading without torch."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

SRC = ROOT / "src" / "enctune"
MODULES = sorted(SRC.rglob("*.py"))
MAX_LINES = 400
LAZY = re.compile(r"#\s*lazy:.*\d")  # a lazy import says what it saves, with a figure


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_the_training_loop_reads_in_one_screen():
    fit = next(n for n in _tree(SRC / "training" / "loop.py").body if isinstance(n, ast.FunctionDef) and n.name == "fit")
    assert fit.end_lineno - fit.lineno + 1 <= 80


def _own_imports(path: Path):
    """(node, module path it names) for every import of an enctune module in ``path``."""
    package = ".".join(("enctune", *path.relative_to(SRC).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield node, f"{base}.{node.module}" if node.module else base
            elif (node.module or "").startswith("enctune"):
                yield node, node.module


def test_no_module_imports_a_private_name_of_another():
    found = [f"{p.relative_to(SRC)}:{n.lineno} {a.name}" for p in MODULES for n, _ in _own_imports(p)
             for a in n.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []


def test_every_function_level_import_of_an_enctune_module_says_what_it_saves():
    """An import inside a function is kept only where it saves start-up time, and its comment names it (``#
    lazy: torch (~2 s)``, on its line or the line above)."""
    found = []
    for path in MODULES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for fn in ast.walk(_tree(path)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                own = isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("enctune"))
                if own and not any(LAZY.search(lines[i]) for i in (node.lineno - 1, node.lineno - 2) if i >= 0):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []


def test_task_names_are_compared_only_inside_tasks():
    outside = [f"{p.relative_to(SRC)}:{i}" for p in MODULES if "tasks" not in p.relative_to(SRC).parts
               for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if '"classify"' in line]
    assert outside == []


def test_the_import_contracts_hold():
    """The layering in pyproject.toml ([tool.importlinter]): each layer imports only the layers below it."""
    r = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "broken" in r.stdout and "0 broken" in r.stdout


def test_registries_config_and_help_load_without_torch():
    """What the command line's help needs (the registries, the config, the CLI) imports no torch, no
    transformers and no scikit-learn: their start-up (2-5 s) is paid only by commands that run a model."""
    code = ("import sys, enctune.cli, enctune.config, enctune.tasks, enctune.strategies, enctune.serve.onnx_predictor; "
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
