"""``python -m bench``: run the selected rows and write ``results.json`` and ``results.md``.

Order of work: describe the machine (in a worker: versions, CPU flags, GEMM peak); then,
row by row, plan the row (write any data subsets into a temporary work folder, run the
row's set-up) and run its repetitions, each variant in a fresh worker process, variants
interleaved within a repetition. Results are rewritten after every row (to a ``.tmp`` file
renamed into place), so an interrupted run keeps the rows it finished. The work folder,
with its data subsets, caches and model folders, is deleted at the end; pass
``--keep-work`` to keep it (with the worker logs) for debugging.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .report import derive, markdown, summarise
from .rows import FULL_GROWTH, QUICK_GROWTH, ROWS, Settings
from .runner import Runner, say
from .task_rows import TASK_ROWS

ALL_ROWS = {**ROWS, **TASK_ROWS}  # the default run is ROWS; the task rows run when named

REPO = Path(__file__).resolve().parents[1]


def _csv(kind):
    def parse(text: str) -> list:
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list: {e}") from None
    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=_csv(str), default=list(ROWS),
                   help=f"comma-separated, from {','.join(ALL_ROWS)} (default {','.join(ROWS)})")
    p.add_argument("--reps", type=int, default=3, help="repetitions of every variant (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="tiny data (SST-2 300/100/200; growth size 100, length 32 on 100): checks the "
                        "harness end to end in minutes; the figures mean nothing")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default bench/results, or bench/results/quick with --quick)")
    p.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data",
                   help="folder holding sst2/, trec/, ag_news/ (default <repo>/../shared/data)")
    p.add_argument("--datasets", type=_csv(str), default=["sst2", "trec", "ag_news"], help="growth row data sets")
    p.add_argument("--sizes", type=_csv(int), default=None, help="growth row train sizes (default 1000,2000,4000,8000)")
    p.add_argument("--lengths", type=_csv(int), default=None, help="growth row max lengths (default 32,64,128,256)")
    p.add_argument("--sweep-size", type=int, default=None, help="train size of the length sweep (default 2000)")
    p.add_argument("--predict-model", type=Path, default=None,
                   help="predict row: reuse this Hugging Face classification folder instead of training one")
    p.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before a worker is killed")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary work folder and worker logs")
    p.add_argument("--variants", type=_csv(str), default=None,
                   help="run only the variants matching these shell patterns (e.g. 'enctune_*')")
    p.add_argument("--reuse", type=_csv(Path), default=None,
                   help="comma-separated results.json files whose cases of the variants not run here are carried "
                        "over (marked as such), so ratios against a peer measured earlier can still be computed")
    args = p.parse_args(argv)
    unknown = [r for r in args.rows if r not in ALL_ROWS]
    if unknown:
        p.error(f"--rows: unknown {', '.join(unknown)}; choose from {', '.join(ALL_ROWS)}")
    missing = [str(f) for f in args.reuse or [] if not f.is_file()]
    if missing:
        p.error(f"--reuse: no such file: {', '.join(missing)}")
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if not (args.data_root / "sst2" / "train.jsonl").is_file():
        p.error(f"--data-root {args.data_root}: no sst2/train.jsonl there")
    return args


def _write(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.json", json.dumps(results, indent=2, default=str) + "\n"),
                       ("results.md", markdown(results))):
        tmp = out / f"{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)


def selected(variant: str, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(variant, p) for p in patterns)


def carried_over(path: Path, row: str, patterns: list[str] | None, notes: list[str]) -> list[dict]:
    """The cases of ``row`` in an earlier results.json whose variants this run does not run."""
    earlier = json.loads(path.read_text(encoding="utf-8"))
    old = [c for c in (earlier.get("rows", {}).get(row) or {}).get("cases", [])
           if not selected(c["variant"], patterns)]
    if old:
        names = ", ".join(sorted({c["variant"] for c in old}))
        notes.append(f"{names}: carried over from {path} (command `{earlier.get('command')}`, started "
                     f"{earlier.get('started')}), not rerun side by side in this run.")
    return [{**c, "carried_over_from": str(path)} for c in old]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    out = args.out or (REPO / "bench" / "results" / ("quick" if args.quick else ""))
    growth = QUICK_GROWTH if args.quick else FULL_GROWTH
    work = Path(tempfile.mkdtemp(prefix="enctune-bench-"))
    t0 = time.time()
    results: dict = {
        "command": "python -m bench " + shlex.join(argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "settings": {"rows": args.rows, "reps": args.reps, "quick": args.quick, "data_root": str(args.data_root),
                     "datasets": args.datasets, "sizes": args.sizes or growth["sizes"],
                     "lengths": args.lengths or growth["lengths"],
                     "sweep_size": args.sweep_size or growth["sweep_size"], "timeout": args.timeout},
        "load_avg_start": round(os.getloadavg()[0], 2),
        "rows": {},
    }
    try:
        runner = Runner(REPO, work, args.timeout)
        say(f"work folder {work}; results to {out}")
        machine = runner.run("machine", {}, "machine")
        results["machine"] = machine
        if machine.get("status") != "ok":
            say("could not describe the machine; continuing without FLOP rates")
        settings = Settings(repo=REPO, data_root=args.data_root, work=work, quick=args.quick,
                            encoder=machine.get("encoder_path") or "", runner=runner, datasets=args.datasets,
                            sizes=args.sizes or growth["sizes"], lengths=args.lengths or growth["lengths"],
                            sweep_size=args.sweep_size or growth["sweep_size"], n_val=growth["n_val"],
                            predict_model=args.predict_model)
        if not settings.encoder:
            say("no encoder path (the machine worker failed); stopping")
            return 1
        for name in args.rows:
            row = ALL_ROWS[name](settings)
            cases = []
            for rep in range(1, args.reps + 1):
                for case in row.cases(rep):
                    if not selected(case.variant, args.variants):
                        continue
                    label = f"{name} rep {rep}/{args.reps}" + (f" [{case.point}]" if case.point else "")
                    result = runner.run(case.variant, case.args, label)
                    derive(result, machine)
                    cases.append({"rep": rep, "point": case.point, "variant": case.variant, "args": case.args,
                                  "result": result})
            for earlier in args.reuse or []:
                cases += carried_over(earlier, name, args.variants, row.notes)
            if row.postprocess:
                row.postprocess(cases)
            results["rows"][name] = {
                "description": row.description, "setup": row.setup, "notes": row.notes,
                "metrics": [vars(m) for m in row.metrics], "cases": cases,
                "summary": summarise(cases, row.ratios),
            }
            results["duration_seconds"] = round(time.time() - t0, 1)
            _write(out, results)
            say(f"row {name} done; wrote {out / 'results.md'}")
    finally:
        results["duration_seconds"] = round(time.time() - t0, 1)
        results["load_avg_end"] = round(os.getloadavg()[0], 2)
        results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        if "machine" in results:
            _write(out, results)
        if args.keep_work:
            say(f"kept work folder {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    say(f"done in {results['duration_seconds']:.0f} s: {out / 'results.md'}")
    return 0
