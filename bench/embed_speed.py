"""Embedding throughput: `enctune.embed` against sentence-transformers' `encode`, same texts, same batch size.

    python -m bench.embed_speed --corpus ../shared/data/dbpedia_5k/corpus.jsonl --batch-size 32 --reps 2

Each repetition runs both tools in fresh processes, alternating, on every document of the corpus (a BEIR
corpus.jsonl: title and text joined, as both tools' retrieval code reads them). A warm-up call on 16 texts
comes first, then one timed call on all of them (model load excluded). The vectors are compared after both
are scaled to unit length (the checkpoint's own Normalize step in sentence-transformers): the largest absolute
difference of any coordinate is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r"""
import json, sys, time
import numpy as np
a = json.loads(sys.argv[1])
texts = json.load(open(a["texts"]))
if a["tool"] == "st":
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(a["encoder"], device="cpu")
    run = lambda t: model.encode(t, batch_size=a["batch_size"], show_progress_bar=False, convert_to_numpy=True)
else:
    from enctune import progress
    from enctune.search import load_embedder
    progress.set_quiet(True)
    embed = load_embedder(a["encoder"])
    run = lambda t: embed(t, a["batch_size"])
run(texts[:16])
t0 = time.perf_counter()
v = run(texts)
seconds = time.perf_counter() - t0
v = v / np.linalg.norm(v, axis=1, keepdims=True)
np.save(a["out"], v.astype(np.float32))
print(json.dumps({"seconds": seconds, "texts_per_s": len(texts) / seconds}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="../shared/data/dbpedia_5k/corpus.jsonl")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from enctune.encoders.resolve import default_encoder_path
    from enctune.retrieval import read_documents

    from .machine import cpu_flags, cpu_model
    from .measure import write_json

    _, texts = read_documents(args.corpus)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "texts.json").write_text(json.dumps(texts))
    rows: dict[str, list[float]] = {"st": [], "enctune": []}
    for rep in range(args.reps):
        for tool in ("st", "enctune"):
            a = {"tool": tool, "texts": str(tmp / "texts.json"), "encoder": str(default_encoder_path()),
                 "batch_size": args.batch_size, "out": str(tmp / f"{tool}.npy")}
            out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(a)], check=True, capture_output=True,
                                 text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows[tool].append(r["texts_per_s"])
            print(f"rep {rep} {tool}: {r['texts_per_s']:.1f} texts/s", file=sys.stderr)
    import numpy as np

    diff = float(np.abs(np.load(tmp / "st.npy") - np.load(tmp / "enctune.npy")).max())
    cpu = cpu_model()
    result = {"cpu": cpu, "avx512": "avx512f" in cpu_flags(), "texts": len(texts), "batch_size": args.batch_size,
              "texts_per_s": rows, "best_ratio": max(rows["enctune"]) / max(rows["st"]),
              "max_abs_difference": diff}
    print("| tool | texts/s per rep | best |\n| --- | --- | --- |")
    for tool, v in rows.items():
        print(f"| {tool} | {', '.join(f'{x:.1f}' for x in v)} | {max(v):.1f} |")
    print(f"\n{cpu} (AVX-512: {result['avx512']}); {len(texts)} texts, batch {args.batch_size}; enctune / "
          f"sentence-transformers (best of {args.reps}): {result['best_ratio']:.2f}x; largest difference of a unit "
          f"vector's coordinate: {diff:.2e}")
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
