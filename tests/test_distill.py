"""enctune distill: a student with fewer blocks taught by a trained run, written as a run folder like any other."""

import json

import pytest
import torch

import enctune
from enctune.cli import main
from enctune.distillation import soft_loss

from .conftest import make_rows, write_jsonl


@pytest.fixture(scope="module")
def teacher(tiny_bert, tmp_path_factory):
    """A full fine-tuning run of the 2-block tiny BERT on the toy sentiment task."""
    base = tmp_path_factory.mktemp("teacher")
    d = base / "data"
    write_jsonl(d / "train.jsonl", make_rows(120, seed=1))
    write_jsonl(d / "validation.jsonl", make_rows(40, seed=2))
    write_jsonl(d / "test.jsonl", make_rows(40, seed=3))
    write_jsonl(base / "pool.jsonl", [{"text": r["text"]} for r in make_rows(60, seed=9)])
    assert main(["train", "--data", str(d), "--model", str(tiny_bert), "--strategy", "full", "--epochs", "2",
                 "--out", str(base / "run"), "--precision", "fp32", "--quiet"]) == 0
    return base


def test_the_student_keeps_fewer_blocks_and_records_both_models(teacher, tmp_path, capsys):
    out = tmp_path / "student"
    code = main(["distill", str(teacher / "run"), "--out", str(out), "--layers", "1", "--unlabelled",
                 str(teacher / "pool.jsonl"), "--epochs", "2", "--precision", "fp32"])
    assert code == 0
    student = enctune.load(out)
    assert student.encoder.num_layers == 1
    assert student.predict(["good"])[0]["label"] in ("positive", "negative")
    m = json.loads((out / "metrics.json").read_text())
    d = m["distillation"]
    assert d["layers_kept"] == [1] and d["teacher_layers"] == 2 and d["student_layers"] == 1
    assert d["labelled_texts"] == 120 and d["unlabelled_texts"] == 60
    assert d["kept_share"] == pytest.approx(m["test"]["accuracy"] / d["teacher_scores"]["test"]["accuracy"], abs=1e-4)
    assert d["params"]["student"] < d["params"]["teacher"]
    assert set(d["speed"]) == {"teacher", "student"} and d["speedup"] > 0
    assert m["costs"]["train_examples_seen"] == 2 * 180  # labelled and pool texts, two epochs
    assert json.loads((out / "config.json").read_text())["distill"]["teacher"] == str(teacher / "run")
    assert "the student keeps" in capsys.readouterr().out


def test_a_student_cannot_keep_every_block_and_nothing_is_written(teacher, tmp_path, capsys):
    assert main(["distill", str(teacher / "run"), "--out", str(tmp_path / "s"), "--layers", "2"]) == 2
    assert "between 1 and 1" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_data_with_other_labels_is_refused(teacher, tmp_path, capsys):
    other = write_jsonl(tmp_path / "other.jsonl", make_rows(40, seed=4, labels=("good", "bad")))
    assert main(["distill", str(teacher / "run"), "--out", str(tmp_path / "s"), "--layers", "1",
                 "--data", str(other)]) == 2
    assert "not the teacher's" in capsys.readouterr().err


def test_soft_loss_is_zero_when_the_student_says_what_the_teacher_says():
    teacher = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.0]])
    hard = torch.tensor([0, 1, 1])
    ce = torch.nn.functional.cross_entropy
    loss = soft_loss("classes", teacher, hard, 0, 2.0, 0.5, ce)  # no labelled rows: the soft part alone
    idx = torch.tensor([0, 1, 2])
    assert loss(teacher.clone(), idx).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros(3, 2, requires_grad=True)
    loss(student, idx).backward()
    assert (student.grad[:, 0] < 0).tolist() == [True, True, False]  # pulled towards the teacher's ranking
    # two labelled rows of three: their cross-entropy counts at their share of the batch
    mixed = soft_loss("classes", teacher, hard, 2, 2.0, 0.5, ce)
    assert mixed(teacher.clone(), idx).item() == pytest.approx(0.5 * ce(teacher[:2], hard[:2]).item() * 2 / 3,
                                                               abs=1e-6)
    values = soft_loss("values", torch.tensor([[1.0], [3.0]]), None, 0, 2.0, 0.0, None)
    assert values(torch.tensor([[0.0], [3.0]]), torch.tensor([0, 1])).item() == pytest.approx(0.5)


@pytest.mark.parametrize("task", ["retrieve", "regress"])
def test_outputs_that_are_not_classes_are_taught_by_their_squared_distance(task, tiny_bert_std, tmp_path):
    """An embedding (retrieve) or a value (regress): the student learns the teacher's outputs; the run's
    evaluation is the task's own."""
    from .tasks.helpers import FULL, splits
    from .tasks.test_regress import toy_rows as value_rows
    from .tasks.test_retrieve import toy_rows as pair_rows

    data = splits(tmp_path, pair_rows if task == "retrieve" else value_rows)
    teacher = enctune.train(data=str(data), out=str(tmp_path / "t"), model=str(tiny_bert_std),
                            **{**FULL, "epochs": 2})
    run = enctune.distill(teacher.path, tmp_path / "s", layers=1, epochs=2, precision="fp32", hard_weight=0.0)
    d = run.metrics["distillation"]
    assert d["student_layers"] == 1 and d["compared_on"] == "test"
    assert set(d["teacher_scores"]["test"]) >= {run.metrics["primary_metric"]}
    out = run.predictor.predict(["good day"])[0]
    assert ("embedding" in out) if task == "retrieve" else ("value" in out)
