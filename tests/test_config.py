"""The configuration as the user writes it: keyword arguments from Python, flags from the shell, keys in a
file; each mistake named the way it was written, with the closest known name."""

from __future__ import annotations

import inspect

import pytest

import enctune
from enctune.config import TrainConfig, make_config
from enctune.errors import UserError


def test_a_misspelt_keyword_argument_is_named_as_python_writes_it(tmp_path):
    with pytest.raises(UserError) as e:
        enctune.train(data=str(tmp_path), lable_column="y")
    assert "lable_column=: unknown keyword argument (did you mean label_column=?)" in str(e.value)
    assert "--" not in str(e.value)


def test_a_bad_keyword_value_and_a_missing_data_are_named_as_python_writes_them():
    with pytest.raises(UserError, match=r"invalid argument: epochs=-1"):
        make_config({"data": "x", "epochs": -1}, source="python")
    with pytest.raises(UserError, match=r"missing data=:"):
        enctune.advise(strategy="probe")


def test_flags_and_file_keys_keep_their_own_names(tmp_path):
    with pytest.raises(UserError, match=r"--lable-column: unknown option \(did you mean --label-column\?\)"):
        make_config({"data": "x", "lable_column": "y"})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: x\nlable_column: y\n")
    with pytest.raises(UserError, match=r"'lable_column': unknown option \(did you mean 'label_column'\?\)"):
        make_config({}, str(cfg))


@pytest.mark.parametrize("fn", [enctune.train, enctune.advise])
def test_the_signature_lists_every_setting_with_its_default_and_help(fn):
    params = inspect.signature(fn).parameters
    assert set(TrainConfig.model_fields) <= set(params)
    assert params["lr"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["seed"].default == TrainConfig.model_fields["seed"].default
    assert params["data"].default is inspect.Parameter.empty  # required
    assert "label_column (" in fn.__doc__ and TrainConfig.model_fields["repeats"].description in fn.__doc__
