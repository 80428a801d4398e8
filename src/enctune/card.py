"""The model card: the README.md of a model folder, written from the run's settings and metrics.

A Hugging Face user recognises its shape: YAML metadata first (base model, library, pipeline tag,
licence and language when the base encoder's own card gives them, the datasets and the metrics
with the split they come from, in ``model-index`` form), then what the model does, the data and
how it was split, the strategy and why, every setting the run used, the scores (with their spread
when the run was repeated), and its intended use and limitations.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import yaml

from .tasks import TASKS

PIPELINE_TAGS = {"sequence": "text-classification", "token": "token-classification"}
SHOWN_METRICS = 6  # top-level figures per split in the metadata and the table (per-class detail is in metrics.json)


def _figures(scores: dict | None) -> dict[str, float]:
    return {k: v for k, v in (scores or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _spread(metrics: dict, split: str, name: str) -> str:
    spread = (metrics.get("repeats") or {}).get(split, {}).get(name)
    return f" ± {spread['std']:.4f} (mean {spread['mean']:.4f} over {len(spread['values'])} runs)" if spread else ""


def model_card(meta: dict, metrics: dict, config: dict, base: dict) -> str:
    """The card of a model folder: ``meta`` (enctune.json), ``metrics`` (metrics.json), ``config`` (the settings
    the run used), ``base`` (the encoder's name, licence and language: ``encoders.resolve.encoder_identity``)."""
    task = TASKS[meta["task"]].from_config(meta)
    datasets = sorted({Path(f).parent.name if Path(f).stem in ("train", "validation", "test", "dev")
                       else Path(f).stem for f in (metrics.get("data") or {}).get("files", {}).values()})
    dataset = datasets[0] if datasets else "user data"
    header = {"base_model": base["name"], "library_name": "enctune",
              "pipeline_tag": task.pipeline_tag or ("question-answering" if task.label_space == "spans"
                                                     else PIPELINE_TAGS[task.level]),
              **{k: base[k] for k in ("license", "language") if k in base},
              "tags": ["enctune", meta["task"], meta["strategy"]], "datasets": datasets,
              "metrics": list(_figures(metrics.get("test") or metrics.get("validation")))[:SHOWN_METRICS],
              "model-index": [{"name": Path(str(config.get("out", "model"))).name, "results": [
                  {"task": {"type": header_type}, "dataset": {"name": dataset, "type": dataset, "split": split},
                   "metrics": [{"type": k, "value": round(v, 4)} for k, v in list(_figures(metrics[split]).items())
                               [:SHOWN_METRICS]]}
                  for split in ("test", "validation") if metrics.get(split)
                  for header_type in [PIPELINE_TAGS[task.level]]]}]}
    lines = ["---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {Path(str(config.get('out', 'model'))).name}: {meta['task']} with {base['name']}", ""]
    lines += _description(meta, metrics, base, task) + _data(metrics) + _training(meta, metrics, config)
    lines += _scores(metrics, task) + _limits(meta, metrics, config, task) + _usage()
    return "\n".join(lines) + "\n"


def _description(meta, metrics, base, task) -> list[str]:
    labels = meta.get("labels") or []
    costs = metrics.get("costs", {})
    return ["## Model", "",
            f"A `{meta['task']}` model ({task.primary_metric} is its main score) made by enctune from the encoder "
            f"`{base['name']}` ({meta['pooling']} pooling, at most {meta['max_length']} tokens per text), adapted with "
            f"the `{meta['strategy']}` strategy: {metrics.get('strategy_reason', '')}.",
            *([f"Labels ({len(labels)}): {', '.join(str(x) for x in labels[:50])}"
               f"{', ...' if len(labels) > 50 else ''}."] if labels else []),
            *([f"Parameters trained: {costs['trainable_params']:,} of {costs['total_params']:,}."]
              if "trainable_params" in costs and "total_params" in costs else []), ""]


def _data(metrics) -> list[str]:
    data = metrics.get("data") or {}
    sizes = data.get("sizes", {})
    lines = ["## Data", "", "| split | file | examples |", "| --- | --- | --- |"]
    for split in ("train", "validation", "test"):
        if split in sizes:
            source = data.get("files", {}).get(split, "carved from train" if split == "validation" else "")
            if split == "validation" and data.get("validation_carved"):
                source = "carved from train (seeded, stratified)"
            lines.append(f"| {split} | {source} | {sizes[split]:,} |")
    return [*lines, "", f"Task chosen: {metrics.get('task_reason', '')}.", ""]


def _training(meta, metrics, config) -> list[str]:
    shown = {k: v for k, v in config.items() if v is not None and k not in ("data", "validation", "test", "out")}
    lines = ["## Training", "", f"Trained on {datetime.date.today().isoformat()} with enctune "
             f"{meta.get('enctune_version', '')}; {metrics.get('costs', {}).get('wall_seconds', '?')} s wall on "
             f"{metrics.get('costs', {}).get('device', 'cpu')} ({metrics.get('costs', {}).get('precision', '')}).",
             "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {k} | `{v}` |" for k, v in shown.items()]
    return [*lines, ""]


def _scores(metrics, task) -> list[str]:
    lines = ["## Scores", "", "| split | metric | value |", "| --- | --- | --- |"]
    for split in ("validation", "test"):
        for k, v in list(_figures(metrics.get(split)).items())[:SHOWN_METRICS]:
            lines.append(f"| {split} | {k} | {v:.4f}{_spread(metrics, split, k)} |")
    cal = metrics.get("calibration")
    if cal:
        val = cal.get("validation", {})
        verdict = (f"kept: validation ECE {val.get('ece_before', 0):.4f} -> {val.get('ece_after', 0):.4f}"
                   if cal.get("kept") else f"not kept: {cal.get('why_not_kept', 'it did not lower the validation ECE')}")
        lines += ["", f"Calibration: a temperature of {cal['temperature']:.4f} fitted on validation, {verdict}."]
    return [*lines, ""]


def _limits(meta, metrics, config, task) -> list[str]:
    truncated = sum((metrics.get("costs", {}).get("truncated_texts") or {}).values())
    lines = ["## Intended use and limitations", "",
             (f"- Predicts the {task.label_space} it was trained on"
              + (" and no other label: a text of another kind still gets one of them" if task.label_space == "classes"
                 else "") + "." if task.has_head else
              "- Embeds texts so that queries lie near the documents that answer them; it ranks documents, it does "
              "not judge whether any of them answers."),
             f"- Texts longer than {meta['max_length']} tokens are cut ({truncated} in this run's data were).",
             "- Scores come from the splits above; data from another source or domain can score lower.",
             "- The base encoder's own card applies: its language and the data it was pre-trained on shape what this "
             "model understands."]
    if task.calibrates:
        lines.append("- Probabilities are calibrated on validation when the run kept a temperature (see Scores).")
    return [*lines, ""]


def _usage() -> list[str]:
    return ["## Use", "", "```python", "import enctune", 'model = enctune.load("path/to/run")',
            'model.predict(["a text"])', "```", "",
            "Or `enctune predict path/to/run \"a text\"`, or `enctune serve path/to/run` for HTTP."]
