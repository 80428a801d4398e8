"""``enctune serve --index``: /search and /embed answer as `enctune search` does, under the server's guarantees
(token, limits, a bad text isolated to its own request, no 5xx)."""

from __future__ import annotations

import concurrent.futures as cf
import json

import httpx
import numpy as np
import pytest

import enctune
from enctune.serve.server import Limits, build_app, load_models

from .conftest import make_rows, write_jsonl
from .serve_helpers import running_server, train_tiny
from .test_search import DOCS

TOKEN = "search-token"
LIMITS = Limits(max_body_bytes=4096, max_texts=8, max_chars=200, max_tokens=300, max_batch=16, batch_tokens=32,
                wait_ms=5)


@pytest.fixture(scope="module")
def served(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-search")
    write_jsonl(root / "train.jsonl", make_rows(80, seed=1))
    train_tiny(tiny_bert, root / "train.jsonl", root / "run", epochs=1)
    write_jsonl(root / "docs.jsonl", DOCS)
    enctune.index(str(tiny_bert), str(root / "docs.jsonl"), str(root / "idx"))
    searcher = enctune.Searcher(root / "idx")
    with running_server(build_app(load_models([str(root / "run")]), LIMITS, TOKEN, searcher)) as url:
        yield url, searcher


def post(url, path, body, token=TOKEN):
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.post(f"{url}{path}", content=json.dumps(body).encode(), headers=headers, timeout=60)


def test_search_answers_as_the_searcher_does(served):
    url, searcher = served
    r = post(url, "/search", {"queries": [DOCS[2]["text"], "good film"], "top_k": 4})
    assert r.status_code == 200, r.text
    got = r.json()["results"]
    want, _ = searcher.search([DOCS[2]["text"], "good film"], 4)
    assert [[h["id"] for h in g["hits"]] for g in got] == [[h["id"] for h in w] for w in want]
    assert got[0]["hits"][0]["id"] == "d2" and got[0]["query"] == DOCS[2]["text"]
    one = post(url, "/search", {"query": "good film", "dims": 8}).json()["results"]
    assert len(one) == 1 and len(one[0]["hits"]) == 10


def test_embed_gives_the_index_encoders_unit_vectors(served):
    url, searcher = served
    r = post(url, "/embed", {"texts": [DOCS[0]["text"]]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dim"] == 32
    np.testing.assert_allclose(body["embeddings"][0], searcher.index.vectors[0], atol=1e-5)


@pytest.mark.parametrize("path, body, status, code", [
    ("/search", {"query": "x", "top_k": 0}, 422, "invalid_request"),
    ("/search", {"query": "x", "dims": 999}, 422, "invalid_input"),
    ("/search", {"query": "x", "text": "y"}, 422, "ambiguous_input"),
    ("/search", {"queries": ["a"] * 9}, 413, "too_many_texts"),
    ("/search", {"query": "x" * 201}, 413, "text_too_long"),
    ("/embed", {"texts": []}, 422, "empty_texts"),
    ("/embed", {"texts": ["a"], "top_k": 3}, 422, "invalid_request"),
])
def test_bad_requests_are_4xx_that_say_why(served, path, body, status, code):
    r = post(served[0], path, body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and r.json()["message"]


def test_the_token_guards_search_and_embed(served):
    for path in ("/search", "/embed"):
        assert post(served[0], path, {"text": "x"}, token=None).status_code == 401


def test_bad_texts_beside_good_requests_fail_alone(served):
    url, searcher = served
    good = [[DOCS[i]["text"]] for i in range(12)]
    bad = [["fine", "a \ud800 b"], ["\udcff"]]
    bodies = [json.dumps({"queries": q, "top_k": 3}).encode() for q in good + bad]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    with cf.ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: httpx.post(f"{url}/search", content=b, headers=headers, timeout=60),
                                  bodies))
    for i, r in enumerate(responses[:12]):
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["hits"][0]["id"] == f"d{i}"
    for r, at in zip(responses[12:], (1, 0), strict=True):
        assert r.status_code == 422 and r.json()["message"].startswith(f"queries[{at}] is not valid Unicode")
