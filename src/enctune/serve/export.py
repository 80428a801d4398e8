"""``enctune export RUN --format onnx --out DIR [--quantize int8]``: a folder onnxruntime runs.

Steps:

1. load the run (or model, or Hugging Face classifier) folder with the PyTorch ``Predictor``;
2. trace encoder + pooling + head into one graph, token ids -> logits, with the batch and
   sequence axes dynamic (TorchScript exporter; attention exported in its eager form so
   that step 3 recognises it);
3. fuse it for onnxruntime where the encoder is BERT-like (embedding + layer norm,
   attention, bias + GELU and residual + layer norm become single kernels); other encoders
   keep the plain graph, which onnxruntime still optimises when it loads it;
4. with ``--quantize int8``, also write a dynamically quantised copy: int8 weights per
   output channel, activations quantised on the fly (``model.int8.onnx``); it runs with
   the fp32 model as a safety net for unsure texts (see ``onnx_predictor``);
5. write the tokenizer, the label map and the settings (``enctune-onnx.json``), and the
   run's metrics, into a temporary folder renamed into place;
6. check: predict the check texts with PyTorch and with every exported model (int8 with
   and without the safety net: ``int8`` and ``int8-raw``), and record label agreement and
   the largest probability difference in ``enctune-onnx.json``.

Check texts: ``check_data`` when given, else the run's validation (or test) file named in
its metrics.json, else a few built-in sentences; at most ``max_check`` of them.

A LoRA run's adapters are folded into the encoder's weights before step 2 (see
``merge_adapters``): the graph is the plain encoder's, with no extra low-rank products.

``enctune export RUN --merge --out DIR`` (``export_merged``) writes instead a plain enctune
model folder whose encoder has the adapters folded in, with no ``adapter/`` folder: it loads
without PEFT's wrapper and predicts faster. It is checked like the ONNX export: the check
texts' outputs from the run and from the written folder, reloaded, are compared.

Raises ``UserError`` for a folder that cannot be exported (a task without an ONNX decoder,
a tokenizer without ``tokenizer.json``, an existing ``--out`` that is not an export, or
``--merge`` of a folder without adapters).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np

from .. import progress
from ..atomic import check_replaceable, staged_folder
from ..data import load_texts
from ..errors import UserError
from ..model_folder import META_FILE, ONNX_MARKER, find_model_folder, write_model_folder
from ..numeric import softmax
from ..strategies import STRATEGIES
from .loading import load

FORMATS = ("onnx",)
QUANTIZE = ("int8",)
OPSET = 17
FALLBACK_TEXTS = [
    "a gorgeous, witty, seductive movie.", "the plot is a mess and the acting is worse.", "ok.",
    "It was fine, I guess, though the second half drags on for far too long.", "Absolutely wonderful!",
    "I want my money back", "An unremarkable film that nobody will remember next year.",
    "The cast is superb and the script sparkles with wit from start to finish, a rare treat.",
]


def _check_texts(run: Path, check_data: str | None, takes_pairs: bool, max_check: int):

    if check_data:
        ex = load_texts(check_data)
        return ex.texts[:max_check], (ex.pairs[:max_check] if ex.pairs is not None else None)
    for f in (run / "metrics.json", run.parent / "metrics.json"):
        if f.is_file():
            try:
                files = json.loads(f.read_text(encoding="utf-8")).get("data", {}).get("files", {})
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                break
            for split in ("validation", "test", "train"):
                path = files.get(split)
                if path and Path(path).is_file():
                    try:
                        ex = load_texts(path)
                    except UserError:
                        continue
                    if (ex.pairs is not None) == takes_pairs:
                        return ex.texts[:max_check], (ex.pairs[:max_check] if ex.pairs is not None else None)
            break
    texts = FALLBACK_TEXTS[:max_check]
    return texts, (texts[::-1] if takes_pairs else None)


def _trace(model, encoder, inputs: list[str], sample: dict, path: Path) -> None:
    import torch

    dims = {name: {0: "batch", 1: "sequence"} for name in inputs}
    dims["logits"] = {0: "batch"}
    model.eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python branches fixed at export
        torch.onnx.export(model, tuple(sample[n] for n in inputs), str(path), input_names=inputs,
                          output_names=["logits"], dynamic_axes=dims, opset_version=OPSET, dynamo=False)


def _fuse(path: Path, config) -> bool:
    """Rewrite ``path`` with onnxruntime's transformer fusions when the encoder is BERT-like."""
    kind = {"bert": "bert", "roberta": "bert", "distilbert": "bert", "xlm-roberta": "bert", "electra": "bert",
            "mpnet": "bert", "albert": "bert"}.get(getattr(config, "model_type", ""))
    if kind is None:
        return False
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    opt = optimize_model(str(path), model_type=kind, num_heads=int(config.num_attention_heads),
                         hidden_size=int(config.hidden_size), opt_level=1)
    fused = opt.get_fused_operator_statistics().get("Attention", 0) > 0
    if fused:
        opt.save_model_to_file(str(path))
    return fused


def _quantize(src: Path, dst: Path) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantiser logs advice on the root logger
    # Per-channel int8 weights keep each output unit's own scale: far closer to fp32 than one scale per matrix.
    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _compare(ref: np.ndarray, logits: np.ndarray) -> dict:
    p, q = softmax(ref.astype(np.float64)), softmax(logits.astype(np.float64))
    return {"n": int(len(ref)), "agreement": float((p.argmax(-1) == q.argmax(-1)).mean()),
            "max_probability_difference": float(np.abs(p - q).max())}


def plain_encoder(predictor) -> bool:
    """The predictor's encoder made a plain network of its architecture, in place, by its run's strategy (a LoRA
    run folds its adapters in: W <- W + (alpha / r) B A); False when there was nothing to fold."""
    strategy = STRATEGIES.get(predictor.meta.get("strategy"))
    return strategy is not None and strategy.plain_encoder(predictor.encoder)


def _check(task, ref, new) -> dict:
    """How far an export's outputs are from the reference's: the largest difference, and for classes the
    label agreement and the largest probability difference."""
    check = {"n": len(ref), "max_output_difference": _max_difference(ref, new)}
    if task.calibrates:
        check.update(_compare(ref, new))
    return check


def _max_difference(ref, new) -> float:
    """Largest absolute difference between two models' outputs: an (N, C) array or one array per input."""
    return max((float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(initial=0.0))
                for a, b in zip(ref, new, strict=True)), default=0.0)


def export_merged(run: str, out: str, check_data: str | None = None, max_check: int = 1000) -> dict:
    """Write the LoRA run ``run`` to ``out`` as a plain model folder, adapters folded in; returns the check
    ({"fp32": {n, max_output_difference[, agreement, max_probability_difference]}})."""
    from .predictor import Predictor  # lazy: torch (~2 s); an ONNX folder is served without it

    folder, out_p = find_model_folder(run), Path(out)
    if out_p.resolve() in (folder.resolve(), Path(run).resolve()):
        raise UserError(f"--out {out}: is the folder being exported; choose another --out.")
    check_replaceable(out_p, META_FILE, "--out", "an enctune model folder",
                      allowed={META_FILE, "head.safetensors", "encoder", "README.md"})
    predictor = Predictor.load(folder, precision="fp32")
    takes_pairs = bool(predictor.meta.get("columns", {}).get("pair"))
    texts, pairs = _check_texts(Path(run), check_data, takes_pairs, max_check)
    ref = predictor.logits(texts, pairs)
    progress.info("export: folding the adapters into the encoder weights")
    if not plain_encoder(predictor):
        raise UserError(f"{run}: has no adapters to merge (strategy '{predictor.meta.get('strategy')}'); "
                        "--merge is for LoRA runs, and this folder is a plain model folder already.")
    meta = {k: v for k, v in predictor.meta.items() if k not in ("format_version", "adapter")}
    meta["adapter_merged"] = True
    card = (folder / "README.md").read_text(encoding="utf-8") if (folder / "README.md").is_file() else ""
    card += "\nThe LoRA adapters are merged into the encoder weights (`enctune export --merge`).\n"
    write_model_folder(out_p, predictor.encoder, predictor.model.head, meta, card, _write_plain)
    progress.info(f"export: checking the merged folder against the run on {len(texts)} texts")
    merged = Predictor.load(out_p, precision="fp32").logits(texts, pairs)
    return {"fp32": _check(predictor.task, ref, merged)}


def _write_plain(encoder, dst: Path) -> dict:
    """A plain (merged) encoder, written whole."""
    encoder.model.save_pretrained(dst, safe_serialization=True)
    return {}


def export_onnx(run: str, out: str, quantize: str | None = None, check_data: str | None = None,
                max_check: int = 1000) -> dict:
    """Export ``run`` to ``out``; returns the check ({precision: {n, agreement, max_probability_difference}})."""
    from .onnx_predictor import REFINE_BELOW, OnnxPredictor  # lazy: onnxruntime (~0.3 s)
    from .predictor import Predictor  # lazy: torch (~2 s)

    if quantize is not None and quantize not in QUANTIZE:
        raise UserError(f"--quantize {quantize}: expected one of {', '.join(QUANTIZE)}.")
    out_p = Path(out)
    check_replaceable(out_p, ONNX_MARKER, "--out", "an enctune ONNX export")
    run_p = Path(run)
    predictor = load(run_p, precision="fp32")
    if not isinstance(predictor, Predictor):
        raise UserError(f"{run}: an ONNX export already; export the run folder it came from.")
    if predictor.meta.get("template") or predictor.encoder.pooling == "mask":
        raise UserError(f"{run}: a cloze zero-shot model (its texts are wrapped in a template and read at the mask) "
                        "cannot be exported to ONNX by this version; serve it with PyTorch.")
    plain_encoder(predictor)  # a LoRA run: trace the plain encoder, W + (alpha / r) B A folded in
    if predictor.task.pair_mode == "bi":
        raise UserError(f"{run}: a model of text pairs encoded apart (pair mode bi) takes two inputs, which this "
                        "version does not export to ONNX; serve it with PyTorch.")
    if predictor.task.level != "sequence":
        raise UserError(f"{run}: the '{predictor.task.name}' task predicts per token, which this version does not "
                        "export to ONNX (sequence-level tasks only); serve it with PyTorch.")
    encoder = predictor.encoder
    if not getattr(encoder.tokenizer, "is_fast", False):
        raise UserError(f"{run}: the tokenizer has no fast (tokenizer.json) form, which the ONNX folder needs.")
    takes_pairs = bool(predictor.meta.get("columns", {}).get("pair"))
    texts, pairs = _check_texts(run_p, check_data, takes_pairs, max_check)
    sample_tokens = encoder.tokenize(texts[:2] if len(texts) > 1 else texts * 2, pairs[:2] if pairs else None)
    sample = encoder.collate(sample_tokens, [0, 1])
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    with staged_folder(out_p) as tmp:
        progress.info("export: tracing the model to ONNX")
        hf_model = encoder.model
        previous = getattr(hf_model.config, "_attn_implementation", None)
        try:
            if hasattr(hf_model, "set_attn_implementation") and previous not in (None, "eager"):
                hf_model.set_attn_implementation("eager")  # the form onnxruntime's attention fusion recognises
        except (ValueError, AttributeError):
            pass
        try:
            _trace(predictor.model, encoder, inputs, sample, tmp / "model.onnx")
        finally:
            if previous and getattr(hf_model.config, "_attn_implementation", None) != previous:
                try:
                    hf_model.set_attn_implementation(previous)
                except (ValueError, AttributeError):
                    pass
        fused = _fuse(tmp / "model.onnx", hf_model.config)
        files = {"fp32": "model.onnx"}
        if quantize == "int8":
            progress.info("export: quantising weights to int8")
            _quantize(tmp / "model.onnx", tmp / "model.int8.onnx")
            files["int8"] = "model.int8.onnx"
        encoder.tokenizer.save_pretrained(tmp)
        if not (tmp / "tokenizer.json").is_file():
            raise UserError(f"{run}: the tokenizer did not write tokenizer.json; it cannot be exported.")
        meta = predictor.meta
        settings = {
            "format_version": 1, "format": "onnx",
            **predictor.task.config(),  # task, labels, label type, pair mode, task options: decoding needs them
            "columns": meta.get("columns", {}), "base_model": meta.get("base_model"),
            "pooling": meta.get("pooling"), "strategy": meta.get("strategy"),
            "max_length": encoder.max_length, "pad_token_id": encoder.tokenizer.pad_token_id,
            "padding_side": encoder.tokenizer.padding_side, "inputs": inputs, "opset": OPSET,
            "fused": fused, "model_files": files, "default_precision": "int8" if quantize else "fp32",
            "refine_below": REFINE_BELOW if quantize else 0.0,
            "temperature": meta.get("temperature"),  # calibration: logits / T, as the PyTorch predictor does
        }
        (tmp / ONNX_MARKER).write_text(json.dumps(settings, indent=2) + "\n")
        for f in (run_p / "metrics.json", run_p.parent / "metrics.json"):
            if f.is_file():
                shutil.copyfile(f, tmp / "metrics.json")
                break

        progress.info(f"export: checking against PyTorch on {len(texts)} texts")
        ref = predictor.logits(texts, pairs)
        check = {}
        for precision in list(files) + (["int8-raw"] if "int8" in files else []):
            onnx_logits = OnnxPredictor.load(tmp, precision=precision).logits(texts, pairs)
            check[precision] = _check(predictor.task, ref, onnx_logits)
        settings["check"] = check
        (tmp / ONNX_MARKER).write_text(json.dumps(settings, indent=2) + "\n")
    return check
