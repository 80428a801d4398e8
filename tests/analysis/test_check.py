"""``enctune check``: the fixture plants duplicates, conflicts, leakage and label errors; the check counts them."""

from __future__ import annotations

import json

import pytest

from enctune.analysis.check import check_data
from enctune.cli import main

from ..conftest import make_rows, write_jsonl

N_DUPLICATES = 4  # extra copies of train rows (one differs only in case and spacing)
N_CONFLICTS = 2  # train texts repeated with the other label
N_LEAKED = 5  # test rows copied from train
FLIPPED = [0, 33, 66, 99, 132, 165]  # train rows whose label is planted wrong


def _flip(label: str) -> str:
    return "negative" if label == "positive" else "positive"


@pytest.fixture
def planted(tmp_path):
    """train.jsonl and test.jsonl with known problems; returns the folder and the planted rows."""
    rows = make_rows(220, seed=11)
    seen: set[str] = set()
    rows = [r for r in rows if not (r["text"] in seen or seen.add(r["text"]))][:200]
    clean = [dict(r) for r in rows]
    for i in FLIPPED:
        rows[i]["label"] = _flip(rows[i]["label"])
    dupes = [dict(rows[10]), dict(rows[11]), dict(rows[12]),
             {"text": "  " + rows[13]["text"].upper().replace(" ", "   "), "label": rows[13]["label"]}]
    conflicts = [{"text": rows[20]["text"], "label": _flip(rows[20]["label"])},
                 {"text": rows[21]["text"], "label": _flip(rows[21]["label"])}]
    train = rows + dupes + conflicts
    test = [r for r in make_rows(80, seed=12) if r["text"] not in seen][:40] + [clean[i] for i in range(40, 45)]
    d = tmp_path / "planted"
    write_jsonl(d / "train.jsonl", train)
    write_jsonl(d / "test.jsonl", test)
    return d


def test_check_finds_what_the_fixture_planted(planted, tiny_bert):
    # layer 0: a random tiny encoder's token embeddings still carry the words; its random layers blur them
    r = check_data(str(planted), model=str(tiny_bert), layer=0, fine_tune="off")
    dup = r["duplicates"]["train"]
    assert dup["duplicate_rows"] == N_DUPLICATES + N_CONFLICTS
    assert dup["conflicting_groups"] == N_CONFLICTS and dup["conflicting_rows"] == 2 * N_CONFLICTS
    assert r["duplicates"]["test"]["duplicate_rows"] == 0
    (leak,) = r["leakage"]
    assert leak["splits"] == ["train", "test"] and leak["shared_texts"] == N_LEAKED
    flagged = {int(e["where"].rsplit("line ", 1)[1]) - 1 for e in r["label_errors"]["rows"] if e["split"] == "train"}
    assert set(FLIPPED) <= flagged  # every planted error is found ...
    assert len(flagged - set(FLIPPED) - {20, 21, 204, 205}) <= 2  # ... and few clean rows are accused
    assert r["balance"]["counts"]["train"]["positive"] + r["balance"]["counts"]["train"]["negative"] == 206
    assert r["lengths"]["train"]["truncated"] == 0 and r["lengths"]["train"]["max_length"] == 64
    assert any("leakage" in f for f in r["findings"]) and any("label error" in f for f in r["findings"])


def test_check_cli_exits_0_with_a_json_report(planted, tiny_bert, capsys):
    code = main(["check", "--data", str(planted), "--model", str(tiny_bert), "--no-label-errors", "--json"])
    out = capsys.readouterr()
    assert code == 0
    r = json.loads(out.out)
    assert "label_errors" not in r and r["leakage"][0]["shared_texts"] == N_LEAKED


def test_check_reports_truncation_and_text_output(tmp_path, tiny_bert, capsys):
    rows = make_rows(30)
    rows[3]["text"] = " ".join(["good"] * 80)  # longer than the tiny encoder's 64 positions
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    code = main(["check", "--data", str(data), "--model", str(tiny_bert), "--no-label-errors"])
    out = capsys.readouterr().out
    assert code == 0
    assert "1 text(s) longer than 64 tokens will be cut" in out
    assert "line 4" in json.dumps(check_data(str(data), model=str(tiny_bert), label_errors=False)["lengths"])


def test_check_bad_data_is_a_user_error(tmp_path, tiny_bert, capsys):
    code = main(["check", "--data", str(tmp_path / "missing.jsonl"), "--model", str(tiny_bert)])
    err = capsys.readouterr().err
    assert code == 2 and "no such file" in err and "Traceback" not in err


@pytest.mark.integration
def test_check_finds_planted_label_errors_with_the_default_encoder(planted):
    r = check_data(str(planted), label_errors=True, fine_tune="off")
    flagged = {int(e["where"].rsplit("line ", 1)[1]) - 1 for e in r["label_errors"]["rows"] if e["split"] == "train"}
    # precise: every row flagged was planted wrong (a flip, or the flipped copy of a conflicting duplicate); and
    # it finds them: the regularised probe's per-class threshold (0.91 here) may leave one flip just under it
    assert flagged <= set(FLIPPED) | {204, 205}
    assert len(flagged & set(FLIPPED)) >= len(FLIPPED) - 1
    assert r["label_errors"]["probe_C"] < 1  # the data chose a stronger regularisation than the probe strategy's


def test_check_json_lists_every_label_issue_with_file_line_and_rank(planted, tiny_bert, capsys):
    code = main(["check", "--data", str(planted), "--model", str(tiny_bert), "--layer", "0", "--json",
                 "--fine-tune", "off"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0
    issues = r["label_issues"]
    assert [i["rank"] for i in issues] == list(range(1, len(issues) + 1)) and len(issues) == r["label_errors"]["count"]
    lines = (planted / "train.jsonl").read_text().splitlines()
    for i in issues:
        assert i["file"] == str(planted / "train.jsonl")
        row = json.loads(lines[i["line"] - 1])  # 1-based, as every message names lines
        assert row["text"] == i["text"] and row["label"] == i["given_label"] != i["suggested_label"]
        assert i["out_of_fold_probability"] >= 0.6 > i["probability_of_given"]
    # most suspicious first: the probability of the given label never falls down the list
    given = [i["probability_of_given"] for i in issues]
    assert given == sorted(given)
    assert {i["line"] - 1 for i in issues} & set(FLIPPED)


# ---- the second opinion: the encoder fine-tuned on folds ----------------------------------------------
def test_only_rows_both_models_call_mislabelled_are_flagged(monkeypatch):
    import numpy as np

    from enctune.analysis import check

    y_labels = ["a", "b"] * 10
    probe = np.tile([[0.9, 0.1], [0.1, 0.9]], (10, 1))  # right on every row ...
    probe[[0, 2, 4]] = [0.02, 0.98]  # ... except rows 0, 2, 4 (labelled a), confidently b
    tuned = np.tile([[0.8, 0.2], [0.2, 0.8]], (10, 1))
    tuned[[2, 4, 6]] = [0.05, 0.95]  # the fine-tuned folds disagree on 2, 4 and 6
    monkeypatch.setattr(check, "out_of_fold_probabilities", lambda x, y, k, seed: (probe, 0.01, {}))
    alone, info = check.likely_label_errors(np.zeros((20, 2)), y_labels)
    assert [r for r, *_ in alone] == [0, 2, 4] and info["probe_flags"] == 3
    both, info = check.likely_label_errors(np.zeros((20, 2)), y_labels, second_opinion=lambda classes: tuned)
    assert sorted(r for r, *_ in both) == [2, 4] and info["fine_tuned_flags"] == 3
    (row, suggested, p_suggested, p_own) = both[0]
    assert suggested == "b" and p_own == pytest.approx((0.02 + 0.05) / 2)  # the two models' mean


def test_fine_tuned_folds_give_every_row_probabilities_in_the_classes_order(tiny_bert, tmp_path):
    import numpy as np

    from enctune.analysis.tuned_folds import fine_tuned_probabilities
    from enctune.data import Examples

    rows = make_rows(40, seed=3)
    pool = Examples([r["text"] for r in rows], None, [r["label"] for r in rows])
    probs = fine_tuned_probabilities(pool, ["negative", "positive"], str(tiny_bert), precision="fp32")
    assert probs.shape == (40, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5) and (probs > 0).all()
    flipped = fine_tuned_probabilities(pool, ["positive", "negative"], str(tiny_bert), precision="fp32")
    assert np.allclose(flipped, probs[:, ::-1], atol=1e-5)  # the same folds and models, columns as asked


def test_check_cli_asks_the_fine_tuned_folds(planted, tiny_bert, capsys):
    code = main(["check", "--data", str(planted), "--model", str(tiny_bert), "--layer", "0", "--json",
                 "--fine-tune", "on", "--precision", "fp32"])
    r = json.loads(capsys.readouterr().out)
    le = r["label_errors"]
    assert code == 0 and 0.0 <= le["fine_tuned_accuracy"] <= 1.0
    assert le["count"] <= min(le["probe_flags"], le["fine_tuned_flags"])  # flagged by both
    assert main(["check", "--data", str(planted), "--model", str(tiny_bert), "--fine-tune", "maybe"]) == 2


def test_fine_tuned_folds_read_text_pairs(tiny_bert):
    from enctune.analysis.tuned_folds import fine_tuned_probabilities
    from enctune.data import Examples

    rows = make_rows(24, seed=4)
    pool = Examples([r["text"] for r in rows], [r["text"][::-1] for r in rows], [r["label"] for r in rows])
    probs = fine_tuned_probabilities(pool, ["negative", "positive"], str(tiny_bert), precision="fp32")
    assert probs.shape == (24, 2) and (probs > 0).all()


def test_a_small_fold_trains_to_the_step_floor_and_a_large_one_one_epoch():
    from enctune.analysis.tuned_folds import fold_epochs
    from enctune.strategies.base import MAX_FLOOR_EPOCHS, MIN_STEPS

    assert fold_epochs(3000) == 1  # ~94 steps: one epoch over the data is enough
    assert fold_epochs(135) * -(-135 // 32) >= MIN_STEPS  # 5 steps an epoch: 7 epochs, 35 steps
    assert fold_epochs(4) == MAX_FLOOR_EPOCHS


def test_the_folds_show_their_progress_but_not_their_runs_messages(tiny_bert, tmp_path, capsys):
    from enctune.analysis.tuned_folds import fine_tuned_probabilities
    from enctune.data import Examples

    rows = make_rows(40, seed=5)
    pool = Examples([r["text"] for r in rows], None, [r["label"] for r in rows])
    fine_tuned_probabilities(pool, ["negative", "positive"], str(tiny_bert), precision="fp32")
    err = capsys.readouterr().err
    assert err.count("fine-tuning fold") == 2 and err.count("full fine-tuning:") == 2  # a bar line per fold


def test_hushed_keeps_the_bars_and_drops_the_messages(capsys):
    from enctune import progress

    with progress.hushed():
        progress.info("a nested run's report")
        with progress.bar("nested bar", total=3) as b:
            b.advance(3)
    progress.info("after")
    err = capsys.readouterr().err
    assert "a nested run's report" not in err and "nested bar: 3/3" in err and "after" in err
