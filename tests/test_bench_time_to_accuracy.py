"""bench.time_to_accuracy's arithmetic: the scoring interval, the first point at the target, the table's rows."""

from __future__ import annotations

from bench.time_to_accuracy import eval_every, parse_variants, rows, time_to


def test_eval_every_spreads_the_scoring_passes_over_a_batch_32_epoch():
    assert eval_every(6920, 8) == 27  # 217 steps
    assert eval_every(40, 8) == 1  # never zero


def test_time_to_is_the_first_point_at_or_above_the_target():
    curve = [{"seconds": 5.0, "accuracy": 0.70}, {"seconds": 9.0, "accuracy": 0.85}, {"seconds": 12.0, "accuracy": 0.80}]
    assert time_to(curve, 0.80) == 9.0
    assert time_to(curve, 0.85) == 9.0
    assert time_to(curve, 0.90) is None


def test_rows_take_the_trainers_final_accuracy_as_the_target():
    trainer = {"epochs": 1, "started_at": 8.0, "curve": [{"seconds": 20.0, "accuracy": 0.86},
                                                        {"seconds": 40.0, "accuracy": 0.85}]}
    ours = {"epochs": 1, "started_at": 5.0, "curve": [{"seconds": 10.0, "accuracy": 0.80},
                                                     {"seconds": 16.0, "accuracy": 0.851}]}
    got = {r["tool"]: r for r in rows({"sst2": {"trainer": trainer, "enctune defaults": ours}})}
    assert got["trainer"]["target"] == 0.85 and got["trainer"]["time_to_target"] == 20.0  # reached before its end
    assert got["enctune defaults"]["time_to_target"] == 16.0 and got["enctune defaults"]["speedup"] == 1.25


def test_variants_parse_into_named_option_lists():
    assert parse_variants("defaults=; big = --batch-size 64 --lr 2e-4") == {
        "enctune defaults": [], "enctune big": ["--batch-size", "64", "--lr", "2e-4"]}
