"""Checks at the edge, without a server: texts (``serve/inputs.py``), request bodies, token estimates, names
and tokens the server shows or accepts."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import enctune
from enctune.serve.inputs import check_inputs, check_texts, estimate_tokens
from enctune.serve.onnx_predictor import OnnxPredictor
from enctune.serve.request import ApiError, parse_body
from enctune.serve.server import ServedModel, check_token_value, public_name

from .serve_hostile import hostile_text, valid_unicode

# ---- texts --------------------------------------------------------------------------------------


def test_a_lone_surrogate_is_a_user_error_naming_its_index():
    with pytest.raises(enctune.UserError, match=r"texts\[3\] is not valid Unicode text: it holds an unpaired "
                                                r"surrogate \(U\+D800\) at character 2"):
        check_inputs(["a", "b", "c", "a \ud800 b"], None, {})
    with pytest.raises(enctune.UserError, match=r"text_pairs\[1\] .* \(U\+DFFF\)"):
        check_inputs(["a", "b"], ["fine", "\udfff"], {})


def test_a_byte_that_is_not_utf8_is_named_as_that_byte():
    """Python decodes argv and files with surrogateescape: the byte 0xFF becomes U+DCFF."""
    text = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(enctune.UserError, match="the byte 0xE9 that is not UTF-8"):
        check_texts([text], "texts")


@pytest.mark.parametrize("texts, message", [
    ([b"bytes"], r"texts\[0\] is bytes, not a string"),
    (["ok", None], r"texts\[1\] is NoneType"),
    ([3.5], r"texts\[0\] is float"),
    (None, "expected a string or a list of strings"),
    (7, "expected a string or a list of strings"),
])
def test_a_text_that_is_not_a_string_is_a_user_error(texts, message):
    with pytest.raises(enctune.UserError, match=message):
        check_inputs(texts, None, {})


@given(texts=st.lists(hostile_text(), min_size=1, max_size=6))
@settings(max_examples=200, derandomize=True, database=None, deadline=None)
def test_check_inputs_accepts_exactly_the_texts_that_encode_to_utf8(texts):
    """NUL, controls and everything else that encodes is accepted (the tokenizers take them); every text with
    a lone surrogate is refused, naming the first one."""
    bad = [i for i, t in enumerate(texts) if not valid_unicode(t)]
    if not bad:
        assert check_inputs(texts, None, {}) == (texts, None)
        return
    with pytest.raises(enctune.UserError, match=rf"texts\[{bad[0]}\] is not valid Unicode text"):
        check_inputs(texts, None, {})


def test_the_onnx_predictor_checks_texts_before_tokenizing():
    """The onnxruntime path shares ``check_inputs``: a bad text never reaches its tokenizer or session (none
    is loaded here: the check must come first)."""
    model = OnnxPredictor.__new__(OnnxPredictor)
    model.meta, model.tokenizer, model.session = {"columns": {}}, None, None
    with pytest.raises(enctune.UserError, match=r"texts\[0\] is not valid Unicode text"):
        model.logits(["\udcff"])


# ---- token estimates ----------------------------------------------------------------------------


def test_estimate_tokens_counts_bytes_caps_at_max_length_and_windows_contexts():
    assert estimate_tokens(len(b"good film"), None, 256) == 3 + 2
    assert estimate_tokens(len("漢字".encode()), None, 256) == 2 + 2  # 3 bytes a CJK character: one token
    assert estimate_tokens(9, 3, 256) == 3 + 1 + 3  # a pair: three special tokens
    assert estimate_tokens(30_000, None, 256) == 256  # truncated at max_length
    # extractive: 10,002 tokens in windows of 256 that step by 128: 1 + ceil((10,002 - 256) / 128) = 78
    assert estimate_tokens(30_000, 0, 256, windows=128) == 78 * 256
    assert estimate_tokens(30, 0, 256, windows=128) == 10 + 3  # short enough for one window


# ---- request bodies -----------------------------------------------------------------------------

JSON = "application/json"


@pytest.mark.parametrize("body, content_type, status, code, says", [
    (b"not json at all", JSON, 400, "malformed_json", "not valid JSON"),
    (b"not json at all", None, 400, "malformed_json", "Content-Type: application/json"),
    (b'{"texts": ["good"', "text/plain", 400, "malformed_json", "Content-Type: application/json"),
    (b'{"text": "caf\xe9"}', JSON, 400, "malformed_json", "not valid UTF-8 (byte 0xe9 at offset 13)"),
    (b'{"text": "\xff"}', None, 400, "malformed_json", "not valid UTF-8"),
    (b"", JSON, 400, "malformed_json", "empty"),
    (b"   ", None, 400, "malformed_json", "empty"),
    (b"[" * 100_000, JSON, 400, "malformed_json", "nested too deeply"),
    (b'{"texts": [' + b"1" * 5000 + b"]}", JSON, 400, "malformed_json", "digits"),
    (b'{"texts": ["good"]}', None, 415, "unsupported_media_type", "Content-Type: application/json"),
    (b'{"texts": ["good"]}', "text/plain; charset=utf-8", 415, "unsupported_media_type", "text/plain"),
    (b'{"texts": ["good"]}', "application/x-www-form-urlencoded", 415, "unsupported_media_type",
     "Content-Type: application/json"),
    (b'{"texts": "good"}', JSON, 422, "invalid_request", "texts"),
    (b'{"texts": [NaN]}', JSON, 422, "invalid_request", "texts.0"),
])
def test_a_bad_body_is_a_4xx_that_says_what_to_send(body, content_type, status, code, says):
    with pytest.raises(ApiError) as e:
        parse_body(body, content_type)
    assert (e.value.status, e.value.code) == (status, code) and says in e.value.message, e.value.message


@pytest.mark.parametrize("body, content_type", [
    (b'{"texts": ["good"]}', "application/json; charset=utf-8"),
    (b'{"texts": ["good"]}', "Application/JSON"),
    (b'{"texts": ["good"]}', "application/vnd.api+json"),
    (b'\xef\xbb\xbf{"texts": ["good"]}', JSON),  # a UTF-8 byte order mark, as some Windows clients send
    ('{"texts": ["good"]}'.encode("utf-16"), JSON),  # json reads UTF-16 with a BOM; Starlette's json() did
])
def test_json_bodies_are_read_under_any_json_content_type(body, content_type):
    assert parse_body(body, content_type).texts == ["good"]


def test_lone_surrogates_in_a_body_come_through_to_the_text_check():
    """``\\ud800`` as a JSON escape and as raw bytes (ED A0 80, read with surrogatepass) both reach the text
    check, which ``parse_request`` runs before anything is queued (see test_serve.py)."""
    assert parse_body(b'{"text": "a \\ud800 b"}', JSON).text == "a \ud800 b"
    assert parse_body(b'{"text": "a \xed\xa0\x80 b"}', JSON).text == "a \ud800 b"


def _mutated(draw_bytes: bytes, at: int, byte: int) -> bytes:
    at = at % (len(draw_bytes) + 1)
    return draw_bytes[:at] + bytes([byte]) + draw_bytes[at + 1:]


@given(texts=st.lists(hostile_text(), max_size=4), at=st.integers(0, 200), byte=st.integers(0, 255),
       content_type=st.sampled_from([JSON, None, "text/plain", "application/json; charset=latin-1"]),
       raw=st.binary(max_size=40))
@settings(max_examples=300, derandomize=True, database=None, deadline=None)
def test_any_body_is_a_request_or_a_4xx(texts, at, byte, content_type, raw):
    """Valid bodies, bodies with one byte changed, and random bytes: ``parse_body`` answers a request or an
    ``ApiError`` under 500, never anything else."""
    good = json.dumps({"texts": texts}).encode()
    for body in (good, _mutated(good, at, byte), raw, json.dumps({"texts": texts}, ensure_ascii=False)
                 .encode("utf-8", "surrogatepass")):
        try:
            parse_body(body, content_type)
        except ApiError as e:
            assert 400 <= e.status < 500 and e.message


# ---- what the server shows and accepts ----------------------------------------------------------


@pytest.mark.parametrize("base_model, shown", [
    ("default", "default"),
    ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
    ("bert-base-uncased", "bert-base-uncased"),
    ("/home/alice/models/secret-bert", "secret-bert"),
    ("/home/alice/models/secret-bert/", "secret-bert"),
    ("./models/bert", "bert"),
    ("~/bert", "bert"),
    ("C:\\Users\\alice\\bert", "bert"),
    ("a/b/c", "c"),
    (None, None),
])
def test_the_base_model_is_shown_by_name_never_by_path(base_model, shown):
    assert public_name(base_model) == shown


@pytest.mark.parametrize("token", ["", " ", "two words", "tab\there", "caf\u00e9", "\udcff"])
def test_a_token_a_client_cannot_send_is_refused(token):
    with pytest.raises(enctune.UserError, match="token"):
        check_token_value(token)


def test_a_usable_token_is_accepted():
    check_token_value(None)
    check_token_value("s3cret-token_~+/=")


class _Model:
    def __init__(self, meta: dict, **task):
        self.meta, self.task, self.labels = meta, SimpleNamespace(name="any", **task), []


def test_a_served_model_prices_an_input_as_its_model_reads_it():
    """Truncated at max_length; a windowed (extractive) task pays for every window; a bi-encoder pair model
    encodes each text on its own."""
    plain = ServedModel("m", _Model({"max_length": 256}), "/nonexistent")
    assert plain.cost(b"x" * 30_000, None) == 256 and plain.cost(b"good film", None) == 5
    windowed = ServedModel("m", _Model({"max_length": 256}, doc_stride=128), "/nonexistent")
    assert windowed.cost(b"what?", b"x" * 30_000) == 78 * 256  # see the estimate test above
    bi = ServedModel("m", _Model({"max_length": 256, "pair_mode": "bi"}), "/nonexistent")
    assert bi.cost(b"x" * 30_000, b"x" * 30_000) == 2 * 256
