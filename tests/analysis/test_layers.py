"""Layer-wise probing: `enctune probe` and `--layer best`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from enctune.analysis.layers import probe_layers
from enctune.cli import main


def test_probe_scores_every_layer_and_pooling(tiny_bert, sentiment_dir, tmp_path, capsys):
    plot = tmp_path / "layers.svg"
    code = main(["probe", "--data", str(sentiment_dir), "--model", str(tiny_bert), "--pooling", "mean,cls",
                 "--plot", str(plot), "--json"])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert sorted((row["layer"], row["pooling"]) for row in r["rows"]) == \
        [(ly, p) for ly in (0, 1, 2) for p in ("cls", "mean")]
    assert all(0 <= row["accuracy"] <= 1 for row in r["rows"])
    best = max(r["rows"], key=lambda row: row["accuracy"])
    assert r["best"]["accuracy"] == best["accuracy"] and r["cache_hits"] == 0
    svg = ET.fromstring(plot.read_text())
    assert svg.tag.endswith("svg") and "pooling" in plot.read_text() and plot.read_text().count("<circle") == 6
    # the second probe reads every layer from the feature cache
    again = probe_layers(str(sentiment_dir), str(tiny_bert), ["mean", "cls"])
    scores = lambda rows: [(x["layer"], x["pooling"], x["accuracy"], x["macro_f1"]) for x in rows]  # noqa: E731
    assert again["cache_hits"] == 2 and scores(again["rows"]) == scores(r["rows"])


def test_probe_prints_a_table(tiny_bert, sentiment_dir, tmp_path, capsys):
    assert main(["probe", "--data", str(sentiment_dir), "--model", str(tiny_bert), "--plot",
                 str(tmp_path / "p.svg"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "embeddings" in out and "<- best" in out and len(out.strip().splitlines()) == 1 + 3 + 1


def test_layer_best_trains_a_probe_on_the_best_layer(tiny_bert, sentiment_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(sentiment_dir), "--out", str(out), "--model", str(tiny_bert),
                 "--strategy", "probe", "--layer", "best", "--epochs", "20", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    choice = metrics["layer_choice"]
    assert [row["layer"] for row in choice["table"]] == [0, 1, 2]
    assert choice["layer"] == max(choice["table"], key=lambda r: (r["accuracy"], r["macro_f1"], -r["layer"]))["layer"]
    assert json.loads((out / "model" / "enctune.json").read_text())["layer"] == choice["layer"]
    assert "Layer choice" in (out / "report.html").read_text()


def test_layer_best_needs_the_probe_strategy(tiny_bert, sentiment_dir, tmp_path, capsys):
    code = main(["train", "--data", str(sentiment_dir), "--out", str(tmp_path / "r"), "--model", str(tiny_bert),
                 "--strategy", "full", "--layer", "best", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--layer best" in err and "--strategy probe" in err and not (tmp_path / "r").exists()
    assert main(["train", "--data", str(sentiment_dir), "--out", str(tmp_path / "r"), "--model", str(tiny_bert),
                 "--layer", "deepest", "--quiet"]) == 2
    assert "--layer" in capsys.readouterr().err
