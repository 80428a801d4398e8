"""``zeroshot``: classification from textual instructions; nothing trains.

Two modes (``--zeroshot-mode``; ``auto`` means ``similarity``):

``similarity``: every label is described in words (``--labels "positive: a happy customer|loved
it;negative: ..."``, a label without a description by its own name), each phrasing wrapped by
``--template`` (``"This review is {}."``: the template wraps the *descriptions*). The head is the
cosine head with its class vectors set to the descriptions' embeddings e_c (``labels.py``):

    z_c = s * cos(Enc(x), e_c),   s = 20 (the default scale; calibration fits a temperature later)

which is what a sentence encoder trained with a cosine objective (the default encoder) ranks.

``cloze``: for encoders whose checkpoint kept its masked-LM head. Each *text* is wrapped in a
cloze template (``--template``, default ``"{} It was [MASK]."``: here it wraps the text, holds
``{}`` once and the mask once, written ``[MASK]`` or as the tokenizer's own mask token), and a
label scores the MLM logit of its verbaliser word at the mask:

    z_c = mean_{w in V_c} logit_MLM(template(x))[mask, first sub-token of w]

``--labels`` then names verbalisers, ``"positive: great;negative: terrible"`` (several with ``|``,
their logits averaged; default: the label's name). This reuses what pre-training taught the
MLM head, so it needs no sentence-embedding training. The run's encoder gets ``mask`` pooling
(the hidden state at the mask token) and the template, both written to the model folder so
prediction wraps texts the same way; the head is ``tasks.base.ClozeHead``, the MLM head's
transform (dense, activation, layer norm) and the verbalisers' decoder rows and biases, copied
from ``AutoModelForMaskedLM`` (safetensors only; loaded for the copy, then dropped) and checked
against that model's own logits on a few texts.

Both modes compute validation and test features once (cached on disk, as ``probe`` does) and
hand them to evaluation; the run's history holds one entry (the validation score) and its
costs 0 trainable parameters. The model folder is an ordinary one: predict, evaluate, serve.

Errors (``UserError``): a task other than ``classify``; text pairs encoded apart; in cloze mode,
a tokenizer without a mask token, a template without exactly one mask, ``--layer`` other than
the last, a checkpoint without (trained) MLM head weights, an MLM head of another shape, a
verbaliser whose first sub-token is the unknown token.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field

from .. import progress
from ..errors import UserError
from ..tasks.classify import CLOZE_ACTIVATIONS
from .base import (
    START_SECONDS,
    CostFacts,
    Estimate,
    RunContext,
    Strategy,
    StrategyOptions,
    StrategyResult,
    one_input_classes,
)
from .labels import has_descriptions, init_head_from_labels, label_embeddings, label_phrases
from .probe import pooled_features
from .registry import register

CLOZE_TEMPLATE = "{} It was [MASK]."
MASK_SPELLING = "[MASK]"  # how a template writes the mask whatever the tokenizer calls it
CHECK_TEXTS = 8  # validation texts on which the copied cloze head must match the MLM model's logits


class ZeroshotOptions(StrategyOptions):
    zeroshot_mode: Literal["auto", "similarity", "cloze"] = Field(
        "auto", description="zeroshot: similarity (to label descriptions), cloze (masked-LM encoders) or auto")


@register
class ZeroshotStrategy(Strategy):
    name = "zeroshot"
    summary = "nothing: each text is scored by its similarity to each label's description (--labels, --template)"
    Options = ZeroshotOptions
    epochs = 0
    lr = 0.0
    batch_size = 256
    ladder_rank = 10
    frozen_features = True
    trains = False

    @classmethod
    def applies(cls, task, cfg, smallest_class):
        if not task.zero_shot:
            return f"--strategy zeroshot classifies from label descriptions; the '{task.name}' task cannot."
        why = one_input_classes(task, "zeroshot", "classifies from label descriptions")
        if why is None and not has_descriptions(task, cfg.labels):
            why = (f"--strategy zeroshot: the labels ({', '.join(task.labels[:5])}) say nothing in words; describe "
                   "them with --labels \"name: a phrase;name2: another\".")
        return why

    def resolved(self, cfg, task, n_train):
        return {"zeroshot_mode": "cloze" if cfg.zeroshot_mode == "cloze" else "similarity"}  # nothing trains

    @classmethod
    def estimate(cls, facts: CostFacts) -> Estimate:
        return Estimate(cls.name, facts.forward_seconds() + START_SECONDS, facts.weights_mb + 200, 0)

    def run(self, ctx: RunContext) -> StrategyResult:
        from ..model import head_logits  # lazy: torch (~2 s)
        from ..training.loop import LoopResult  # lazy: torch (~2 s)

        cfg, task = ctx.cfg, ctx.task
        t0 = time.perf_counter()
        why = self.applies(task, cfg, None)
        if why:
            raise UserError(why)
        mode = "cloze" if cfg.zeroshot_mode == "cloze" else "similarity"
        if mode == "cloze":
            encoder, head = cloze_model(ctx)
            named = {"validation": ctx.splits.validation, "test": ctx.splits.test}
            tokens = {k: task.prepare(encoder, ex).tokens for k, ex in named.items() if ex is not None}
        else:
            encoder, head = ctx.encoder, similarity_head(ctx)
            named = {"validation": ctx.splits.validation, "test": ctx.splits.test}
            tokens = ctx.tokens
        features, hits, tokens_encoded = pooled_features(encoder, named, tokens, ctx.precision)
        score = ctx.score(head_logits(head, features["validation"]))
        seconds = time.perf_counter() - t0
        loop = LoopResult(history=[{"step": 0, "epoch": 0.0, "lr": 0.0, "score": score, task.primary_metric: score,
                                    "train_loss": None}],
                          best_score=score, seconds=seconds, eval_seconds=seconds)
        total = sum(p.numel() for p in encoder.parameters()) + sum(p.numel() for p in head.parameters())
        costs = {"trainable_params": 0, "total_params": total, "cache_hits": hits, "encode_tokens": tokens_encoded,
                 "zeroshot_mode": mode}
        return StrategyResult(head=head, loop=loop, encoder_trained=False, features=features, costs=costs,
                              encoder=encoder if encoder is not ctx.encoder else None)


def similarity_head(ctx: RunContext):
    """The cosine head with the label descriptions' embeddings as class vectors, whatever --init-head says."""
    ctx.task.options["head"] = "cosine"
    head = ctx.task.build_head(ctx.encoder.hidden_size, ctx.cfg.dropout)
    init_head_from_labels(head, label_embeddings(ctx.encoder, ctx.task, ctx.cfg.labels, ctx.cfg.template,
                                                 ctx.precision))
    return head


# ---- cloze ------------------------------------------------------------------------------------
def cloze_template(template: str | None, tokenizer, source: str) -> str:
    """The text template with the tokenizer's own mask token; UserError unless {} and the mask appear once."""
    mask = tokenizer.mask_token
    if mask is None:
        raise UserError(f"{source}: --zeroshot-mode cloze needs a tokenizer with a mask token, and this one has "
                        "none (a causal model?). Use --zeroshot-mode similarity.")
    tpl = (template or CLOZE_TEMPLATE).replace(MASK_SPELLING, mask)
    if tpl.count("{}") != 1 or tpl.count(mask) != 1:
        raise UserError(f"--template {template!r}: in cloze mode the template wraps each text: it must hold '{{}}' "
                        f"(the text) once and the mask '{MASK_SPELLING}' once, e.g. {CLOZE_TEMPLATE!r}.")
    return tpl


def verbaliser_ids(tokenizer, task, spec: str | None, template: str, source: str) -> list[list[int]]:
    """Per label, the token id of each verbaliser word's first sub-token, tokenized as it would follow the
    template's text before the mask (so a byte-level BPE sees the word with its leading space)."""
    before = template.split(tokenizer.mask_token)[0].replace("{}", "")
    stem = before.rstrip()
    space = before[len(stem):]
    base = tokenizer(stem, add_special_tokens=False)["input_ids"] if stem else []
    out, split_words = [], []
    for label, words in zip(task.labels, label_phrases(task, spec), strict=True):
        ids = []
        for word in words:
            full = tokenizer(stem + space + word, add_special_tokens=False)["input_ids"]
            sub = full[len(base):] if full[:len(base)] == base else tokenizer(word, add_special_tokens=False)["input_ids"]
            if not sub or sub[0] == tokenizer.unk_token_id:
                raise UserError(f"--labels: verbaliser '{word}' of label '{label}' is not in the vocabulary of "
                                f"{source} (it becomes the unknown token); choose a word the tokenizer knows.")
            if len(sub) > 1:
                split_words.append(word)
            ids.append(sub[0])
        out.append(ids)
    if split_words:
        progress.info(f"cloze: verbalisers of several sub-tokens scored by their first: {', '.join(split_words)}")
    return out


def _load_mlm(encoder, trust_remote_code: bool):
    from transformers import AutoModelForMaskedLM

    from ..encoders.encoder import hf_quiet  # lazy: torch (~2 s)

    try:
        with hf_quiet():
            mlm, info = AutoModelForMaskedLM.from_pretrained(encoder.source, use_safetensors=True,
                                                             output_loading_info=True,
                                                             trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"{encoder.source}: --zeroshot-mode cloze needs the checkpoint's masked-LM head, and it "
                        f"does not load ({e}). Use --zeroshot-mode similarity.") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise UserError(f"{encoder.source}: the checkpoint has no trained masked-LM head (missing "
                        f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); --zeroshot-mode cloze needs "
                        "one. Use --zeroshot-mode similarity.")
    return mlm.float().eval()


def _mlm_parts(mlm, hidden: int):
    """(dense, layer norm, decoder weight (V, H), decoder bias (V,)) of the MLM head: the modules outside the
    base model. UserError when the head is not dense -> activation -> layer norm -> decoder."""
    import torch

    prefix = mlm.base_model_prefix
    decoder = mlm.get_output_embeddings()
    head = [m for n, m in mlm.named_modules() if n and n != prefix and not n.startswith(prefix + ".")]
    dense = [m for m in head if isinstance(m, torch.nn.Linear) and m is not decoder
             and (m.in_features, m.out_features) == (hidden, hidden)]
    norms = [m for m in head if isinstance(m, torch.nn.LayerNorm) and tuple(m.normalized_shape) == (hidden,)]
    if not isinstance(decoder, torch.nn.Linear) or len(dense) != 1 or len(norms) != 1:
        raise UserError(f"{type(mlm).__name__}: its masked-LM head is not the dense -> activation -> layer norm -> "
                        "decoder shape the cloze head copies. Use --zeroshot-mode similarity.")
    weight = decoder.weight.detach()
    bias = decoder.bias
    if bias is None:  # a bias kept beside the decoder (one value per vocabulary entry)
        bias = next((p for m in head for n, p in m.named_parameters(recurse=False)
                     if n == "bias" and p.shape == (weight.shape[0],)), None)
    bias = bias.detach() if bias is not None else torch.zeros(weight.shape[0])
    return dense[0], norms[0], weight, bias


def cloze_model(ctx: RunContext) -> tuple:
    """A copy of the run's encoder with ``mask`` pooling and the cloze template, and the ClozeHead over it,
    its weights copied from the checkpoint's MLM head (see the module docstring)."""
    import torch

    from ..encoders.encoder import Encoder  # lazy: torch (~2 s)
    from ..model import head_logits  # lazy: torch (~2 s)

    base, task, cfg = ctx.encoder, ctx.task, ctx.cfg
    if base.layer not in (-1, base.num_layers):
        raise UserError(f"--layer {base.layer}: the masked-LM head reads the last layer; drop --layer for "
                        "--zeroshot-mode cloze.")
    tpl = cloze_template(cfg.template, base.tokenizer, base.source)
    ids = verbaliser_ids(base.tokenizer, task, cfg.labels, tpl, base.source)
    encoder = Encoder(base.model, base.tokenizer, "mask", base.source, base.max_length, base.layer, template=tpl)
    mlm = _load_mlm(base, cfg.trust_remote_code)
    dense, norm, weight, bias = _mlm_parts(mlm, encoder.hidden_size)
    rows = torch.stack([weight[i].float().mean(0) for i in ids])  # (C, H)
    row_bias = torch.stack([bias[i].float().mean() for i in ids])  # (C,)

    # the MLM model's own scores on a few texts: the copied head must reproduce them
    texts = ctx.splits.validation.texts[:CHECK_TEXTS]
    pairs = ctx.splits.validation.pairs[:CHECK_TEXTS] if ctx.splits.validation.pairs is not None else None
    tokens = encoder.tokenize(texts, pairs)
    batch = encoder.collate(tokens, list(range(len(tokens))))
    with torch.inference_mode():
        logits = mlm(**batch).logits  # (B, T, V)
        at_mask = logits[torch.arange(len(tokens)), batch["input_ids"].eq(base.tokenizer.mask_token_id).long().argmax(1)]
        want = torch.stack([at_mask[:, i].mean(1) for i in ids], 1).numpy()  # (B, C)
    h = encoder.encode(tokens)[(encoder.layer, "mask")]
    names = [getattr(mlm.config, k, None) for k in ("hidden_act", "activation", "classifier_activation")]
    candidates = list(dict.fromkeys([n for n in names if isinstance(n, str)] + list(CLOZE_ACTIVATIONS)))
    best = None
    for act in (a for a in candidates if a in CLOZE_ACTIVATIONS):
        task.options.update(head="cloze", cloze={"activation": act, "eps": float(norm.eps)})
        head = task.build_head(encoder.hidden_size, cfg.dropout)
        with torch.no_grad():
            head.dense.weight.copy_(dense.weight)
            head.dense.bias.copy_(dense.bias if dense.bias is not None else torch.zeros(encoder.hidden_size))
            head.norm.weight.copy_(norm.weight if norm.weight is not None else torch.ones(encoder.hidden_size))
            head.norm.bias.copy_(norm.bias if norm.bias is not None else torch.zeros(encoder.hidden_size))
            head.decoder.weight.copy_(rows)
            head.decoder.bias.copy_(row_bias)
        err = float(np.abs(head_logits(head, h) - want).max())
        if best is None or err < best[0]:
            best = (err, act, head)
    del mlm
    err, act, head = best
    if err > 1e-3 * (1.0 + float(np.abs(want).max())):
        raise UserError(f"{base.source}: the cloze head copied from the masked-LM head does not reproduce its scores "
                        f"(largest difference {err:.3g}); this MLM head has a shape enctune does not copy. Use "
                        "--zeroshot-mode similarity.")
    task.options.update(head="cloze", cloze={"activation": act, "eps": float(norm.eps)})
    progress.info(f"cloze: template {tpl!r}, {sum(len(x) for x in ids)} verbaliser token(s), MLM head copied "
                  f"({act}; largest difference from the MLM model {err:.2g})")
    return encoder, head
