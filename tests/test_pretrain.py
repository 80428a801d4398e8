"""enctune pretrain: whole-word dynamic masking, deletion noise, the objective chosen by the encoder, and an
encoder folder that training starts from."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from enctune.cli import main
from enctune.encoders.encoder import Encoder
from enctune.errors import UserError
from enctune.pretraining import choose_objective, delete_noise, whole_word_mask

from .conftest import make_rows, write_jsonl

SPECIAL = {101, 102}


def test_whole_words_are_masked_together_and_special_tokens_never():
    ids = [101, 7, 8, 9, 10, 11, 102]
    words = [None, 0, 0, 1, 2, 2, None]  # word 0 is two pieces, word 2 two pieces
    rng = np.random.default_rng(0)
    targets_per_word = {0: 0, 1: 0, 2: 0}
    for _ in range(2000):
        out, labels = whole_word_mask(ids, words, 0.3, rng, mask_id=103, vocab_size=200, special=SPECIAL)
        assert labels[0] == labels[-1] == -100 and out[0] == 101 and out[-1] == 102
        assert (labels[1] == -100) == (labels[2] == -100) and (labels[4] == -100) == (labels[5] == -100)
        assert any(v != -100 for v in labels)  # at least one word a text
        for w, i in ((0, 1), (1, 3), (2, 4)):
            targets_per_word[w] += labels[i] != -100
        assert all(labels[i] in (-100, ids[i]) for i in range(len(ids)))
    assert all(0.25 < n / 2000 < 0.45 for n in targets_per_word.values())  # 0.3, raised by the one-word floor


def test_masked_targets_are_mostly_the_mask_token():
    ids, words = [101] + list(range(10, 60)) + [102], [None] + list(range(50)) + [None]
    rng = np.random.default_rng(1)
    kinds = {"mask": 0, "same": 0, "other": 0}
    for _ in range(200):
        out, labels = whole_word_mask(ids, words, 0.15, rng, 103, 200, SPECIAL)
        for o, lab in zip(out, labels, strict=True):
            if lab != -100:
                kinds["mask" if o == 103 else "same" if o == lab else "other"] += 1
    total = sum(kinds.values())
    assert kinds["mask"] / total == pytest.approx(0.8, abs=0.04)
    assert kinds["same"] / total == pytest.approx(0.1, abs=0.04)  # kept, or drawn at random as itself (1 in 200)


def test_deletion_keeps_special_tokens_and_one_word_at_least():
    rng = np.random.default_rng(0)
    ids = [101] + list(range(10, 110)) + [102]
    kept = [delete_noise(ids, 0.6, rng, SPECIAL) for _ in range(50)]
    assert all(k[0] == 101 and k[-1] == 102 for k in kept)
    assert np.mean([len(k) - 2 for k in kept]) == pytest.approx(40, abs=4)  # 60% of 100 deleted
    assert all(len(delete_noise([101, 5, 102], 0.999, rng, SPECIAL)) == 3 for _ in range(20))


def test_the_objective_follows_what_the_encoder_is_for(tiny_bert, tiny_bert_no_dropout, tiny_gpt2):
    bert = Encoder.load(str(tiny_bert), lazy=True).config
    assert choose_objective(str(tiny_bert), bert, "auto")[0] == "tsdae"  # it names a pooling: a sentence encoder
    assert choose_objective(str(tiny_bert_no_dropout), bert, "auto")[0] == "mlm"  # a plain BERT folder
    assert choose_objective(str(tiny_bert), bert, "mlm") == ("mlm", "chosen with --objective")
    with pytest.raises(UserError, match="causal"):
        choose_objective(str(tiny_gpt2), Encoder.load(str(tiny_gpt2), lazy=True).config, "auto")
    with pytest.raises(UserError, match="expected one of"):
        choose_objective(str(tiny_bert), bert, "clm")


@pytest.fixture
def texts(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("".join(r["text"] + "\n" for r in make_rows(80, seed=5)))
    return path


@pytest.mark.parametrize("objective", ["mlm", "tsdae"])
def test_pretraining_writes_an_encoder_that_training_starts_from(objective, tiny_bert, texts, tmp_path, capsys):
    out = tmp_path / "domain"
    assert main(["pretrain", "--model", str(tiny_bert), "--data", str(texts), "--out", str(out), "--objective",
                 objective, "--epochs", "2", "--precision", "fp32"]) == 0
    report = json.loads((out / "pretrain.json").read_text())
    assert report["objective"] == objective and report["texts"] + report["held_out"] == 80
    assert report["held_out_loss"]["after"] <= report["held_out_loss"]["before"]  # the kept weights are the best
    enc_dir = out / "model" / "encoder"
    before, after = load_file(tiny_bert / "model.safetensors"), load_file(enc_dir / "model.safetensors")
    changed = [k for k in after if k in before and not torch.equal(before[k], after[k])]
    assert changed, "nothing was trained"
    assert (enc_dir / "1_Pooling" / "config.json").is_file()  # pools as the source did
    assert Encoder.load(str(out), lazy=True).pooling == "mean"
    if objective == "mlm":
        assert "no masked-language-model head" in capsys.readouterr().err
    data = write_jsonl(tmp_path / "labelled.jsonl", make_rows(40, seed=6))
    assert main(["train", "--data", str(data), "--model", str(out), "--strategy", "probe", "--out",
                 str(tmp_path / "run"), "--quiet"]) == 0


def test_a_causal_model_is_refused_before_anything_is_written(tiny_gpt2, texts, tmp_path, capsys):
    assert main(["pretrain", "--model", str(tiny_gpt2), "--data", str(texts), "--out", str(tmp_path / "x")]) == 2
    assert "causal" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_too_few_texts_is_a_clear_error(tiny_bert, tmp_path, capsys):
    few = tmp_path / "few.txt"
    few.write_text("one\ntwo\n")
    assert main(["pretrain", "--model", str(tiny_bert), "--data", str(few), "--out", str(tmp_path / "x")]) == 2
    assert "at least 20" in capsys.readouterr().err


def test_a_pretraining_run_checkpoints_and_resumes(tiny_bert_no_dropout, texts, tmp_path):
    out = tmp_path / "domain"
    args = ["pretrain", "--model", str(tiny_bert_no_dropout), "--data", str(texts), "--out", str(out), "--epochs",
            "2", "--precision", "fp32", "--checkpoint-every", "2", "--quiet"]
    assert main(args) == 0
    report = json.loads((out / "pretrain.json").read_text())
    assert not (out / "checkpoints").exists()  # a finished folder holds the encoder, not the checkpoints
    assert main([*args, "--resume"]) == 2  # a finished run is not resumed
    assert report["steps"] == 2 * -(-report["texts"] // 32)
