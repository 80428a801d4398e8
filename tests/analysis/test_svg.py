"""The SVG chart writer behind report and probe figures."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from enctune.analysis import plots
from enctune.analysis.svg import Panel, figure, nice_ticks
from enctune.cli import main


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 97) == [20, 40, 60, 80]
    assert nice_ticks(0.8103, 0.8142, 4) == [0.811, 0.812, 0.813, 0.814]
    assert nice_ticks(2, 2) == [2]


def test_points_land_where_their_values_say():
    p = Panel("t", "x", "y", xlim=(0, 10), ylim=(0, 1))
    p.line([0, 5, 10], [0, 0.5, 1], "#000", "a", marker=True)
    svg = figure([(p, 0, 0, 400, 300)], 400, 300)
    cx = [float(v) for v in re.findall(r"<circle cx='([\d.]+)'", svg)]
    cy = [float(v) for v in re.findall(r"cy='([\d.]+)'", svg)]
    assert len(cx) == 3 and abs((cx[1] - cx[0]) - (cx[2] - cx[1])) < 0.2  # equal steps in x
    assert cy[0] > cy[1] > cy[2] and abs((cy[0] - cy[1]) - (cy[1] - cy[2])) < 0.2  # y grows upwards


def test_log_axis_puts_decades_at_equal_distances():
    p = Panel(ylog=True, xlim=(0, 3))
    p.line([0, 1, 2, 3], [1, 10, 100, 1000], "#000", marker=True)
    cy = [float(v) for v in re.findall(r"cy='([\d.]+)'", figure([(p, 0, 0, 300, 300)], 300, 300))]
    steps = [a - b for a, b in zip(cy, cy[1:], strict=False)]
    assert max(steps) - min(steps) < 0.2 and steps[0] > 0


def test_figures_are_well_formed_and_escape_text():
    labels = ["<b>", "a & b", "c"]
    docs = [plots.confusion([[5, 1, 0], [2, 3, 0], [0, 0, 0]], labels, "cm <x>"),
            plots.learning_curves([("run", [[1, 0, 0.7], [2, 0, 0.5]], [{"step": 2, "score": 0.8}], "accuracy")]),
            plots.reliability([("before", [{"lower": 0.5, "upper": 1.0, "confidence": 0.8, "accuracy": 0.7,
                                            "count": 9}, {"lower": 0, "upper": 0.5, "confidence": 0, "accuracy": 0,
                                                          "count": 0}], 0.1)], "rel"),
            plots.curves({"s": ([1, 2], [0.5, 0.6], [0.1, 0.0])}, "x", "y", "t")]
    for svg in docs:
        root = ET.fromstring(svg)  # raises on malformed markup or unescaped text
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "&lt;b&gt;" in docs[0] and "a &amp; b" in docs[0] and ">5<" in docs[0]
    assert docs[2].count("<rect") >= 3  # frame, legend box and the one non-empty count bar at least


def test_probe_refuses_a_plot_it_cannot_write(tiny_bert, sentiment_dir, tmp_path, capsys):
    code = main(["probe", "--data", str(sentiment_dir), "--model", str(tiny_bert), "--plot",
                 str(tmp_path / "p.png"), "--quiet"])
    assert code != 0 and "expected a .svg file" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()
