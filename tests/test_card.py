"""The model card (README.md of a model folder): metadata a model hub reads, every setting the run used, the
scores with their spread, and what the model should not be used for."""

from __future__ import annotations

import json

import pytest
import yaml

import enctune
from enctune.card import model_card
from enctune.encoders.resolve import DEFAULT_ENCODER_ID, encoder_identity


def _front(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---", 2)[1])


@pytest.fixture(scope="module")
def run(tiny_bert, tmp_path_factory):
    from .conftest import make_rows, write_jsonl

    d = tmp_path_factory.mktemp("card")
    for split, seed in (("train", 1), ("validation", 2), ("test", 3)):
        write_jsonl(d / "sst" / f"{split}.jsonl", make_rows(60 if split == "train" else 30, seed=seed))
    return enctune.train(data=str(d / "sst"), out=str(d / "run"), model=str(tiny_bert), strategy="full",
                         epochs=1, batch_size=16, precision="fp32")


def test_the_card_of_a_run_has_hub_metadata_and_every_setting(run):
    card = (run.path / "model" / "README.md").read_text()
    front = _front(card)
    assert front["library_name"] == "enctune" and front["pipeline_tag"] == "text-classification"
    assert front["datasets"] == ["sst"] and {"enctune", "classify", "full"} <= set(front["tags"])
    (result,) = front["model-index"][0]["results"][:1]
    assert result["dataset"]["split"] == "test"
    assert {m["type"]: m["value"] for m in result["metrics"]}["accuracy"] == round(run.metrics["test"]["accuracy"], 4)
    config = json.loads((run.path / "config.json").read_text())
    for key in ("lr", "batch_size", "epochs", "seed", "warmup_ratio", "pooling", "precision"):
        assert f"| {key} | `{config[key]}` |" in card  # the settings the run used, resolved
    for section in ("## Model", "## Data", "## Training", "## Scores", "## Intended use and limitations", "## Use"):
        assert section in card


def test_spread_over_repeats_and_the_calibration_verdict_are_shown(run):
    meta = json.loads((run.path / "model" / "enctune.json").read_text())
    metrics = dict(run.metrics)
    acc = metrics["test"]["accuracy"]
    metrics["repeats"] = {"seeds": [0, 1, 2], "kept_seed": 1,
                          "test": {"accuracy": {"mean": 0.8, "std": 0.05, "values": [0.75, 0.8, 0.85]}}}
    metrics["calibration"] = {"temperature": 1.7, "kept": False, "validation": {"ece_before": 0.1, "ece_after": 0.2}}
    card = model_card(meta, metrics, {"out": "runs/x"}, {"name": "my-encoder", "license": "mit"})
    assert f"| test | accuracy | {acc:.4f} ± 0.0500 (mean 0.8000 over 3 runs) |" in card
    assert "not kept: it did not lower the validation ECE" in card
    front = _front(card)
    assert front["base_model"] == "my-encoder" and front["license"] == "mit"
    assert front["model-index"][0]["name"] == "x"


def test_the_default_encoder_is_named_by_its_hub_id_with_its_licence(tmp_path):
    from enctune.encoders.resolve import default_encoder_path

    ident = encoder_identity("default", str(default_encoder_path()))
    assert ident == {"name": DEFAULT_ENCODER_ID, "license": "apache-2.0", "language": "en"}  # from its own card
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "README.md").write_text("---\nlicense: apache-2.0\nlanguage: en\n---\n# an encoder\n")
    assert encoder_identity(str(tmp_path / "enc"), str(tmp_path / "enc")) == {
        "name": "enc", "license": "apache-2.0", "language": "en"}
    (tmp_path / "enc" / "README.md").write_text("---\nlicense: [unclosed\n---\n")
    assert encoder_identity(str(tmp_path / "enc"), str(tmp_path / "enc")) == {"name": "enc"}  # damaged: left out
