"""report.html: every run writes one; `enctune report` re-renders it and compares runs side by side."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from enctune.analysis.report import render_run_report
from enctune.cli import main


def _images(html: str) -> list[ET.Element]:
    """The inline SVG figures, each parsed as XML (a malformed one fails here)."""
    return [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", html, flags=re.S)]


def _train(tiny_bert, data, out, strategy="full"):
    extra = ["--epochs", "4", "--lr", "3e-3", "--batch-size", "8"] if strategy == "full" else \
        ["--epochs", "30", "--lr", "3e-2", "--batch-size", "8"]
    return main(["train", "--data", str(data), "--out", str(out), "--model", str(tiny_bert), "--strategy", strategy,
                 "--quiet", *extra])


def test_every_run_writes_a_self_contained_report(tiny_bert, sentiment_dir, tmp_path, capsys):
    out = tmp_path / "run-a"
    assert _train(tiny_bert, sentiment_dir, out) == 0
    html = (out / "report.html").read_text()
    for section in ("Scores", "Learning curves", "Errors on test", "Most confident mistakes", "Calibration",
                    "reliability diagram", "Costs", "confusion", "train_examples_per_second"):
        assert section in html, section
    images = _images(html)
    assert len(images) == 3  # curves, confusion, reliability
    assert all(img.tag == "svg" and len(img) > 5 for img in images)
    assert "http://" not in html and "https://" not in html and "<script" not in html  # nothing to fetch
    mistakes = (out / "mistakes.jsonl").read_text().splitlines()
    assert mistakes and all(m.split('"text": ')[1].split('", ')[0].strip('"') in html for m in mistakes[:3])
    # re-rendering from the run folder alone gives the same page
    assert main(["report", str(out), "--out", str(tmp_path / "again.html")]) == 0
    assert (tmp_path / "again.html").read_text() == html


def test_report_compares_runs_side_by_side(tiny_bert, sentiment_dir, tmp_path, capsys):
    assert _train(tiny_bert, sentiment_dir, tmp_path / "full-run", "full") == 0
    assert _train(tiny_bert, sentiment_dir, tmp_path / "probe-run", "probe") == 0
    target = tmp_path / "cmp.html"
    assert main(["report", str(tmp_path / "full-run"), str(tmp_path / "probe-run"), "--out", str(target)]) == 0
    html = target.read_text()
    assert "full-run" in html and "probe-run" in html and "Per-class F1" in html
    summary = html.split("<h2>Summary</h2>")[1].split("</table>")[0]
    assert "<td>full</td><td>probe</td>" in summary and "test accuracy" in summary
    assert len(_images(html)) == 4  # learning curves, reliability, two confusion matrices


def test_report_escapes_text_and_refuses_non_runs(tmp_path, capsys):
    metrics = {"task": "classify", "strategy": "probe", "primary_metric": "accuracy",
               "test": {"accuracy": 0.5, "macro_f1": 0.5}, "costs": {"wall_seconds": 1.0}}
    mistakes = [{"where": "line 2", "text": "<script>alert(1)</script>", "label": "a", "predicted": "b",
                 "confidence": 0.9, "p_label": 0.1}]
    html = render_run_report("r", metrics, {}, mistakes)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert main(["report", str(tmp_path)]) == 2
    assert "not an enctune run folder" in capsys.readouterr().err


def test_the_kept_evaluation_is_ringed_where_the_table_takes_its_score():
    """A run keeps its best evaluation, not its last: the curve marks that point, whose score the table shows."""
    history = [{"step": s, "score": v} for s, v in ((10, 0.70), (20, 0.80), (30, 0.75))]
    metrics = {"task": "classify", "strategy": "probe", "primary_metric": "accuracy", "history": history,
               "kept_step": 20, "validation": {"accuracy": 0.80, "macro_f1": 0.8}, "costs": {}}
    svg = next(s for s in re.findall(r"<svg .*?</svg>", render_run_report("r", metrics, {}, []), flags=re.S)
               if "validation score" in s)
    rings = re.findall(r"<circle cx='([\d.]+)' cy='([\d.]+)' r='7'", svg)
    points = re.findall(r"<circle cx='([\d.]+)' cy='([\d.]+)' r='3'", svg)
    assert len(rings) == 1 and rings[0] == points[1]  # the second evaluation (step 20, 0.80), not the last


def test_repeats_and_the_calibration_verdict_are_in_the_report():
    metrics = {"task": "classify", "strategy": "probe", "primary_metric": "accuracy", "costs": {},
               "test": {"accuracy": 0.8, "macro_f1": 0.8},
               "repeats": {"seeds": [0, 1, 2], "kept_seed": 2,
                           "test": {"accuracy": {"mean": 0.78, "std": 0.02, "values": [0.76, 0.78, 0.8]}}},
               "calibration": {"temperature": 1.2, "kept": False, "test": {}}}
    html = render_run_report("r", metrics, {}, [])
    assert "seeds 0, 1, 2" in html and "seed 2, the best on validation" in html
    assert "0.7600, 0.7800, 0.8000" in html and "not kept" in html
