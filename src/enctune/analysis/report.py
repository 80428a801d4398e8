"""``report.html``: one self-contained page per run, and a side-by-side page for several runs.

Every run writes ``report.html`` next to ``metrics.json``; ``enctune report RUN [RUN...]``
renders it again (one run) or compares runs side by side. The page holds everything
inline (figures as SVG, no scripts, no external files), so it can be mailed or
archived as it is. Its content comes from the run folder alone: ``metrics.json`` (scores,
history, calibration, costs, cross-validation, layer choice), ``config.json`` and
``mistakes.jsonl`` (the test examples the model got wrong with the highest confidence).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..numeric import softmax
from . import plots

N_MISTAKES = 20
SCALARS = ("accuracy", "macro_f1")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd;
padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#666}.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}figure{margin:0}svg{max-width:100%;height:auto}
"""


# ---- what a run hands the report ------------------------------------------------------------
def confident_mistakes(named: dict, split_logits: dict, targets: dict, task, temperature: float | None,
                       k: int = N_MISTAKES) -> list[dict]:
    """The ``k`` wrong predictions with the highest (calibrated) confidence, on test (else validation), for a
    task with one class per example."""
    if task.label_space != "classes":
        return []
    split = "test" if "test" in split_logits else "validation"
    if split not in split_logits:
        return []
    ex, z, y = named[split], split_logits[split], targets[split].numpy()
    probs = softmax(z / (temperature or 1.0))
    pred = probs.argmax(-1)
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:k]
    out = []
    for i in order:
        row = {"split": split, "where": ex.where(int(i)), "text": ex.texts[i], "label": task.labels[y[i]],
               "predicted": task.labels[pred[i]], "confidence": round(float(probs[i, pred[i]]), 4),
               "p_label": round(float(probs[i, y[i]]), 4)}
        if ex.pairs is not None:
            row["text_pair"] = ex.pairs[i]
        out.append(row)
    return out


def load_run(path: str | Path) -> tuple[str, dict, dict, list[dict]]:
    """(name, metrics, config, mistakes) of a run folder; UserError when it is not one."""
    p = Path(path)
    f = p / "metrics.json"
    if not f.is_file():
        raise UserError(f"{p}: not an enctune run folder (no metrics.json). Pass the --out folder of 'enctune train'.")
    try:
        metrics = json.loads(f.read_text(encoding="utf-8"))
        config = json.loads((p / "config.json").read_text(encoding="utf-8")) if (p / "config.json").is_file() else {}
        mistakes = []
        if (p / "mistakes.jsonl").is_file():
            mistakes = [json.loads(line) for line in (p / "mistakes.jsonl").read_text(encoding="utf-8").splitlines()
                        if line.strip()]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: unreadable run files ({e}).") from None
    return p.resolve().name, metrics, config, mistakes


# ---- small HTML helpers ------------------------------------------------------------------------
def _e(x) -> str:
    return html.escape(str(x))


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return _e(v if v is not None else "-")
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else (f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}")
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (dict, list)):
        return _e(json.dumps(v))
    return _e(v)


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f"<td class='num'>{_fmt(c)}</td>" if isinstance(c, (int, float)) and not isinstance(c, bool)
        else f"<td>{_fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _records_table(records: list[dict]) -> str:
    """A list of flat dicts (e.g. a strategy table) as a table, columns in first-seen order."""
    cols = list(dict.fromkeys(k for r in records for k in r))
    return _table(cols, [[r.get(c) for c in cols] for r in records])


def _img(svg: str, alt: str) -> str:
    # inside HTML an <svg> element is in the SVG namespace without naming it; the page then holds no URL at all
    svg = svg.replace(" xmlns='http://www.w3.org/2000/svg'", "", 1)
    return f"<figure role='img' aria-label='{_e(alt)}'>{svg}</figure>"


def _page(title: str, body: list[str]) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def _eval_split(metrics: dict) -> str:
    return "test" if metrics.get("test") else "validation"


# ---- one run ---------------------------------------------------------------------------------
def render_run_report(name: str, metrics: dict, config: dict, mistakes: list[dict]) -> str:
    """The HTML of one run's report (see the module docstring for what it shows)."""
    b = [f"<h1>enctune run: {_e(name)}</h1>",
         f"<p class='muted'>task <b>{_e(metrics.get('task'))}</b>; strategy <b>{_e(metrics.get('strategy'))}</b>"
         f" ({_e(metrics.get('strategy_reason', ''))}); encoder <code>{_e(config.get('model', '?'))}</code></p>"]
    data = metrics.get("data", {})
    if data:
        sizes = ", ".join(f"{k} {v:,}" for k, v in data.get("sizes", {}).items())
        b.append(f"<p class='muted'>data: {_e(sizes)}; labels: {_e(', '.join(map(str, data.get('labels', []))))}"
                 f"{' (validation carved from train)' if data.get('validation_carved') else ''}</p>")
    b += _scores_section(metrics)
    b += _curves_section([(name, metrics)])
    b += _errors_section(metrics, mistakes)
    b += _calibration_section([(name, metrics)])
    b += _extras_section(metrics)
    b.append("<h2>Costs</h2>")
    # the phases are measured up to the writing of metrics.json, after this report is drawn: metrics.json has them
    b.append(_table(["item", "value"], [[k, v] for k, v in metrics.get("costs", {}).items() if k != "phases"]))
    return _page(f"enctune run {name}", b)


def _scores_section(metrics: dict) -> list[str]:
    cal = metrics.get("calibration") or {}
    rows = []
    for split in ("validation", "test"):
        m = metrics.get(split)
        if not m:
            continue
        c = cal.get(split, {})
        rows.append([split] + [m.get(s) for s in SCALARS] + [c.get("ece_before"), c.get("ece_after")])
    out = ["<h2>Scores</h2>", _table(["split", "accuracy", "macro-F1", "ECE uncalibrated", "ECE calibrated"], rows)]
    cv = metrics.get("cv")
    if cv:
        out.append(f"<p>{cv['folds']}-fold stratified cross-validation on train (the final model is trained on all "
                   "of train):</p>")
        out.append(_table(["metric", "mean", "std", "folds"],
                          [[k, v["mean"], v["std"], ", ".join(f"{x:.4f}" for x in v["values"])]
                           for k, v in cv["metrics"].items()]))
    reps = metrics.get("repeats")
    if reps:
        out.append(f"<p>Trained {len(reps['seeds'])} times (seeds {', '.join(map(str, reps['seeds']))}); the run kept "
                   f"is seed {reps['kept_seed']}, the best on validation. Over the seeds:</p>")
        out.append(_table(["split", "metric", "mean", "std", "per seed"],
                          [[split, k, v["mean"], v["std"], ", ".join(f"{x:.4f}" for x in v["values"])]
                           for split in ("validation", "test") for k, v in (reps.get(split) or {}).items()]))
    if cal.get("temperature") is not None:
        out.append(f"<p class='muted'>Calibration: temperature {cal['temperature']:.3f} fitted on validation, "
                   + ("kept (it lowered the validation ECE)." if cal.get("kept") else
                      f"not kept ({cal.get('why_not_kept', 'it did not lower the validation ECE')}): the "
                      "probabilities are the model's own.")
                   + "</p>")
    return out


def _curves_section(runs: list[tuple[str, dict]]) -> list[str]:
    data = [(n, m.get("loss_curve") or [], m.get("history") or [], m.get("primary_metric", "score"),
             m.get("kept_step")) for n, m in runs]
    if not any(d[1] or d[2] for d in data):
        return []
    return ["<h2>Learning curves</h2>", _img(plots.learning_curves(data), "learning curves")]


def _errors_section(metrics: dict, mistakes: list[dict]) -> list[str]:
    split = _eval_split(metrics)
    m = metrics.get(split) or {}
    out = []
    if m.get("confusion_matrix"):
        labels = list(m.get("per_class", {}).keys())
        out += [f"<h2>Errors on {split}</h2><div class='figs'>",
                _img(plots.confusion(m["confusion_matrix"], labels, f"confusion matrix ({split})"), "confusion"),
                "<div>", _table(["label", "precision", "recall", "F1", "support"],
                                [[k, v["precision"], v["recall"], v["f1"], v["support"]]
                                 for k, v in m["per_class"].items()]), "</div></div>"]
    if mistakes:
        out.append(f"<h3>Most confident mistakes ({len(mistakes)})</h3>")
        out.append(_table(["where", "text", "label", "predicted", "confidence", "p(label)"],
                          [[r["where"], r["text"] + (f" || {r['text_pair']}" if r.get("text_pair") else ""),
                            r["label"], r["predicted"], r["confidence"], r["p_label"]] for r in mistakes]))
    return out


def _calibration_section(runs: list[tuple[str, dict]]) -> list[str]:
    curves, rows = [], []
    for name, m in runs:
        cal = m.get("calibration")
        if not cal:
            continue
        split = _eval_split(m)
        c = cal.get(split)
        if not c:
            continue
        if len(runs) == 1:
            curves.append(("uncalibrated", c["reliability_before"], c["ece_before"]))
        curves.append((f"{name} calibrated" if len(runs) > 1 else f"temperature {cal['temperature']:.3f}",
                       c["reliability_after"], c["ece_after"]))
        rows.append([name, split, cal["temperature"], c["ece_before"], c["ece_after"], c["nll_before"],
                     c["nll_after"]])
    if not rows:
        return []
    return ["<h2>Calibration</h2>",
            "<p class='muted'>Temperature scaling fitted on validation; predictions use the calibrated "
            "probabilities.</p>",
            _table(["run", "split", "temperature", "ECE before", "ECE after", "NLL before", "NLL after"], rows),
            _img(plots.reliability(curves, "reliability diagram"), "reliability diagram")]


def _extras_section(metrics: dict) -> list[str]:
    out = []
    for key, title in (("strategy_table", "Strategies compared"), ("strategies", "Strategies compared")):
        if isinstance(metrics.get(key), list) and metrics[key]:
            out += [f"<h2>{title}</h2>", _records_table(metrics[key])]
            break
    lc = metrics.get("layer_choice")
    if lc:
        out += ["<h2>Layer choice (--layer best)</h2>", f"<p>chosen layer: {_e(lc['layer'])}</p>",
                _records_table(lc["table"])]
    added = metrics.get("added")
    if added:
        out += ["<h2>Added examples (--add)</h2>", _table(["item", "value"], [[k, v] for k, v in added.items()])]
    return out


# ---- several runs ------------------------------------------------------------------------------
def render_comparison(runs: list[tuple[str, dict, dict, list[dict]]]) -> str:
    """Runs side by side: summary, learning curves, calibration, per-class F1 and confusion matrices."""
    names = [r[0] for r in runs]
    if len(set(names)) < len(names):
        names = [f"{i + 1}:{n}" for i, n in enumerate(names)]
    b = ["<h1>enctune runs compared</h1>", f"<p class='muted'>{_e(', '.join(names))}</p>", "<h2>Summary</h2>"]
    rows = []
    fields = [("task", lambda m, c: m.get("task")), ("strategy", lambda m, c: m.get("strategy")),
              ("encoder", lambda m, c: c.get("model")), ("train examples", lambda m, c: m["data"]["sizes"].get("train")
                                                          if m.get("data") else None)]
    for split in ("validation", "test"):
        for s in SCALARS:
            fields.append((f"{split} {s}", lambda m, c, split=split, s=s: (m.get(split) or {}).get(s)))
        fields.append((f"{split} ECE calibrated",
                       lambda m, c, split=split: ((m.get("calibration") or {}).get(split) or {}).get("ece_after")))
    for key in ("wall_seconds", "train_examples_per_second", "trainable_params", "peak_rss_mb"):
        fields.append((key.replace("_", " "), lambda m, c, key=key: m.get("costs", {}).get(key)))
    for label, get in fields:
        rows.append([label] + [get(m, c) for _, m, c, _ in runs])
    b.append(_table(["", *names], rows))
    named = [(n, r[1]) for n, r in zip(names, runs, strict=False)]
    b += _curves_section(named)
    b += _calibration_section(named)
    labels = list(dict.fromkeys(k for _, m, _, _ in runs for k in (m.get(_eval_split(m)) or {}).get("per_class", {})))
    if labels:
        b.append("<h2>Per-class F1</h2>")
        b.append(_table(["label", *names], [[lab] + [((m.get(_eval_split(m)) or {}).get("per_class", {}).get(lab)
                                                      or {}).get("f1") for _, m, _, _ in runs] for lab in labels]))
        figs = []
        for n, (_, m, _, _) in zip(names, runs, strict=False):
            s = _eval_split(m)
            cm = (m.get(s) or {}).get("confusion_matrix")
            if cm:
                figs.append(_img(plots.confusion(cm, list(m[s]["per_class"]), f"{n} ({s})"), f"confusion {n}"))
        if figs:
            b += ["<h2>Confusion matrices</h2><div class='figs'>", *figs, "</div>"]
    return _page("enctune runs compared", b)
