"""``bench/compare.py``: per-round ratios of each tree and the change of their mean."""

from __future__ import annotations

import json

from bench.compare import main


def results(path, enctune_ex_s, trainer_ex_s, acc):
    medians = {"enctune_full": {"train_examples_per_second": enctune_ex_s, "test_accuracy": acc},
               "trainer_best": {"train_examples_per_second": trainer_ex_s, "test_accuracy": 0.88}}
    path.mkdir()
    (path / "results.json").write_text(json.dumps({"rows": {"full": {"summary": {"medians": {"": medians}}}}}))
    return str(path)


def test_each_round_is_its_own_ratio_and_the_change_is_of_the_means(tmp_path, capsys):
    before = ",".join([results(tmp_path / "b1", 60, 50, 0.881), results(tmp_path / "b2", 66, 50, 0.881)])
    after = ",".join([results(tmp_path / "a1", 50, 50, 0.879), results(tmp_path / "a2", 55, 50, 0.879)])
    assert main([f"before={before}", f"after={after}", "--out", str(tmp_path / "t.md")]) == 0
    lines = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()}
    assert lines["train ex/s, enctune_full / trainer_best"].split(" | ")[1:] == ["1.2, 1.32", "1, 1.1", "-0.2100 |"]
    assert lines["test acc, enctune_full"].endswith("| -0.0020 |")
    assert "wall s" not in "".join(lines)  # figures no run measured are left out
    assert (tmp_path / "t.md").read_text().startswith("| figure |")
