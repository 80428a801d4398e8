"""``enctune serve`` (starts the HTTP server, ``enctune.serve.server``) and ``enctune export``."""

from __future__ import annotations

import json
import os
import sys

import typer

from .. import api, progress
from ..errors import UserError
from ..serve.loading import is_onnx_folder, require
from .app import Opt, app, setup


@app.command()
def serve(
    folders: list[str] = typer.Argument(..., help="Model folders (run, model/, HF classifier or ONNX export); "
                                                   "NAME=FOLDER names one. /predict uses the first."),
    host: str = Opt("127.0.0.1", "--host", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = Opt(8000, "--port", min=0, max=65535, help="Port to listen on."),
    token: str | None = Opt(None, "--token", envvar="ENCTUNE_TOKEN", show_envvar=True,
                            help="Require 'Authorization: Bearer TOKEN' on /predict, /info and /models "
                                 "[default: no token]."),
    precision: str | None = Opt(None, "--precision", help="fp32, bf16, int8 or fastest [default: fp32; an ONNX "
                                                            "export: its int8 model when it has one]."),
    max_texts: int = Opt(256, "--max-texts", min=1, help="Most texts in one request."),
    max_chars: int = Opt(10_000, "--max-chars", min=1, help="Most characters in one text."),
    max_body_bytes: int = Opt(1 << 20, "--max-body-bytes", min=64, help="Largest request body."),
    max_tokens: int = Opt(16_384, "--max-tokens", min=1, help="Most tokens in one request (estimated: UTF-8 bytes "
                                                              "/ 3, at most the model's max length per text)."),
    max_batch: int = Opt(64, "--max-batch", min=1, help="Most texts in one model call across requests."),
    batch_tokens: int = Opt(256, "--batch-tokens", min=1, help="Most (estimated) tokens in one model call: a "
                                                               "larger request runs in pieces, between others."),
    wait_ms: float = Opt(5.0, "--wait-ms", min=0, help="How long a request waits for others to batch with."),
    index: str | None = Opt(None, "--index", help="An index folder (`enctune index`): also POST /search and "
                                                  "POST /embed, with the encoder that built it."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No access log."),
):
    """Serve model folders over HTTP: POST /predict, GET /health, /ready, /info, /docs; with --index also
    POST /search and /embed."""

    require(("fastapi", "uvicorn"), "enctune serve")
    from ..serve.server import (  # lazy: fastapi (~0.6 s), only when serving
        Limits,
        build_app,
        check_token_value,
        load_models,
        parse_specs,
    )

    if token is None and os.environ.get("ENCTUNE_TOKEN") == "":  # Click reads an empty variable as unset
        token = ""
    check_token_value(token)  # before minutes of loading: an empty token is a mistake, not "no token"
    if all(is_onnx_folder(f) for _, f in parse_specs(folders)):
        progress.set_quiet(quiet)  # no transformers, no torch on this path
    else:
        setup(quiet)
    limits = Limits(max_body_bytes=max_body_bytes, max_texts=max_texts, max_chars=max_chars, max_tokens=max_tokens,
                    max_batch=max_batch, batch_tokens=batch_tokens, wait_ms=wait_ms)
    models = load_models(folders, precision)
    searcher = api.Searcher(index) if index is not None else None
    api_app = build_app(models, limits, token, searcher)
    import uvicorn  # lazy: the server's own packages only when serving

    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        print(f"warning: serving on {host} without a token: anyone who can reach it can use it.", file=sys.stderr)
    for m in models:
        progress.info(f"model '{m.name}': {m.predictor.task.name}, {len(m.predictor.labels)} labels, from {m.folder}")
    if searcher is not None:
        progress.info(f"index: {len(searcher.index)} documents from {index} (/search, /embed)")
    uvicorn.run(api_app, host=host, port=port, log_level="warning" if quiet else "info", access_log=not quiet)


@app.command()
def export(
    run: str = typer.Argument(..., help="Run folder (or its model/ folder, or a Hugging Face classifier folder)."),
    out: str = Opt(..., "--out", help="Folder to write the export into."),
    fmt: str | None = Opt(None, "--format", help="onnx [default: onnx, unless --merge]."),
    merge: bool = Opt(False, "--merge", help="LoRA runs: write a plain model folder with the adapters folded "
                                             "into the encoder weights, instead of an ONNX folder."),
    quantize: str | None = Opt(None, "--quantize", help="int8: also write a dynamically quantised model "
                                                          "[default: fp32 only]."),
    check_data: str | None = Opt(None, "--check-data", help="Texts to check the export on [default: the run's "
                                                              "validation file]."),
    max_check: int = Opt(1000, "--max-check", min=1, help="Most texts to check on."),
    quiet: bool = Opt(False, "--quiet", "-q", help="No progress bars or messages on stderr."),
    as_json: bool = Opt(False, "--json", help="Print the check as JSON."),
):
    """Export a model for onnxruntime (no PyTorch needed to run it) and check it against PyTorch; or, with
    --merge, fold a LoRA run's adapters into a plain model folder."""
    setup(quiet or as_json)

    if merge and fmt is not None:
        raise UserError("--merge writes a PyTorch model folder; --format is for ONNX (which folds LoRA adapters by "
                        "itself): drop one or the other.")
    check = api.export(run, out, fmt or "onnx", quantize, merge, check_data, max_check)
    if as_json:
        print(json.dumps({"out": out, "check": check}))
        return
    reference = "the run with adapters" if merge else "PyTorch"
    for precision, c in check.items():
        if "agreement" in c:
            print(f"{precision}: label agreement with {reference} {c['agreement']:.4f} on {c['n']} texts, "
                  f"max probability difference {c['max_probability_difference']:.2e}")
        else:
            print(f"{precision}: max output difference from {reference} {c['max_output_difference']:.2e} "
                  f"on {c['n']} texts")
    print(f"wrote {out}")
