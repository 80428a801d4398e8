"""Phases: seconds per named phase that add up to the process's wall time."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from enctune.phases import Phases, process_age


def test_phases_sum_entries_move_time_and_add_up_to_the_total():
    phases = Phases()
    with phases("train"):
        time.sleep(0.05)
    with phases("read"):
        pass
    with phases("train"):
        time.sleep(0.05)
    phases.move(0.03, "train", "validation_passes")
    phases.move(5.0, "read", "nowhere")  # never more than the source holds
    report = phases.report()
    assert list(report) == ["startup", "train", "read", "validation_passes", "nowhere", "other", "total"]
    assert report["train"] == pytest.approx(0.07, abs=0.02) and report["validation_passes"] == 0.03
    assert report["read"] == 0.0 and report["nowhere"] < 0.01
    assert sum(v for k, v in report.items() if k != "total") == pytest.approx(report["total"], abs=0.03)


def test_a_phase_that_raises_is_still_counted():
    phases = Phases()
    with pytest.raises(ValueError), phases("load"):
        time.sleep(0.02)
        raise ValueError
    assert phases.seconds["load"] >= 0.02


def test_process_age_counts_from_the_start_of_the_process():
    code = "import time; time.sleep(0.3); from enctune.phases import process_age; print(process_age())"
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0.3 <= age < 10
    assert process_age() > 0
