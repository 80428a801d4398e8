"""Continued pre-training on a domain's raw text (``enctune pretrain``): an encoder folder any command takes as
``--model``.

Two objectives; ``auto`` picks by what the encoder is for, and the run says why:

- ``mlm``, masked language modelling, for an encoder whose token states are the product (a BERT-like
  checkpoint): whole words are masked (every sub-word of a chosen word), each with probability
  ``mask_probability`` (15%), and of the chosen tokens 80% become the mask token, 10% a random token, 10% stay;
  the masks are drawn again every time a text is seen (dynamic masking). The loss is the cross-entropy of the
  original tokens at the chosen positions, whose output layer alone is computed (for a 384-wide encoder with a
  30,522-word vocabulary the output layer costs as much per token as the six blocks below it). A checkpoint
  without its MLM head (a sentence-transformers folder) gets a new one, its output tied to the word embeddings,
  and the run says so.
- ``tsdae``, a denoising auto-encoder, for a sentence encoder (the folder names a pooling: its pooled vector is
  the product): about 60% of each text's tokens are deleted, the encoder pools what is left into one vector,
  and a decoder (the encoder's own architecture and weights as a causal decoder, with cross-attention to that
  one vector) must rebuild the whole text. Only the vector carries the text to the decoder, so the encoder
  learns to put the domain's content into it. The decoder is dropped afterwards.

A causal (GPT-like) model is refused: neither objective fits it. Texts come from any reader (.txt one per line,
or a table's text column). What the objective adds (the MLM head's layers, the decoder) trains alone first, the
encoder frozen, for ``WARMUP_EPOCHS`` at ten times the rate: their random first gradients would otherwise reach
the encoder. 5% of the texts (at most ``HELD_OUT_MAX``) are held out, and the loop keeps the weights
of the lowest held-out loss, with the same masks (or deletions) every time. Training is the one loop
(``training.loop``): warm-up, decay, clipping, progress, ``--budget``, checkpoints (``--checkpoint-every``,
``--resume``).

The output folder holds ``model/encoder/`` (the encoder, its tokenizer and the source's pooling files) and
``pretrain.json`` (objective and why, held-out loss before and after, the loop's history, seconds).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import progress
from .config import budget_seconds
from .data import read_inputs
from .encoders.encoder import Encoder, hf_quiet
from .encoders.resolve import is_causal, resolve_encoder
from .errors import UserError
from .precision import resolve_precision
from .run_folder import check_out, mark_started, write_run
from .training.batching import LengthBucketSampler
from .training.checkpoint import Checkpointer
from .training.loop import LoopConfig, fit
from .training.seed import seed_all

OBJECTIVES = ("auto", "mlm", "tsdae")
MASK_PROBABILITY = 0.15
DELETE_PROBABILITY = 0.6  # the TSDAE paper's best deletion ratio
HELD_OUT_SHARE, HELD_OUT_MAX = 0.05, 1000
DEFAULTS = {"mlm": {"epochs": 3, "lr": 5e-5, "batch_size": 32}, "tsdae": {"epochs": 3, "lr": 3e-5, "batch_size": 16}}
# epochs, at WARMUP_LR_SCALE times the rate, that train only what the objective adds (MLM head, decoder) before the
# encoder moves. Without them, TSDAE and MLM on financial_phrasebank's 2,150 texts (default encoder, 3 epochs) took
# full fine-tuning on 32 examples a class from 0.8265 test accuracy to 0.747 and 0.732 (seed 0)
WARMUP_EPOCHS, WARMUP_LR_SCALE = 1, 10
SENTENCE_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")


def choose_objective(source: str, config, wanted: str) -> tuple[str, str]:
    """(objective, why). Raises UserError for a causal model, or an objective that is not one of OBJECTIVES."""
    if wanted not in OBJECTIVES:
        raise UserError(f"--objective '{wanted}': expected one of {', '.join(OBJECTIVES)}.")
    if is_causal(config):
        raise UserError(f"{source}: a causal (left-to-right) model; continued pre-training here is masked language "
                        "modelling or a denoising auto-encoder, both for bidirectional encoders.")
    if wanted != "auto":
        return wanted, "chosen with --objective"
    folder = Path(source)
    if folder.is_dir() and (any((folder / f).is_file() for f in SENTENCE_FILES) or any(folder.glob("*_Pooling"))):
        return "tsdae", ("a sentence encoder (its folder names a pooling): its pooled vector is the product, and a "
                         "denoising auto-encoder trains that vector")
    return "mlm", "an encoder whose token states are the product: masked language modelling trains them"


# ---- masking and deletion -----------------------------------------------------------------------------
def whole_word_mask(ids: list[int], words: list[int | None], probability: float, rng: np.random.Generator,
                    mask_id: int, vocab_size: int, special: set[int]) -> tuple[list[int], list[int]]:
    """(masked ids, labels) of one text: every token of each chosen word (probability ``probability``, at least
    one word) is a target (its label the original id, -100 elsewhere); targets become ``mask_id`` (80%), a random
    id (10%) or stay (10%). ``words[i]`` is token i's word (None for special tokens)."""
    word_list = sorted({w for w, t in zip(words, ids, strict=True) if w is not None and t not in special})
    out, labels = list(ids), [-100] * len(ids)
    if not word_list:
        return out, labels
    chosen = {w for w in word_list if rng.random() < probability} or {word_list[int(rng.integers(len(word_list)))]}
    for i, (w, t) in enumerate(zip(words, ids, strict=True)):
        if w in chosen and t not in special:
            labels[i] = t
            r = rng.random()
            out[i] = mask_id if r < 0.8 else int(rng.integers(vocab_size)) if r < 0.9 else t
    return out, labels


def delete_noise(ids: list[int], probability: float, rng: np.random.Generator, special: set[int]) -> list[int]:
    """One text's ids with each ordinary token deleted with ``probability`` (special tokens kept, and at least
    one ordinary token)."""
    body = [i for i, t in enumerate(ids) if t not in special]
    if not body:
        return list(ids)
    keep = {i for i in body if rng.random() >= probability} or {body[int(rng.integers(len(body)))]}
    return [t for i, t in enumerate(ids) if t in special or i in keep]


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out


# ---- the two networks ---------------------------------------------------------------------------------
class MaskedLM(nn.Module):
    """A masked language model whose output layer runs only at the targets: ``mlm_mask`` (B, T) -> logits
    (M, V) for its M true positions, in row-major order."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.head = next((getattr(model, n) for n in ("cls", "lm_head") if isinstance(getattr(model, n, None),
                                                                                       nn.Module)), None)

    def forward(self, input_ids, attention_mask, mlm_mask, token_type_ids=None):
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        if self.head is None:  # an architecture whose head is not one module: every position's logits
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits[mlm_mask]
        h = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return self.head(h[mlm_mask])


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the (M, V) logits against the M targets of ``labels`` (B, T) (-100 elsewhere)."""
    return nn.functional.cross_entropy(logits, labels[labels != -100])


class DenoisingAutoEncoder(nn.Module):
    """The encoder's pooled vector of the damaged text (B, H) is the decoder's only memory; the decoder reads
    the whole text (B, T) and predicts each next token: logits (B, T, V)."""

    def __init__(self, encoder: Encoder, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, input_ids, attention_mask, target_ids, target_mask, token_type_ids=None):
        v = self.encoder(input_ids, attention_mask, token_type_ids)[:, None]  # (B, 1, H)
        memory_mask = torch.ones(v.shape[:2], dtype=attention_mask.dtype, device=v.device)
        return self.decoder(input_ids=target_ids, attention_mask=target_mask, encoder_hidden_states=v,
                            encoder_attention_mask=memory_mask).logits


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each position's prediction of the next token (``labels`` (B, T), -100 at padding)."""
    return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))


# ---- the run --------------------------------------------------------------------------------------------
def pretrain(model: str, data: str, out: str, objective: str = "auto", text_column: str | None = None,
             epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
             max_length: int | None = None, mask_probability: float = MASK_PROBABILITY, seed: int = 42,
             precision: str = "auto", budget: str | None = None, overwrite: bool = False,
             checkpoint_every: int | None = None, resume: bool = False,
             warmup_epochs: int = WARMUP_EPOCHS) -> tuple[Path, dict]:
    """Continue pre-training ``model`` on the texts of ``data`` and write the encoder folder ``out``; returns (the
    folder, its report). See the module docstring.

    Raises:
        UserError: a causal model, an unknown objective, too few texts, a probability outside (0, 1), an ``out``
            that may not be written, and every mistake reading the data or the model.
    """
    t_start = time.perf_counter()
    if not 0 < mask_probability < 1:
        raise UserError(f"--mask-probability {mask_probability}: expected a number between 0 and 1.")
    check_out(out, overwrite=overwrite, resume=resume)
    seed_all(seed)
    texts = [t for t in read_inputs(data, text_column)[0].texts if t.strip()]
    if len(texts) < 20:
        raise UserError(f"{data}: {len(texts)} non-empty texts; continued pre-training needs at least 20.")
    encoder = Encoder.load(model, max_length=max_length, lazy=True)  # the network only for tsdae
    source = resolve_encoder(model)
    chosen, reason = choose_objective(source, encoder.config, objective)
    progress.info(f"objective {chosen}: {reason}")
    d = DEFAULTS[chosen]
    epochs, lr, batch_size = epochs or d["epochs"], lr or d["lr"], batch_size or d["batch_size"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    run_precision = resolve_precision(precision, device)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    n_held = min(HELD_OUT_MAX, max(1, int(len(texts) * HELD_OUT_SHARE)))
    held, train = [texts[i] for i in order[:n_held]], [texts[i] for i in order[n_held:]]
    tok = encoder.tokenizer
    special = set(tok.all_special_ids)
    if chosen == "mlm":
        network, note, collate, loss_fn = _mlm_setup(source, tok, encoder, mask_probability, special, seed)
    else:
        network, note, collate, loss_fn = _tsdae_setup(source, tok, encoder, special, seed)
    if note:
        progress.info(note)
    enc_train, enc_held = _tokenize(tok, train, encoder.max_length), _tokenize(tok, held, encoder.max_length)
    fixed = collate(enc_held, range(len(held)), np.random.default_rng(seed + 1))  # the same targets every time

    def evaluate(m):
        losses = []
        for start in range(0, len(held), 64):
            part = {k: v[start:start + 64] for k, v in fixed.items()}
            part = _trimmed(part)
            labels = part.pop("labels")
            losses.append(float(loss_fn(m(**part).float(), labels)) * len(labels))
        loss = sum(losses) / len(held)
        return -loss, {"held_out_loss": round(loss, 5)}

    draws = np.random.default_rng(seed + 2)  # dynamic masking: new targets every time a text is seen
    lengths = np.array([len(ids) for ids in enc_train["ids"]])
    loader = DataLoader(range(len(train)), batch_sampler=LengthBucketSampler(lengths, batch_size, seed),
                        collate_fn=lambda idx: collate(enc_train, idx, draws))
    network.train()
    with torch.no_grad():
        before = -evaluate(network.eval())[0]
    network.train()
    deadline = time.monotonic() + budget_seconds(budget) if budget else None
    backbone = network.model.base_model if chosen == "mlm" else encoder.model
    warm = None
    if warmup_epochs and not resume:
        # the new parts first (the MLM head's transform, the decoder), the encoder frozen: their random first
        # gradients would otherwise reach the encoder's weights, which the run exists to keep and adapt
        backbone.requires_grad_(False)
        warm = fit(network, loader, loss_fn, evaluate,
                   LoopConfig(epochs=warmup_epochs, lr=lr * WARMUP_LR_SCALE, precision=run_precision, seed=seed,
                              description=f"pre-train ({chosen}): new layers first", deadline=deadline,
                              keep_best=False, early_stopping=False))
        backbone.requires_grad_(True)
    checkpoints = None
    if checkpoint_every or resume:  # the weights, optimizer and position; the masks after a resume are new draws
        mark_started(Path(out))
        checkpoints = Checkpointer(Path(out) / "checkpoints", checkpoint_every, resume, {
            "model": source, "data": str(Path(data).resolve()), "objective": chosen, "epochs": epochs, "lr": lr,
            "batch_size": batch_size, "max_length": encoder.max_length, "mask_probability": mask_probability,
            "seed": seed, "precision": run_precision})
    loop = fit(network, loader, loss_fn, evaluate,
               LoopConfig(epochs=epochs, lr=lr, precision=run_precision, seed=seed, evals_per_epoch=2,
                          description=f"pre-train ({chosen})", deadline=deadline, patience=4),
               checkpoints=checkpoints)
    after = -loop.best_score
    report = {"objective": chosen, "reason": reason, "model": model, "source": source, "data": str(data),
              "texts": len(train), "held_out": len(held), "held_out_loss": {"before": round(before, 5),
                                                                            "after": round(after, 5)},
              "epochs": epochs, "epochs_run": loop.epochs_run, "lr": lr, "batch_size": batch_size,
              "mask_probability": mask_probability if chosen == "mlm" else None,
              "delete_probability": DELETE_PROBABILITY if chosen == "tsdae" else None,
              "max_length": encoder.max_length, "steps": loop.steps, "seconds": round(time.perf_counter() -
                                                                                     t_start, 1),
              "train_seconds": round(loop.seconds, 1), "precision": run_precision, "note": note,
              "history": loop.history, "seed": seed,
              "warmup": {"epochs": warmup_epochs, "lr": lr * WARMUP_LR_SCALE, "held_out_loss": round(
                  -warm.history[-1]["score"], 5)} if warm is not None and warm.history else None}

    def write_encoder(folder: Path) -> None:
        dst = folder / "encoder"
        with hf_quiet():
            backbone.save_pretrained(dst, safe_serialization=True)
            tok.save_pretrained(dst)
        _copy_pooling_files(Path(source), dst)

    write_run(Path(out), write_encoder, {"pretrain.json": json.dumps(report, indent=2) + "\n"})
    progress.info(f"held-out loss {before:.4f} -> {after:.4f}; wrote {out} (use it with --model {out})")
    return Path(out), report


def _tokenize(tok, texts: list[str], max_length: int) -> dict:
    """Token ids and each token's word (None for special tokens; each token its own word where the tokenizer
    cannot say)."""
    enc = tok(texts, truncation=True, max_length=max_length)
    ids = enc["input_ids"]
    try:
        words = [enc.word_ids(i) for i in range(len(texts))]
    except (ValueError, AttributeError):  # a slow tokenizer: token-level masking
        words = [list(range(len(r))) for r in ids]
    return {"ids": ids, "words": words, "types": enc.get("token_type_ids")}


def _trimmed(batch: dict) -> dict:
    """A slice of a padded batch without the columns none of its rows uses (padding is on the right)."""
    out = dict(batch)
    groups = (("attention_mask", ("input_ids", "attention_mask", "token_type_ids", "mlm_mask")
               + (("labels",) if "mlm_mask" in batch else ())),
              ("target_mask", ("target_ids", "target_mask", "labels")))
    for mask_key, keys in groups:
        if mask_key in batch:
            used = batch[mask_key].any(0)
            for k in keys:
                if k in out:
                    out[k] = out[k][:, used]
    return out


def _mlm_setup(source: str, tok, encoder: Encoder, probability: float, special: set[int], seed: int):
    from transformers import AutoModelForMaskedLM

    if tok.mask_token_id is None:
        raise UserError(f"{source}: the tokenizer has no mask token, which masked language modelling needs; use "
                        "--objective tsdae.")
    with hf_quiet(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True, use_safetensors=True)
    body = {k for k in lm.base_model.state_dict()}
    new = [k for k in info.get("missing_keys", []) if k.split(".", 1)[-1] not in body and k not in body]
    note = None
    if new:
        tied = lm.get_output_embeddings() is not None and \
            lm.get_output_embeddings().weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()
        note = (f"{source} has no masked-language-model head: a new one is trained"
                + (", its output layer tied to the word embeddings" if tied else ""))
    mask_id, vocab = tok.mask_token_id, len(tok)

    def collate(enc: dict, idx, rng: np.random.Generator) -> dict:
        rows = [whole_word_mask(enc["ids"][i], enc["words"][i], probability, rng, mask_id, vocab, special)
                for i in idx]
        ids, labels = pad([r[0] for r in rows], tok.pad_token_id), pad([r[1] for r in rows], -100)
        batch = {"input_ids": ids, "attention_mask": pad([[1] * len(r[0]) for r in rows], 0),
                 "mlm_mask": labels != -100, "labels": labels}
        if enc["types"] is not None and "token_type_ids" in tok.model_input_names:
            batch["token_type_ids"] = pad([enc["types"][i] for i in idx], 0)
        return batch

    return MaskedLM(lm), note, collate, mlm_loss


def _tsdae_setup(source: str, tok, encoder: Encoder, special: set[int], seed: int):
    from transformers import AutoModelForCausalLM

    try:
        with hf_quiet(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            decoder = AutoModelForCausalLM.from_pretrained(source, is_decoder=True, add_cross_attention=True,
                                                           use_safetensors=True)
    except (ValueError, KeyError) as e:  # no causal-LM class with cross-attention for this architecture
        raise UserError(f"{source}: no decoder of this architecture for a denoising auto-encoder ({e}); use "
                        "--objective mlm.") from None
    encoder.model.requires_grad_(True)

    def collate(enc: dict, idx, rng: np.random.Generator) -> dict:
        full = [enc["ids"][i] for i in idx]
        damaged = [delete_noise(r, DELETE_PROBABILITY, rng, special) for r in full]
        target = pad(full, tok.pad_token_id)
        target_mask = pad([[1] * len(r) for r in full], 0)
        return {"input_ids": pad(damaged, tok.pad_token_id), "attention_mask": pad([[1] * len(r) for r in damaged],
                                                                                   0),
                "target_ids": target, "target_mask": target_mask, "labels": target.masked_fill(target_mask == 0,
                                                                                                -100)}

    note = f"decoder: {type(decoder).__name__} from {source}'s weights, with new cross-attention; dropped afterwards"
    return DenoisingAutoEncoder(encoder, decoder), note, collate, next_token_loss


def _copy_pooling_files(source: Path, dst: Path) -> None:
    """The source's sentence-transformers files (pooling, normalisation, module list), so that the new folder
    pools as the source did."""
    if not source.is_dir():
        return
    for name in SENTENCE_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, dst / name)
    for folder in [*source.glob("*_Pooling"), *source.glob("*_Normalize")]:
        if folder.is_dir():
            shutil.copytree(folder, dst / folder.name, dirs_exist_ok=True)
