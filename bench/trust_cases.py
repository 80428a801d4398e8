"""Replay the security and robustness review (issue 16) from the command line, as a user would.

Each case runs this tree's enctune as a user meets it: the ``enctune`` command in a fresh process (``python
-m enctune``, so exit codes and stderr are real), the HTTP server that ``enctune serve`` starts, and, where
the review used it, ``python -c "import enctune; ..."``. The cases, numbered as in the review:

 2  an --out folder holding the user's files (thesis.tex beside model/, metrics.json or checkpoints/)
 3  --out . (the current folder)
 4  a run killed between the two renames of a folder replace: the old run aside, a stale staging folder
 5  a Hugging Face classifier folder whose config.json asks to run its own code (auto_map)
 6  a lone surrogate sent to the server among good requests; a command-line text that is not UTF-8
 8  serve --token '', what /info shows, a malformed JSON body, JSON without its Content-Type
 9  a tampered model folder: enctune.json fields, 5 million labels, NaN head weights, a gap in id2label
 10 --resume after a SIGKILL: the data named another way, the data changed, a damaged state.json
 11 the readers (through ``enctune check``): a TSV cell starting with a quote, a 200,000-character cell,
    missing labels, 0 and 0.0, UTF-16 with a BOM

One line per case: what was done, the exit code (or HTTP status), the first line of the message, PASS or
FAIL. Every case also requires that no Python traceback reaches the user and that nothing of theirs is lost.
It all happens in a temporary folder, with a tiny random encoder built here: no network, a few minutes on two
cores. From the repository root:

    python -m bench.trust_cases [--out bench/results/trust-cases.md] [--keep]

The table is printed, and also written as markdown to --out when given; --keep keeps the work folder. The
exit code is 1 when any case FAILs.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import _write_tokenizer, make_rows, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")
# evil.py: were it ever imported (transformers imports what auto_map names), the marker would appear
EVIL = "from pathlib import Path\nPath({marker!r}).write_text('the code ran')\nEvilModel = EvilConfig = 0\n"
# python -c: one call, a UserError reported as the CLI reports it (the message on stderr, exit code 2)
PY = ("import sys, enctune\ntry:\n    {call}\nexcept enctune.UserError as e:\n"
      "    print('UserError:', e, file=sys.stderr)\n    sys.exit(2)\n")


def headline(text: str, pick: str = "error:") -> str:
    """The line holding ``pick`` (else the first line), shortened and made safe for a markdown cell."""
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    line = next((x for x in lines if pick in x), lines[0] if lines else "")
    return (line if len(line) <= 120 else line[:117] + "...").replace("|", "\\|")


def dead_pid() -> int:
    """The PID of a process that has exited (os.kill(pid, 0) says so): what a killed write leaves in names."""
    while True:
        p = subprocess.Popen([sys.executable, "-c", ""])
        p.wait()
        try:
            os.kill(p.pid, 0)
        except ProcessLookupError:
            return p.pid


def edit_json(path: Path, **changes) -> None:
    """Set (None: remove) keys of a JSON object file, as a user with an editor would."""
    data = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps({k: v for k, v in data.items() if k not in changes or v is not None}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replay:
    def __init__(self, work: Path):
        self.w, self.rows = work, []
        path = os.environ.get("PYTHONPATH")
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                    "OMP_NUM_THREADS": "1", "ENCTUNE_CACHE": str(work / "cache"),
                    "PYTHONPATH": os.pathsep.join([SRC, path] if path else [SRC])}

    # ---- running and recording ----------------------------------------------------------------------------
    def run(self, argv, cwd=None, stdin=b"", timeout=300) -> tuple[int | str, str]:
        argv = [a if isinstance(a, bytes) else str(a) for a in argv]
        try:
            r = subprocess.run(argv, cwd=cwd or self.w, env=self.env, input=stdin, capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return "timeout", ((e.stderr or b"") + (e.stdout or b"")).decode("utf-8", "replace")
        return r.returncode, (r.stderr + r.stdout).decode("utf-8", "replace")

    def cli(self, *args, **kw):
        return self.run([sys.executable, "-m", "enctune", *args], **kw)

    def py(self, call: str, *args, **kw):
        return self.run([sys.executable, "-c", PY.format(call=call), *args], **kw)

    def train(self, *args, **kw):
        return self.cli("train", "--data", self.data, "--model", self.enc, "--strategy", "probe", *args, **kw)

    def row(self, case, what, status, output, ok, msg=None, pick="error:"):
        ok = ok and "Traceback" not in output
        self.rows.append((case, what, str(status), msg or headline(output, pick), "PASS" if ok else "FAIL"))
        print(f"  {case:4} {'PASS' if ok else 'FAIL'}  {what}", file=sys.stderr, flush=True)

    # ---- shared by the cases: a tiny encoder, a Hugging Face classifier, data, a trained probe run ---------
    def setup(self):
        import torch
        from transformers import BertConfig, BertForSequenceClassification, BertModel

        self.enc, self.hf = self.w / "enc", self.w / "hf"
        vocab = _write_tokenizer(self.enc).vocab_size
        _write_tokenizer(self.hf)
        shape = {"vocab_size": vocab, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "intermediate_size": 64, "max_position_embeddings": 64}
        torch.manual_seed(0)
        BertModel(BertConfig(initializer_range=0.5, **shape)).save_pretrained(self.enc)
        (self.enc / "1_Pooling").mkdir()
        (self.enc / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
        labels = {"id2label": {0: "neg", 1: "pos"}, "label2id": {"neg": 0, "pos": 1}}
        BertForSequenceClassification(BertConfig(num_labels=2, **labels, **shape)).save_pretrained(self.hf)
        self.data = write_jsonl(self.w / "data" / "train.jsonl", make_rows(60, seed=1))
        self.trained = self.w / "run"
        code, out = self.train("--out", self.trained, "--quiet")
        if code != 0:
            raise RuntimeError(f"training the shared run failed ({code}): {headline(out)}")

    # ---- 2, 3: the user's folders --------------------------------------------------------------------------
    def case2(self):
        for sub, theirs in zip("abc", ["model", "metrics.json", "checkpoints"], strict=True):
            proj = self.w / f"c2{sub}" / "proj"
            proj.mkdir(parents=True)
            if theirs.endswith(".json"):
                (proj / theirs).write_text("{}")
            else:
                (proj / theirs).mkdir()
            (proj / "thesis.tex").write_text("mine\n")
            code, out = self.train("--out", "proj", cwd=proj.parent)
            kept = (proj / "thesis.tex").read_text() == "mine\n" and \
                sorted(p.name for p in proj.iterdir()) == sorted([theirs, "thesis.tex"])
            self.row(f"2{sub}", f"proj/ holds {theirs} and thesis.tex; train --out proj", code, out,
                     code == 2 and "thesis.tex" in out and kept)

    def case3(self):
        work = self.w / "c3" / "work"
        work.mkdir(parents=True)
        code, out = self.train("--out", ".", cwd=work)
        self.row("3", "train --out . in an empty work folder", code, out,
                 code == 2 and "current folder" in out and not any(work.iterdir()))

    # ---- 4: a kill between the two renames of a folder replace ---------------------------------------------
    def case4(self):
        for sub, extra in (("a", ["--overwrite"]), ("b", [])):
            root = self.w / f"c4{sub}"
            run, head = root / "run", root / "run" / "model" / "head.safetensors"
            self.train("--out", run, "--seed", "1", "--quiet")
            before, pid = head.read_bytes(), dead_pid()
            os.replace(run, root / f".run.old-{pid}")  # the state a kill between the two renames leaves
            stale = root / f".run.tmp-{pid}-k1ll3d" / "model"
            stale.mkdir(parents=True)
            (stale / "enctune.json").write_text("{half written")
            code, out = self.train("--out", run, "--seed", "2", *extra)
            left = sorted(p.name for p in root.iterdir())
            seed = json.loads((run / "config.json").read_text())["seed"] if run.is_dir() else None
            what = f"run aside as .run.old-{pid}, stale .run.tmp-{pid}-*; train --out run {' '.join(extra)}"
            if sub == "a":
                self.row("4a", what, code, out, code == 0 and "restored" in out and left == ["run"] and
                         seed == 2, pick="restored")
            else:
                self.row("4b", what, code, out, code == 2 and "restored" in out and "--overwrite" in out and
                         left == ["run"] and seed == 1 and head.read_bytes() == before)

    # ---- 5: no code from model folders ---------------------------------------------------------------------
    def case5(self):
        folder, marker, export = self.w / "c5" / "evil", self.w / "c5" / "MARKER", self.w / "c5" / "X"
        shutil.copytree(self.hf, folder)
        (folder / "evil.py").write_text(EVIL.format(marker=str(marker)))
        edit_json(folder / "config.json", auto_map={"AutoModelForSequenceClassification": "evil.EvilModel",
                                                    "AutoConfig": "evil.EvilConfig"})
        yes = b"y\n" * 100
        for sub, what, (code, out) in [
            ("a", 'yes | enctune predict FOLDER "a text"', self.cli("predict", folder, "a text", stdin=yes)),
            ("b", "yes | enctune evaluate FOLDER --data D",
             self.cli("evaluate", folder, "--data", self.data, stdin=yes)),
            ("c", "yes | enctune export FOLDER --out X",
             self.cli("export", folder, "--out", export, stdin=yes)),
            ("d", 'yes | python -c "import enctune; enctune.load(FOLDER)"',
             self.py("enctune.load(sys.argv[1])", folder, stdin=yes)),
        ]:
            self.row(f"5{sub}", what + " (evil.py writes a marker if imported)", code, out, code == 2 and
                     "[y/N]" not in out and "auto_map" in out and not marker.exists() and not export.exists())

    # ---- 6 and 8: the server, and texts that are not Unicode -----------------------------------------------
    def case6_8(self):
        import httpx

        import enctune

        url, log = f"http://127.0.0.1:{free_port()}", (self.w / "serve.log").open("wb")
        server = subprocess.Popen([sys.executable, "-m", "enctune", "serve", str(self.trained), "--port",
                                   url.rsplit(":", 1)[1], "--quiet"], env=self.env, stdout=log, stderr=log)
        json_type = {"Content-Type": "application/json"}
        try:
            deadline = time.monotonic() + 180
            while not self._ready(httpx, url):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"enctune serve did not start: {(self.w / 'serve.log').read_text()}")
                time.sleep(0.2)
            texts = [r["text"] for r in make_rows(20, seed=21)]
            bodies = [b'{"texts": ["a \\ud800 b"]}'] + [json.dumps({"texts": [t]}).encode() for t in texts]

            def send(body):
                return httpx.post(f"{url}/predict", content=body, headers=json_type, timeout=120)

            with cf.ThreadPoolExecutor(len(bodies)) as pool:
                bad, *good = pool.map(send, bodies)
            same = all(r.status_code == 200 and r.json()[0]["label"] == e["label"] and all(
                abs(r.json()[0]["probabilities"][k] - p) < 1e-5 for k, p in e["probabilities"].items())
                for r, e in zip(good, enctune.load(self.trained).predict(texts), strict=True))
            self.row("6a", 'POST /predict {"texts": ["a \\ud800 b"]} at once with 20 good requests',
                     f"{bad.status_code}; good: {sorted({r.status_code for r in good})}", bad.text,
                     bad.status_code == 422 and bad.json()["message"].startswith("texts[0]") and same,
                     msg=headline(bad.json()["message"]) + " (all 20 good: enctune.load().predict's answers)")
            self._server_details(httpx, url, json_type)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
        code, out = self.cli("predict", self.trained, b"\xff")
        self.row("6b", "enctune predict RUN $'\\xff' (an argument that is not UTF-8)", code, out,
                 code == 2 and out.startswith("error:") and "0xFF" in out)
        code, out = self.py('enctune.load(sys.argv[1]).predict(["a \\ud800 b"])', self.trained)
        self.row("6c", 'python: enctune.load(RUN).predict(["a \\ud800 b"])', code, out,
                 code == 2 and "UserError: texts[0]" in out, pick="UserError")

    @staticmethod
    def _ready(httpx, url) -> bool:
        try:
            return httpx.get(f"{url}/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def _server_details(self, httpx, url, json_type):
        code, out = self.cli("serve", self.trained, "--token", "", "--port", str(free_port()), timeout=120)
        self.row("8a", "enctune serve RUN --token ''", code, out, code == 2 and "token" in out)
        info, strings = httpx.get(f"{url}/info", timeout=30), []

        def walk(v):
            if isinstance(v, str):
                strings.append(v)
            for x in [*v.keys(), *v.values()] if isinstance(v, dict) else v if isinstance(v, list) else []:
                walk(x)

        walk(info.json())
        home = str(Path.home())
        leaked = [s for s in strings if s.startswith(("/tmp", home, str(self.w)))]
        self.row("8b", "GET /info: any absolute path (the base model's, the run's)?", info.status_code,
                 info.text, info.status_code == 200 and not leaked and str(self.w) not in info.text,
                 msg=f"encoder.base_model {info.json()['encoder']['base_model']!r}, paths {leaked or 'none'}")
        for case, what, body, headers, status in [
            ("8c", "POST /predict with a malformed JSON body", b'{"texts": ["good"', json_type, 400),
            ("8d", "POST /predict with JSON and no Content-Type header", b'{"texts": ["good"]}', {}, 415),
        ]:
            r = httpx.post(f"{url}/predict", content=body, headers=headers, timeout=30)
            err = r.json()
            self.row(case, what, r.status_code, r.text, r.status_code == status and (
                err["error"] == "malformed_json" if status == 400 else "Content-Type" in err["message"]),
                msg=f"{err['error']}: {headline(err['message'])}")

    # ---- 9: tampered model folders -----------------------------------------------------------------------
    def case9(self):
        from safetensors.torch import load_file, save_file

        def meta(field, value):
            return lambda folder: edit_json(folder / "enctune.json", **{field: value})

        def nan_head(folder):
            head = {k: v.clone() for k, v in load_file(folder / "head.safetensors").items()}
            for v in head.values():
                v.view(-1)[0] = float("nan")
            save_file(head, str(folder / "head.safetensors"), metadata={"format": "enctune-head"})

        def id2label_gap(folder):
            edit_json(folder / "config.json", id2label={"0": "a", "2": "b"}, label2id=None)

        model = self.trained / "model"
        fields = [("dropout", 5), ("columns", "x"), ("max_length", -5), ("temperature", "hot"),
                  ("temperature", -1), ("label_type", "int")]
        cases = [(f'enctune.json "{f}": {json.dumps(v)}', model, meta(f, v), ["enctune.json", f"'{f}'"])
                 for f, v in fields] + [
            ("enctune.json with 5,000,000 labels", model,
             meta("labels", [f"label {i}" for i in range(5_000_000)]), ["enctune.json"]),
            ("head.safetensors with NaN weights", model, nan_head, ["head.safetensors"]),
            ('HF classifier, id2label {"0": "a", "2": "b"}', self.hf, id2label_gap,
             ["config.json", "id2label"]),
        ]
        base = None
        for sub, (what, source, edit, names) in zip("abcdefghi", cases, strict=True):
            folder = self.w / f"c9{sub}" / source.name
            shutil.copytree(source, folder)
            edit(folder)
            start = time.monotonic()
            code, out = self.cli("predict", folder, "x")
            took = time.monotonic() - start
            base = base or took  # 9a: the time of a refusal, start-up included
            self.row(f"9{sub}", f'{what}; predict FOLDER "x" ({took:.1f} s)', code, out,
                     code == 2 and all(n in out for n in names) and (sub != "g" or took < base + 5))

    # ---- 10: resume after a SIGKILL ------------------------------------------------------------------------
    def case10(self):
        root = self.w / "c10"
        data = write_jsonl(root / "d" / "train.jsonl", make_rows(400, seed=1))
        args = [str(self.enc) if a == "ENC" else a for a in "--model ENC --strategy full --epochs 2 "
                "--checkpoint-every 1 --batch-size 8 --out R --quiet".split()]
        proc = subprocess.Popen([sys.executable, "-m", "enctune", "train", "--data", "d/train.jsonl", *args],
                                cwd=root, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not any((root / "R" / "checkpoints").glob("step-*")) and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        found = sorted(p.name for p in (root / "R" / "checkpoints").glob("step-*"))
        self.row("10a", "train --data d/train.jsonl --strategy full --epochs 2 --checkpoint-every 1 --out R; "
                 "SIGKILL once a checkpoint appears", proc.returncode, "",
                 proc.returncode == -signal.SIGKILL and found and not (root / "R" / "metrics.json").exists(),
                 msg=f"left R/checkpoints/{', '.join(found)}")
        if not found:
            return
        state = root / "R" / "checkpoints" / found[-1] / "state.json"
        saved, original = state.read_text(), data.read_bytes()
        state.write_text(json.dumps({k: v for k, v in json.loads(saved).items() if k != "settings"}))
        code, out = self.cli("train", "--data", "d/train.jsonl", *args, "--resume", cwd=root)
        self.row("10b", 'state.json without "settings"; train ... --resume', code, out,
                 code == 2 and "settings" in out and state.is_file())
        state.write_text(saved)
        write_jsonl(data, make_rows(400, seed=2))
        code, out = self.cli("train", "--data", "d/train.jsonl", *args, "--resume", cwd=root)
        self.row("10c", "d/train.jsonl rewritten with other rows; train ... --resume", code, out,
                 code == 2 and "data changed" in out and state.is_file())
        data.write_bytes(original)
        code, out = self.cli("train", "--data", data, *args, "--resume", cwd=root)
        metrics = root / "R" / "metrics.json"
        resumed = json.loads(metrics.read_text())["costs"]["resumed_at_step"] if metrics.is_file() else None
        self.row("10d", "the same data named by its absolute path; train ... --resume", code, out,
                 code == 0 and bool(resumed), msg=f"finished; metrics.json: resumed_at_step {resumed}")

    # ---- 11: the readers, through enctune check ------------------------------------------------------------
    def case11(self):
        quoted = "".join('"quoted start good film\tpositive\nplain awful film\tnegative\n' for _ in range(3))
        big = "good film " * 20_000 + ",positive\nawful,negative\ngreat,positive\ndull,negative\n"
        excel = "café good\tpositive\r\nnaïve bad\tnegative\r\n"
        two = {"negative": 2, "positive": 2}
        for sub, name, raw, what, want in [
            ("a", "data.tsv", ("text\tlabel\n" + quoted).encode(), "TSV of 6 rows, 3 start with a quote",
             (6, {"negative": 3, "positive": 3})),
            ("b", "data.csv", ("text,label\n" + big).encode(), "CSV, a cell of 200,000 characters", (4, two)),
            ("c", "data.csv", b"text,label\ngood,positive\nawful,negative\nfine,NA\nbad,NaN\nok,\n",
             'CSV with labels "NA", "NaN" and "" (lines 4-6)', None),
            ("d", "data.csv", b"text,label\ngood,0\ngreat,0.0\nawful,1\ndull,1.0\n",
             "CSV with labels 0, 0.0, 1, 1.0", (4, {"0": 2, "1": 2})),
            ("e", "data.csv", ("text\tlabel\r\n" + excel * 2).encode("utf-16"),
             'UTF-16 with a BOM, tab-separated (Excel\'s "Unicode text")', (4, two)),
        ]:
            path = self.w / f"c11{sub}" / name
            path.parent.mkdir()
            path.write_bytes(raw)
            code, out = self.cli("check", "--data", path, "--model", self.enc, "--no-label-errors", "--json")
            if want is None:  # a missing label is an error naming its lines, never a class
                self.row(f"11{sub}", what + "; enctune check", code, out,
                         code == 2 and "line 4" in out and "'label'" in out)
                continue
            report = json.loads(out[out.index("{"):]) if code == 0 else {}
            got = (report["sizes"]["train"], report["balance"]["counts"]["train"]) if report else None
            self.row(f"11{sub}", what + "; enctune check --json", code, out,
                     got == want and report["columns"]["text"] == "text",
                     msg=f"{got[0]} rows; classes {got[1]}" if got else None)


def table(rows) -> str:
    lines = ["| case | what was done | exit / HTTP | first line of the message | result |", "|---" * 5 + "|"]
    cell = re.compile(r"(?<!\\)\|")  # a pipe in a cell (``yes | enctune ...``) not yet escaped
    escaped = [[cell.sub(r"\\|", c) for c in r] for r in rows]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in escaped])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trust_cases", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the markdown table to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (its path is shown)")
    args = parser.parse_args(argv)
    sys.path.insert(0, SRC)  # this tree's enctune, here and (PYTHONPATH) in every child process
    start, work = time.monotonic(), Path(tempfile.mkdtemp(prefix="enctune-trust-"))
    replay = Replay(work)
    try:
        replay.setup()
        for case in (replay.case2, replay.case3, replay.case4, replay.case5, replay.case6_8, replay.case9,
                     replay.case10, replay.case11):
            try:
                case()
            except Exception as e:  # the replay's own failure: a FAIL row, and the other cases still run
                replay.rows.append((case.__name__[4:], "(replay failed)", "-", headline(repr(e)), "FAIL"))
    finally:
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    failed = sum(r[-1] == "FAIL" for r in replay.rows)
    text = (f"{table(replay.rows)}\n\n{len(replay.rows)} cases, {failed} FAIL; "
            f"{time.monotonic() - start:.0f} s on {os.cpu_count()} cores.\n")
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(f"# The trust review, replayed (python -m bench.trust_cases)\n\n{text}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
