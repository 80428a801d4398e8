"""``enctune serve``: a real HTTP client against a running uvicorn server on a tiny model."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import random
import socket
import subprocess
import sys
import time

import httpx
import pytest

import enctune
from enctune.serve.server import Limits, ServedModel, build_app, load_models, parse_specs

from .conftest import ROOT, make_rows, write_jsonl
from .serve_helpers import running_server, train_tiny

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


LIMITS = Limits(max_body_bytes=4096, max_texts=8, max_chars=200, max_batch=16, wait_ms=5)


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
    assert info["limits"] == {"max_body_bytes": 4096, "max_texts": 8, "max_chars": 200}
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


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_openapi_fuzzing_finds_no_server_error(server, mode):
    """Every operation of /openapi.json, with cases that fit the schema and cases that break it."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    seen: dict[str, int] = {}
    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):  # with and without the token
                response = case.call(base_url=server, headers=headers)
                assert response.status_code < 500, (case.method, case.path, case.body, response.text)
                case.validate_response(response, checks=[not_a_server_error], headers=headers)
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
