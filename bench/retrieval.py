"""Retrieval: enctune's `retrieve` task against BM25, the untrained encoder and sentence-transformers' MNRL.

    python -m bench.retrieval --data-root ../shared/data --out bench/results/retrieval

squad_small becomes an answer-sentence retrieval set (ReQA style), built here from the XQuAD/SQuAD file:
every sentence of the 240 paragraphs is a document, a question's relevant document is the sentence holding
its answer, and titles are split 80/20 (seeded) into train and test questions; test questions rank the whole
corpus. dbpedia_5k (evaluation only) says what tuning on SQuAD does to another domain.

Every variant trains in a fresh process on a copy of the folder holding only the train judgements, timed from
its start to its saved model (load, tokenize, train, write), with the same pairs, epochs and batch size:
enctune `--strategy full` with its defaults for the task (learning rate 1e-4, 10% warm-up, its validation carved
from the pairs) and `SentenceTransformer.fit` with `MultipleNegativesRankingLoss` (its default learning rate
2e-5, given the same 10% warm-up, trained on the same pairs less the 10% enctune carves). Every saved model is
then scored by the same code (`enctune.search.evaluate_retrieval`), so the comparison is of the training alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

from .machine import cpu_flags, has_native_bf16, versions

SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")


def sentences(context: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of a paragraph."""
    spans, start = [], 0
    for m in SENTENCE_END.finditer(context):
        spans.append((start, m.start() + len(m.group(0).rstrip())))
        start = m.end()
    spans.append((start, len(context)))
    return [(a, b) for a, b in spans if context[a:b].strip()]


def build_squad_retrieval(squad: Path, out: Path, seed: int = 0, train_share: float = 0.8) -> dict:
    """Write a BEIR folder from a SQuAD-style JSONL file; returns its sizes."""
    rows = [json.loads(x) for x in squad.read_text(encoding="utf-8").splitlines() if x.strip()]
    paragraphs: dict[str, int] = {}
    corpus, queries, qrels = [], [], {"train": [], "test": []}
    titles = sorted({r["title"] for r in rows})
    random.Random(seed).shuffle(titles)
    train_titles = set(titles[:round(train_share * len(titles))])
    spans_of: dict[int, list[tuple[int, int]]] = {}
    for r in rows:
        ctx = r["context"]
        if ctx not in paragraphs:
            k = paragraphs[ctx] = len(paragraphs)
            spans_of[k] = sentences(ctx)
            for j, (a, b) in enumerate(spans_of[k]):
                corpus.append({"_id": f"p{k}-s{j}", "title": "", "text": ctx[a:b].strip()})
        k = paragraphs[ctx]
        start = r["answers"]["answer_start"][0]
        j = next(j for j, (a, b) in enumerate(spans_of[k]) if a <= start < b or j == len(spans_of[k]) - 1)
        queries.append({"_id": r["id"], "text": r["question"]})
        qrels["train" if r["title"] in train_titles else "test"].append((r["id"], f"p{k}-s{j}"))
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    for name, items in (("corpus", corpus), ("queries", queries)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items), encoding="utf-8")
    for split, pairs in qrels.items():
        (out / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                                    + "".join(f"{q}\t{d}\t1\n" for q, d in pairs), encoding="utf-8")
    return {"documents": len(corpus), "paragraphs": len(paragraphs), "train_queries": len(qrels["train"]),
            "test_queries": len(qrels["test"]), "titles": len(titles), "train_titles": len(train_titles)}


# ---- variants, each run in a fresh process ---------------------------------------------------------------
def run_enctune(a: dict) -> dict:
    """enctune's own defaults for the task (learning rate, warm-up), at the epochs and batch size given."""
    cmd = [str(Path(sys.executable).with_name("enctune")), "train", "--data", a["data"], "--out", a["out"], "--strategy",
           "full", "--epochs", str(a["epochs"]), "--batch-size", str(a["batch_size"]), "--precision", "fp32",
           "--quiet", "--overwrite", *a.get("extra", [])]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return {"train_wall_s": round(time.perf_counter() - t0, 2), "model": a["out"]}


ST_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
a = json.loads(sys.argv[1])
from sentence_transformers import InputExample, SentenceTransformer, losses
from torch.utils.data import DataLoader
corpus = {json.loads(x)["_id"]: json.loads(x)["text"] for x in open(a["data"] + "/corpus.jsonl")}
queries = {json.loads(x)["_id"]: json.loads(x)["text"] for x in open(a["data"] + "/queries.jsonl")}
pairs = [l.rstrip("\n").split("\t") for l in open(a["data"] + "/qrels/train.tsv").readlines()[1:]]
rows = [(queries[q], corpus[d]) for q, d, s in pairs if int(s) > 0]
import random; random.Random(42).shuffle(rows)
n_val = max(1, round(0.1 * len(rows)))  # the share enctune carves for validation, so both train on the same count
train = [InputExample(texts=[q, d]) for q, d in rows[n_val:]]
model = SentenceTransformer(a["encoder"], device="cpu")
loader = DataLoader(train, shuffle=True, batch_size=a["batch_size"])
loss = losses.MultipleNegativesRankingLoss(model)
steps = len(loader) * a["epochs"]
model.fit(train_objectives=[(loader, loss)], epochs=a["epochs"], warmup_steps=int(0.1 * steps),
          optimizer_params={"lr": a["lr"]}, show_progress_bar=False)
model.save(a["out"])
print(json.dumps({"train_wall_s": round(time.perf_counter() - t0, 2), "model": a["out"], "train_pairs": len(train)}))
"""


def run_st(a: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", ST_SCRIPT, json.dumps(a)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bm25(folder: Path, split: str = "test") -> dict:
    import bm25s

    from enctune.retrieval import read_beir, retrieval_metrics

    corpus = read_beir(folder)
    t0 = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus.texts, stopwords="en", show_progress=False), show_progress=False)
    qids = list(corpus.qrels[split])
    docs, _ = retriever.retrieve(bm25s.tokenize([corpus.queries[q] for q in qids], stopwords="en",
                                                show_progress=False), k=100, show_progress=False)
    ranked = {q: [corpus.ids[j] for j in row] for q, row in zip(qids, docs, strict=True)}
    return {**retrieval_metrics(ranked, corpus.qrels[split]), "seconds": round(time.perf_counter() - t0, 2)}


def score(model: str, folder: Path, dims: int | None = None, rerank: str | None = None) -> dict:
    from enctune import progress
    from enctune.search import evaluate_retrieval

    progress.set_quiet(True)
    return evaluate_retrieval(model, folder, dims=dims, rerank=rerank, rerank_k=20)


def train_only(folder: Path, out: Path) -> Path:
    """A copy of ``folder`` with its train judgements alone: what the timed runs read, so that neither tool
    scores a test split inside its timed process (each saved model is scored afterwards by the same code)."""
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    for f in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv"):
        (out / f).write_bytes((folder / f).read_bytes())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--out", default="bench/results/retrieval")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--st-lr", type=float, default=2e-5, help="sentence-transformers' learning rate (fit's default)")
    ap.add_argument("--reps", type=int, default=1, help="training runs per tool, interleaved (times: each run's)")
    ap.add_argument("--seed", type=int, default=0, help="the title split's seed")
    ap.add_argument("--rerank", action="store_true", help="also train a reranker and rerank the tuned top 20")
    ap.add_argument("--st-at-enctune-lr", action="store_true",
                    help="also a sentence-transformers row at enctune's default learning rate (1e-4), one run")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from enctune.encoders.resolve import default_encoder_path

    out = Path(args.out)
    work = out / "work"
    squad = work / "squad_retrieval"
    sizes = build_squad_retrieval(Path(args.data_root) / "squad_small" / "validation.jsonl", squad, args.seed)
    timed = train_only(squad, work / "squad_train_only")
    dbpedia = Path(args.data_root) / "dbpedia_5k"
    encoder = str(default_encoder_path())
    machine = {"cpu": open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip(),
               "cores": len(os.sched_getaffinity(0)), "avx512": "avx512f" in cpu_flags(),
               "native_bf16": has_native_bf16(), "versions": versions()}
    results = {"machine": machine, "args": vars(args), "squad_sizes": sizes, "rows": {}}
    rows = results["rows"]

    def scored(model: str, rerank: str | None = None) -> dict:
        out = {"model": model, "squad": score(model, squad, rerank=rerank),
               "dbpedia": score(model, dbpedia, rerank=rerank)}
        if rerank is None:
            out["squad@128"] = score(model, squad, 128)
        return out

    rows["bm25"] = {"squad": bm25(squad), "dbpedia": bm25(dbpedia)}
    rows["untrained"] = scored(encoder)
    common = {"data": str(timed), "epochs": args.epochs, "batch_size": args.batch_size, "encoder": encoder}
    variants = [("enctune", run_enctune, {}), ("sentence-transformers MNRL", run_st, {"lr": args.st_lr})]
    for rep in range(args.reps):
        for name, fn, extra in variants:
            r = fn({**common, **extra, "out": str(work / f"{name.split()[0]}-{rep}")})
            row = rows.setdefault(name, {"train_wall_s": []})
            row["train_wall_s"].append(r["train_wall_s"])
            if rep == 0:
                row.update(scored(r["model"]))
            print(f"{name} rep {rep}: {r['train_wall_s']} s", file=sys.stderr)
    if args.st_at_enctune_lr:
        r = run_st({**common, "lr": 1e-4, "out": str(work / "sentence-transformers-lr1e-4")})
        rows["sentence-transformers MNRL, lr 1e-4"] = {"train_wall_s": [r["train_wall_s"]], **scored(r["model"])}
    if args.rerank:  # a cross-encoder trained on the same pairs (negatives mined), reordering the tuned top 20
        r = run_enctune({**common, "out": str(work / "reranker"), "extra": ["--task", "rerank"]})
        rows["enctune + rerank top 20"] = {"train_wall_s": [r["train_wall_s"]],
                                           **scored(rows["enctune"]["model"], rerank=r["model"])}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(table(results))
    print(table(results))
    return 0


def table(results: dict) -> str:
    m = results["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, AVX-512 {m['avx512']}, native bf16 {m['native_bf16']}; "
             f"versions {m['versions']}.",
             f"squad_small as retrieval: {results['squad_sizes']}; epochs {results['args']['epochs']}, batch "
             f"{results['args']['batch_size']}; sentence-transformers lr {results['args']['st_lr']}, enctune its "
             "default.", "",
             "| variant | squad nDCG@10 | squad MRR@10 | squad R@10 | squad nDCG@10 at 128 dims | dbpedia_5k nDCG@10 "
             "| train wall s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results["rows"].items():
        sq, db = r["squad"], r["dbpedia"]
        at128 = r.get("squad@128", {}).get("ndcg@10")
        wall = ", ".join(f"{x:.1f}" for x in r.get("train_wall_s", [])) or "-"
        lines.append(f"| {name} | {100 * sq['ndcg@10']:.1f} | {100 * sq['mrr@10']:.1f} | {100 * sq['recall@10']:.1f} "
                     f"| {'-' if at128 is None else f'{100 * at128:.1f}'} | {100 * db['ndcg@10']:.1f} | {wall} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
