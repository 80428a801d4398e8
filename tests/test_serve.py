"""``enctune serve``: a real HTTP client against a running uvicorn server on a tiny model."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import enctune
from enctune.serve.inputs import estimate_tokens
from enctune.serve.server import Limits, ServedModel, build_app, load_models, parse_specs

from .conftest import ROOT, make_rows, write_jsonl
from .serve_helpers import running_server, train_tiny
from .serve_hostile import HOSTILE, hostile_text, valid_unicode

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def runs(tiny_bert, tmp_path_factory):
    """Two trained runs: single texts (sentiment) and text pairs (does the pair repeat the sentiment?)."""
    root = tmp_path_factory.mktemp("serve-runs")
    single = root / "data-single"
    write_jsonl(single / "train.jsonl", make_rows(120, seed=1))
    write_jsonl(single / "validation.jsonl", make_rows(40, seed=2))
    second = make_rows(120, seed=5)
    random.Random(0).shuffle(second)
    pair_rows = [{"text": a["text"], "text_pair": b["text"], "label": "same" if a["label"] == b["label"] else "diff"}
                 for a, b in zip(make_rows(120, seed=4), second, strict=True)]
    write_jsonl(root / "pairs.jsonl", pair_rows)
    train_tiny(tiny_bert, single, root / "sentiment")
    train_tiny(tiny_bert, root / "pairs.jsonl", root / "pairs", epochs=2)
    return {"single": root / "sentiment", "pairs": root / "pairs"}


# the tiny model reads 64 tokens at most: 8 texts of 200 characters (64 tokens each, 512) pass max_texts
# and max_chars but not max_tokens; batch_tokens 32 cuts most requests into pieces
LIMITS = Limits(max_body_bytes=4096, max_texts=8, max_chars=200, max_tokens=300, max_batch=16, batch_tokens=32,
                wait_ms=5)


@pytest.fixture(scope="module")
def server(runs):
    models = load_models([str(runs["single"]), f"pairs={runs['pairs']}"])
    with running_server(build_app(models, LIMITS, TOKEN)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        yield c


def _error(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and body["message"], body
    return body


def test_predict_answers_like_the_python_predictor_in_input_order(client, runs):
    texts = [r["text"] for r in make_rows(7, seed=11)]
    r = client.post("/predict", json={"texts": texts})
    assert r.status_code == 200, r.text
    expected = enctune.load(runs["single"]).predict(texts)
    got = r.json()
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g.keys() == e.keys()
        assert g["probabilities"] == pytest.approx(e["probabilities"], abs=1e-6)
    one = client.post("/predict", json={"text": texts[3]})
    assert one.status_code == 200 and one.json()[0]["label"] == expected[3]["label"] and len(one.json()) == 1


def test_named_pair_model_needs_pairs_and_answers_them(client, runs):
    rows = make_rows(4, seed=12)
    texts, pairs = [r["text"] for r in rows], [r["text"] for r in rows[::-1]]
    r = client.post("/models/pairs/predict", json={"texts": texts, "text_pairs": pairs})
    assert r.status_code == 200, r.text
    expected = enctune.load(runs["pairs"]).predict(texts, pairs)
    assert [g["label"] for g in r.json()] == [e["label"] for e in expected]
    r = client.post("/models/pairs/predict", json={"text": texts[0], "text_pair": pairs[0]})
    assert r.json()[0]["label"] == expected[0]["label"]
    _error(client.post("/models/pairs/predict", json={"texts": texts}), 422, "missing_pairs")
    _error(client.post("/models/pairs/predict", json={"texts": texts, "text_pairs": pairs[:2]}), 422, "pair_count")
    _error(client.post("/predict", json={"texts": texts, "text_pairs": pairs}), 422, "unexpected_pairs")
    _error(client.post("/models/nope/predict", json={"texts": texts}), 404, "unknown_model")


def test_health_ready_info_models_and_openapi(client, server):
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}  # open: no token needed
    ready = httpx.get(f"{server}/ready")
    assert ready.status_code == 200 and ready.json()["models"] == ["sentiment", "pairs"]
    info = client.get("/info").json()
    assert info["name"] == "sentiment" and info["task"] == "classify"
    assert info["labels"] == ["negative", "positive"] and info["takes_pairs"] is False
    assert info["encoder"]["pooling"] == "mean" and info["runtime"] == "pytorch"
    assert info["metrics"]["validation"]["accuracy"] >= 0.8
    assert info["limits"] == {"max_body_bytes": 4096, "max_texts": 8, "max_chars": 200, "max_tokens": 300}
    assert info["batching"]["batch_tokens"] == 32 and info["batching"]["max_batch"] == 16
    assert client.get("/models/pairs/info").json()["takes_pairs"] is True
    assert [m["name"] for m in client.get("/models").json()["models"]] == ["sentiment", "pairs"]
    schema = httpx.get(f"{server}/openapi.json").json()
    assert {"/predict", "/health", "/ready", "/info", "/models/{name}/predict"} <= set(schema["paths"])


def test_token_is_required_and_checked(server):
    body = {"texts": ["good film"]}
    _error(httpx.post(f"{server}/predict", json=body), 401, "unauthorized")
    r = httpx.post(f"{server}/predict", json=body, headers={"Authorization": "Bearer wrong"})
    _error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    _error(httpx.get(f"{server}/info"), 401, "unauthorized")
    ok = httpx.post(f"{server}/predict", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_limits_answer_4xx_json(client):
    _error(client.post("/predict", json={"texts": ["good"] * 9}), 413, "too_many_texts")
    _error(client.post("/predict", json={"texts": ["good", "a" * 201]}), 413, "text_too_long")
    _error(client.post("/models/pairs/predict", json={"text": "good", "text_pair": "b" * 201}), 413, "text_too_long")
    big = json.dumps({"texts": ["x" * 150] * 30})  # > 4096 bytes
    _error(client.post("/predict", content=big, headers={"Content-Type": "application/json"}), 413,
           "body_too_large")

    def chunks():  # no Content-Length: the limit counts the streamed bytes
        for _ in range(10):
            yield b" " * 1000

    _error(client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"}), 413,
           "body_too_large")
    assert client.post("/predict", json={"texts": ["good"] * 8}).status_code == 200  # at the limit: fine
    over = _error(client.post("/predict", json={"texts": ["good film " * 20] * 8}), 413, "too_many_tokens")
    assert "512 tokens" in over["message"] and "--max-tokens" in over["message"]


@pytest.mark.parametrize("body, status, code", [
    (b'{"texts": ["good"', 400, "malformed_json"),
    (b"not json at all", 400, "malformed_json"),
    (b'{"texts": "good"}', 422, "invalid_request"),
    (b'{"texts": [1, 2]}', 422, "invalid_request"),
    (b'{"texts": [["nested"]]}', 422, "invalid_request"),
    (b'{"text": null}', 422, "missing_texts"),
    (b'{"texts": []}', 422, "empty_texts"),
    (b'{}', 422, "missing_texts"),
    (b'[]', 422, "invalid_request"),
    (b'{"texts": ["a"], "labels": ["x"]}', 422, "invalid_request"),
    (b'{"texts": ["a"], "text": "b"}', 422, "ambiguous_input"),
])
def test_bad_requests_get_clear_errors(client, body, status, code):
    _error(client.post("/predict", content=body, headers={"Content-Type": "application/json"}), status, code)


@pytest.mark.parametrize("body, content_type, status, code", [
    (b"not json at all", None, 400, "malformed_json"),
    (b"not json at all", "text/plain", 400, "malformed_json"),
    (b'{"texts": ["good"', None, 400, "malformed_json"),
    (b'{"text": "\xff"}', "application/json", 400, "malformed_json"),
    (b'{"text": "caf\xe9"}', None, 400, "malformed_json"),
    (b"", "application/json", 400, "malformed_json"),
    (b"[" * 3000, "application/json", 400, "malformed_json"),
    (b'{"texts": ["good"]}', None, 415, "unsupported_media_type"),
    (b'{"texts": ["good"]}', "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    (b'{"text": "a \\ud800 b"}', "application/json", 422, "invalid_text"),
    (b'{"texts": ["good", "a \xed\xa0\x80 b"]}', "application/json", 422, "invalid_text"),
])
def test_bodies_that_are_not_json_or_not_unicode_get_4xx(client, body, content_type, status, code):
    """Whatever the Content-Type says, a body that is not JSON is 400 malformed_json; JSON under another type is
    415 and says which header to send; a lone surrogate (escaped, or as raw bytes) is 422 naming the text."""
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post("/predict", content=body, headers=headers)
    err = _error(r, status, code)
    if content_type != "application/json" and status != 422:
        assert "Content-Type: application/json" in err["message"]
    if code == "invalid_text":
        assert "unpaired surrogate (U+D800)" in err["message"] and err["message"].startswith(("text ", "texts[1]"))


def test_nul_controls_and_a_bom_are_predicted_like_any_text(client, runs):
    texts = ["a\x00b good", "\x01\x1f\x7f", "\ufeffgreat", "line\u2028break", "\U0001F600 superb", ""]
    r = client.post("/predict", json={"texts": texts})
    assert r.status_code == 200, r.text
    assert [g["label"] for g in r.json()] == [e["label"] for e in enctune.load(runs["single"]).predict(texts)]
    bom = client.post("/predict", content=b'\xef\xbb\xbf{"text": "good"}', headers={"Content-Type": "application/json"})
    assert bom.status_code == 200, bom.text


def test_the_python_predictor_refuses_a_lone_surrogate_naming_its_index(runs):
    model = enctune.load(runs["single"])
    with pytest.raises(enctune.UserError, match=r"texts\[1\] is not valid Unicode text: it holds an unpaired"):
        model.predict(["good", "a \ud800 b"])
    with pytest.raises(enctune.UserError, match=r"text_pairs\[0\] .* byte 0xFF"):
        enctune.load(runs["pairs"]).predict(["good"], ["\udcff"])


def _send_all(url: str, bodies: list[bytes], token: str | None = TOKEN) -> list[httpx.Response]:
    """Every body at once, each on its own connection (so they meet in the server's batcher)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}

    def send(body):
        return httpx.post(f"{url}/predict", content=body, headers=headers, timeout=60)

    with cf.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def _same_predictions(got: list[dict], expected: list[dict]) -> None:
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g["probabilities"] == pytest.approx(e["probabilities"], abs=1e-5)


def test_good_requests_sent_beside_bad_ones_each_get_their_own_answer(server, runs):
    """40 good requests and 4 with a lone surrogate, all at once: every good one is answered as the Python
    predictor answers its texts; each bad one gets a 422 naming its own bad text."""
    rows = [r["text"] for r in make_rows(80, seed=21)]
    good = [rows[2 * i:2 * i + 2] for i in range(40)]
    bad = [["good", "a \ud800 b"], ["\udcff"], ["fine", "ok", "x\udfff"], ["\ud83d alone"]]
    bodies = [json.dumps({"texts": t}).encode() for t in good + bad]
    responses = _send_all(server, bodies)
    model = enctune.load(runs["single"])
    for texts, r in zip(good, responses[:40], strict=True):
        assert r.status_code == 200, r.text
        _same_predictions(r.json(), model.predict(texts))
    for texts, r in zip(bad, responses[40:], strict=True):
        bad_at = next(i for i, t in enumerate(texts) if not valid_unicode(t))
        assert _error(r, 422, "invalid_text")["message"].startswith(f"texts[{bad_at}] is not valid Unicode text")


class Breaking:
    """A real predictor that fails, as a tokenizer crash would, on any call holding the text 'boom' (a
    fault the edge checks cannot foresee); its message holds a path the client must not see."""

    def __init__(self, real):
        self.real, self.meta, self.task, self.labels = real, real.meta, real.task, real.labels

    def predict(self, texts, pairs=None):
        if any("boom" in t for t in texts):
            raise RuntimeError("tokenizer crashed reading /srv/private/vocab.txt")
        return self.real.predict(texts, pairs)


def test_a_model_failure_fails_only_its_own_request_and_hides_its_details(runs, capfd):
    """Requests gathered into one model call with a failing one: only that one gets a 500, whose body holds an
    id and no internals; the details go to the server's stderr under that id."""
    real = enctune.load(runs["single"])
    models = [ServedModel("breaking", Breaking(real), str(runs["single"]))]
    rows = [r["text"] for r in make_rows(40, seed=22)]
    good = [[t] for t in rows]
    bad = [["boom"], ["good", "boom"], ["boom film"]]
    limits = Limits(max_batch=64, batch_tokens=4096, wait_ms=300)  # all 43 requests share the first call
    with running_server(build_app(models, limits)) as url:
        responses = _send_all(url, [json.dumps({"texts": t}).encode() for t in good + bad], token=None)
    for texts, r in zip(good, responses[:40], strict=True):
        assert r.status_code == 200, r.text
        _same_predictions(r.json(), real.predict(texts))
    log = capfd.readouterr().err
    for r in responses[40:]:
        err = _error(r, 500, "internal_error")
        assert "private" not in r.text and "RuntimeError" not in r.text
        error_id = err["message"].split("error id ")[1].split(")")[0]
        assert f"internal error {error_id}" in log and "/srv/private/vocab.txt" in log


class Slow:
    """A fake model that takes 10 ms per model call and answers each text with its own length."""

    def __init__(self):
        self.meta = {"max_length": 64, "columns": {}}
        self.task, self.labels, self.calls = type("T", (), {"name": "regress"})(), [], []

    def predict(self, texts, pairs=None):
        self.calls.append(list(texts))
        time.sleep(0.01)
        return [{"value": len(t)} for t in texts]


def test_a_small_request_is_answered_while_a_large_one_is_still_running():
    """One client sends 64 texts of 64 tokens (64 model calls of 10 ms with a 64-token budget); a one-text
    request sent once the large one has started is answered before the large one, in a call of its own."""
    model = Slow()
    limits = Limits(max_texts=64, max_tokens=64 * 64, batch_tokens=64, wait_ms=0)
    large_texts = [f"{i:03d}" + "x" * 300 for i in range(64)]
    with running_server(build_app([ServedModel("slow", model, "/nonexistent")], limits)) as url, \
            cf.ThreadPoolExecutor(2) as pool:
        large = pool.submit(httpx.post, f"{url}/predict", json={"texts": large_texts}, timeout=60)
        while len(model.calls) < 2:  # the warm-up call, then the first piece of the large request
            time.sleep(0.002)
        small = httpx.post(f"{url}/predict", json={"text": "hi"}, timeout=60)
        small_done, large_running = time.monotonic(), not large.done()
        assert large.result().json() == [{"value": 303}] * 64
    assert small.json() == [{"value": 2}] and large_running, small_done
    served = model.calls[1:]  # after the warm-up call
    assert all(len(call) == 1 for call in served)  # never more than one long text a call (64-token budget)
    small_at = served.index(["hi"])  # the small text had a call of its own...
    assert 0 < small_at < len(served) - 1  # ...after the large request's first piece and before its last


def test_info_keeps_the_loaded_runs_metrics_and_shows_no_server_path(runs, tmp_path, tiny_bert):
    """/info describes the model being served: after a new run overwrites the folder's metrics.json, it still
    shows the scores read at load time. The base model (a folder here) is shown by its name only."""
    folder = tmp_path / "run"
    shutil.copytree(runs["single"], folder)
    (served,) = load_models([str(folder)])
    before = served.info()
    assert before["metrics"]["validation"]["accuracy"] >= 0.8
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["validation"]["accuracy"] = 0.123
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert served.info()["metrics"] == before["metrics"]
    shown = json.dumps(before)
    assert before["encoder"]["base_model"] == tiny_bert.name and str(tiny_bert) not in shown
    assert str(tmp_path) not in shown


@pytest.mark.parametrize("args, env", [(["--token", ""], {}), ([], {"ENCTUNE_TOKEN": ""}),
                                       (["--token", "has space"], {})])
def test_cli_serve_refuses_a_token_that_would_not_protect(runs, monkeypatch, capsys, args, env):
    """An empty token (flag or variable) used to serve without authentication; now it is an error, before
    anything is loaded or bound."""
    import uvicorn

    from enctune.cli import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))
    assert main(["serve", str(runs["single"]), *args]) == 2
    assert "error: serve: the token" in capsys.readouterr().err


def test_cli_predict_with_an_argument_that_is_not_utf8_exits_2_without_a_traceback(runs):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "enctune", "predict", str(runs["single"]), b"good", b"caf\xe9"],
                       env=env, capture_output=True, timeout=120)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2 and "Traceback" not in err, err
    assert err.startswith("error: texts[1] is not valid Unicode text") and "byte 0xE9" in err


@given(texts=st.lists(hostile_text(long=250), min_size=1, max_size=9), raw=st.booleans())
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_hostile_texts_get_the_predictors_answer_or_a_4xx_naming_the_text(client, runs, texts, raw):
    """Any texts, sent escaped (``\\ud800``) or as raw bytes (surrogates as ED A0 80): never a 5xx; a request
    within the limits whose texts are all valid Unicode gets the Python predictor's answer; otherwise the
    first text at fault is named."""
    body = json.dumps({"texts": texts}, ensure_ascii=not raw).encode("utf-8", "surrogatepass")
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    expected = _expected_status(texts, runs)
    assert r.status_code == expected[0], (texts, r.text)
    if expected[0] == 200:
        _same_predictions(r.json(), enctune.load(runs["single"]).predict(texts))
    else:
        assert r.json()["error"] == expected[1] and r.json()["message"].startswith(expected[2]), r.text


def _expected_status(texts: list[str], runs) -> tuple[int, str | None, str]:
    if len(texts) > LIMITS.max_texts:
        return 413, "too_many_texts", f"{len(texts)} texts"
    for i, t in enumerate(texts):
        if len(t) > LIMITS.max_chars:
            return 413, "text_too_long", f"texts[{i}]"
        if not valid_unicode(t):
            return 422, "invalid_text", f"texts[{i}]"
    tokens = sum(estimate_tokens(len(t.encode()), None, 64) for t in texts)  # the tiny model reads 64 at most
    if tokens > LIMITS.max_tokens:
        return 413, "too_many_tokens", "the request holds"
    return 200, None, ""


def test_unknown_route_and_method_are_json(client):
    _error(client.get("/nope"), 404, "not_found")
    _error(client.get("/predict"), 405, "method_not_allowed")


def test_concurrent_requests_each_get_their_own_answers_in_order(client, runs):
    """Requests batched together come back apart: every request gets its own texts' labels, in order (that
    batching really gathers requests is the next test's)."""
    texts = [r["text"] for r in make_rows(48, seed=13)]
    expected = [p["label"] for p in enctune.load(runs["single"]).predict(texts)]
    groups = [texts[i:i + 3] for i in range(0, len(texts), 3)]  # 16 requests of 3 texts

    def send(group):
        return client.post("/predict", json={"texts": group}).json()

    with cf.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, groups))
    assert [len(ans) for ans in answers] == [3] * len(groups)
    assert [a["label"] for ans in answers for a in ans] == expected


def test_a_wait_window_gathers_concurrent_requests_into_few_model_calls(runs):
    """With a 300 ms window, 16 requests sent at once share model calls: without micro-batching there
    would be one call per request."""
    models = load_models([str(runs["single"])])
    limits = Limits(max_body_bytes=4096, max_texts=8, max_chars=200, max_batch=64, wait_ms=300)
    texts = [r["text"] for r in make_rows(48, seed=13)]
    groups = [texts[i:i + 3] for i in range(0, len(texts), 3)]
    with running_server(build_app(models, limits, TOKEN)) as url, \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        before = c.get("/info").json()["batching"]["model_calls"]
        with cf.ThreadPoolExecutor(len(groups)) as pool:
            answers = list(pool.map(lambda g: c.post("/predict", json={"texts": g}).json(), groups))
        calls = c.get("/info").json()["batching"]["model_calls"] - before
    assert [len(a) for a in answers] == [3] * len(groups)
    assert calls < len(groups) / 2  # one call per request (16) without micro-batching


def test_duplicate_names_and_bad_names_are_user_errors(runs):
    models = [ServedModel("a", enctune.load(runs["single"]), str(runs["single"]))] * 2
    with pytest.raises(enctune.UserError, match="share a name"):
        build_app(models)
    with pytest.raises(enctune.UserError, match="NAME=FOLDER"):
        parse_specs(["bad name=/x"])
    assert parse_specs([str(runs["single"] / "model")]) == [("sentiment", str(runs["single"] / "model"))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_binds_loopback_with_a_token_from_the_environment(runs):
    port = _free_port()
    env = {**os.environ, "ENCTUNE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "enctune", "serve", str(runs["single"]), "--port", str(port),
                             "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        assert httpx.post(f"{url}/predict", json={"text": "good"}).status_code == 401
        r = httpx.post(f"{url}/predict", json={"text": "great superb"}, headers={"Authorization": f"Bearer {TOKEN}"})
        expected = enctune.load(runs["single"]).predict(["great superb"])[0]["label"]
        assert r.status_code == 200 and r.json()[0]["label"] == expected
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_serve_with_a_missing_folder_exits_2(tmp_path, capsys):
    from enctune.cli import main

    assert main(["serve", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


# ---- the OpenAPI schema, fuzzed: whatever schemathesis sends, the server answers without a 5xx ----------
# Schemathesis never generates lone surrogates (it must encode what it sends) nor bodies that are not UTF-8;
# every POST case is therefore also sent poisoned: a hostile piece put into each of its strings, escaped and
# as raw bytes, and once with a byte that is not UTF-8 inside. Most generated bodies are refused before any
# text is read (they give two of text/texts/questions, or pairs to a single-text model), so each is also
# sent cut down to its first text field, which makes a request that reaches the model.


def _cut_down(body):
    """``body`` with only its first non-empty text field (at most ``max_texts`` texts), or None."""
    if not isinstance(body, dict):
        return None
    for name in ("texts", "text", "questions", "question"):
        value = body.get(name)
        if isinstance(value, str) or (isinstance(value, list) and value):
            return {name: value[:LIMITS.max_texts] if isinstance(value, list) else value}
    return None


def _poison(value, piece: str):
    if isinstance(value, str):
        return value[:len(value) // 2] + piece + value[len(value) // 2:]
    if isinstance(value, list):
        return [_poison(v, piece) for v in value]
    if isinstance(value, dict):
        return {k: _poison(v, piece) for k, v in value.items()}
    return value


def _poisoned_bodies(body, piece: str) -> list[bytes]:
    if isinstance(body, bytes | bytearray):  # negative cases: a body that is not JSON at all
        mid = len(body) // 2
        return [body[:mid] + piece.encode("utf-8", "surrogatepass") + body[mid:], body[:mid] + b"\xff" + body[mid:]]
    bad = _poison(body, piece)
    escaped = json.dumps(bad).encode()
    raw = json.dumps(bad, ensure_ascii=False).encode("utf-8", "surrogatepass")
    cut = escaped.find(b'"') + 1
    return [escaped, raw, escaped[:cut] + b"\xff" + escaped[cut:]]


def _send_poisoned(case, server: str, headers: dict, piece: str) -> None:
    from schemathesis.core import NotSet

    if case.method.upper() != "POST" or isinstance(case.body, NotSet):
        return
    url = server + case.formatted_path
    variants = [case.body] + ([cut] if (cut := _cut_down(case.body)) is not None else [])
    for body in (b for v in variants for b in _poisoned_bodies(v, piece)):
        r = httpx.post(url, content=body, headers={**headers, "Content-Type": "application/json"}, timeout=60)
        assert r.status_code < 500, (url, body[:300], r.text)
        assert r.status_code == 200 or r.json()["error"], r.text


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_openapi_fuzzing_finds_no_server_error(server, mode):
    """Every operation of /openapi.json, with cases that fit the schema and cases that break it, each also
    poisoned with lone surrogates, NUL, long strings and a byte that is not UTF-8."""
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    seen: dict[str, int] = {}
    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)),
               piece=st.sampled_from(HOSTILE + ["y" * 5000]))
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case, piece):
            for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):  # with and without the token
                response = case.call(base_url=server, headers=headers)
                assert response.status_code < 500, (case.method, case.path, case.body, response.text)
                case.validate_response(response, checks=[not_a_server_error], headers=headers)
            _send_poisoned(case, server, {"Authorization": f"Bearer {TOKEN}"}, piece)
            key = f"{case.method} {case.operation.path}"
            seen[key] = seen.get(key, 0) + 1

        try:
            check()
        except Unsatisfiable:  # negative cases need an input to break: GET /health has none
            assert mode == "negative" and operation.method.upper() == "GET" and "{" not in operation.path
    expected = {"POST /predict", "POST /models/{name}/predict", "GET /models/{name}/info"}
    if mode == "positive":
        expected |= {"GET /health", "GET /ready", "GET /info", "GET /models"}
    assert expected <= set(seen), seen  # every operation that can be exercised was


def test_docs_render_from_the_servers_own_assets(server):
    page = httpx.get(f"{server}/docs", timeout=30)
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert httpx.get(f"{server}/docs-assets/swagger-ui.css", timeout=30).status_code == 200
    assert "/predict" in httpx.get(f"{server}/openapi.json", timeout=30).json()["paths"]
