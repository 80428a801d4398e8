"""The HTTP server: ``enctune serve`` (FastAPI), a thin shell over loaded predictors.

Routes (every error is JSON: ``{"error": code, "message": text}``):

- ``POST /predict``: ``{"texts": [...]}`` or ``{"text": "..."}``, with ``text_pairs`` /
  ``text_pair`` for pair models (``questions``/``contexts`` are accepted as another name for
  texts/pairs, for extractive models). Answers a JSON list, one item per text in input
  order, each exactly what the model's ``predict`` returns (``enctune predict --json``).
- ``GET /health`` (the process is up), ``GET /ready`` (models loaded, warmed up and the
  batchers running; 503 otherwise), ``GET /info`` (task, labels, encoder, runtime, run
  metrics, limits), ``GET /models``; ``/models/{name}/predict`` and ``/models/{name}/info``
  for each served folder (``/predict`` and ``/info`` use the first one).
- With ``--index``: ``POST /search`` and ``POST /embed`` (``search_routes.py``).
- ``GET /openapi.json`` and ``/docs`` (its assets served from ``/docs-assets``: no CDN, ``docs.py``).

Limits, each a 4xx: a body over ``max_body_bytes`` (413); a body that is not JSON, not
UTF-8 or nested too deeply (400 ``malformed_json``, whatever the Content-Type says); JSON
sent without ``Content-Type: application/json`` (415); wrong types, unknown fields or an
empty list (422); a text that is not valid Unicode (422 ``invalid_text``, naming it);
more than ``max_texts`` texts, a text over ``max_chars`` characters or more than
``max_tokens`` tokens in all (413). With a token, ``/predict``, ``/info`` and ``/models``
need ``Authorization: Bearer <token>`` (401 otherwise); ``/health`` and ``/ready`` stay open.
A failure inside the server is a 500 ``internal_error`` whose message holds only an id; the
details go to the server's stderr under that id.

Cost: a request is priced in tokens without tokenizing it (``inputs.estimate_tokens``:
UTF-8 bytes / 3 plus the special tokens, at most the model's ``max_length`` per text), so
its price is known before it is queued. Concurrent requests are micro-batched per model
(``MicroBatcher``) into calls of at most ``batch_tokens`` tokens: a large request runs in
pieces, and a small one that arrives meanwhile runs in the next call.

Nothing here imports torch: an exported ONNX folder is served without it.
"""

from __future__ import annotations

import hmac
import json
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from ..errors import UserError
from .batcher import MicroBatcher
from .docs import add_offline_docs
from .inputs import estimate_tokens
from .loading import load
from .request import ApiError, PredictRequest, describe_errors, internal_error, parse_body, parse_request
from .search_routes import SearchService, add_search_routes


@dataclass
class Limits:
    max_body_bytes: int = 1 << 20
    max_texts: int = 256
    max_chars: int = 10_000
    max_tokens: int = 16_384  # most (estimated) tokens in one request
    max_batch: int = 64  # most texts in one model call across requests
    batch_tokens: int = 256  # most (estimated) tokens in one model call across requests
    wait_ms: float = 5.0  # how long the first request of a batch waits for others


# Defaults, measured with the default encoder (MiniLM-L6, fp32) on the 2 shared CPU cores of
# the development machine (~4,300 tokens/s in batches): a request of max_tokens (64 texts
# of the full 256 tokens; or 256 SST-2 sentences, ~36 estimated tokens each, 9,200 in
# all) is ~4 s of model time; a call of batch_tokens (one text of 256 tokens) 70-80 ms,
# the most a small request waits behind a large one (bench/results/serve-mixed: p99 of
# one-text requests 53 ms idle, 141 ms beside a client looping on maximum-size requests;
# 4.9 s when the large request ran as one call).


@dataclass
class ServedModel:
    """A loaded predictor under a name, with what ``/info`` tells about it."""

    name: str
    predictor: Any  # Predictor or OnnxPredictor: predict(texts, pairs) -> list[dict]
    folder: str
    batcher: MicroBatcher | None = None
    warm: bool = False
    extra_info: dict = field(default_factory=dict)

    def __post_init__(self):
        # read once, with the model: a new run written over the folder later must not show its scores
        # beside the old model's answers
        self.metrics = run_metrics(self.folder)

    @property
    def takes_pairs(self) -> bool:
        return bool(self.predictor.meta.get("columns", {}).get("pair"))

    @property
    def pairs_optional(self) -> bool:
        return bool(self.predictor.task.pairs_optional)

    def cost(self, text: bytes, pair: bytes | None) -> int:
        """The estimated tokens of one input (UTF-8 bytes of its text and its second text)."""
        meta = self.predictor.meta
        max_length = int(meta.get("max_length") or 512)
        if pair is not None and meta.get("pair_mode") == "bi":  # each text is encoded on its own
            return estimate_tokens(len(text), None, max_length) + estimate_tokens(len(pair), None, max_length)
        stride = getattr(self.predictor.task, "doc_stride", None)  # a task that reads long inputs in windows
        if stride is not None:
            stride = min(int(stride), max_length // 2)
        return estimate_tokens(len(text), None if pair is None else len(pair), max_length, stride)

    def info(self) -> dict:
        meta = self.predictor.meta
        return {
            "name": self.name,
            "task": self.predictor.task.name,
            "labels": list(self.predictor.labels),
            "takes_pairs": self.takes_pairs,
            "encoder": {"base_model": public_name(meta.get("base_model")), "pooling": meta.get("pooling"),
                        "max_length": meta.get("max_length")},
            "strategy": meta.get("strategy"),
            "runtime": getattr(self.predictor, "runtime", "pytorch"),
            "precision": getattr(self.predictor, "precision", None),
            "metrics": self.metrics,
            **self.extra_info,
        }


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def public_name(base_model) -> str | None:
    """The base model as a name the server may show: a hub id (``org/name``) or ``default`` as it is, a
    folder by its base name only: an absolute path would show the server's disk layout to every client."""
    if base_model is None:
        return None
    name = str(base_model)
    if HUB_ID.fullmatch(name) and not Path(name).exists():
        return name
    return Path(name.replace("\\", "/").rstrip("/")).name or None


def run_metrics(folder: str | Path) -> dict | None:
    """The scores of the run that wrote ``folder`` (its metrics.json, beside or above the model folder)."""
    p = Path(folder)
    for f in (p / "metrics.json", p.parent / "metrics.json"):
        if f.is_file():
            try:
                m = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                return None
            keep = ("task", "strategy", "primary_metric", "validation", "test")
            return {k: m[k] for k in keep if k in m}
    return None


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before the app reads it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = _error(413, "body_too_large", f"the request body is over {self.limit} bytes (--max-body-bytes).")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await too_big(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await too_big(scope, receive, send)
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def build_app(models: list[ServedModel], limits: Limits | None = None, token: str | None = None,
              searcher=None) -> FastAPI:
    """The app serving ``models``; with ``searcher`` (``enctune.search.Searcher``) also /search and /embed."""
    if not models:
        raise UserError("serve: no model folder given.")
    check_token_value(token)
    limits = limits or Limits()
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise UserError(f"serve: two model folders share a name ({', '.join(names)}); name them with NAME=FOLDER.")
    by_name = {m.name: m for m in models}
    state = {"ready": False}
    service = SearchService(searcher, limits) if searcher is not None else None

    @asynccontextmanager
    async def lifespan(app):
        for m in models:
            m.batcher = MicroBatcher(m.predictor.predict, limits.max_batch, limits.wait_ms, limits.batch_tokens)
            m.batcher.start()
            # warm-up: the first call pays for lazy initialisation, not the first client
            await m.batcher.submit(["warm up"], ["warm up"] if m.takes_pairs else None)
            m.warm = True
        if service is not None:
            await service.start()
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            for m in models:
                await m.batcher.stop()
            if service is not None:
                await service.stop()

    app = FastAPI(title="enctune", description="Predictions from enctune model folders.", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    add_offline_docs(app)  # /docs from the Swagger UI files fastapi-offline ships: it renders without a network
    bearer = HTTPBearer(auto_error=False, description="Needed when the server was started with a token.")

    def check_token(cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        if cred is None or not hmac.compare_digest(cred.credentials.encode(), token.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer <token>).")

    async def predict_request(request: Request) -> PredictRequest:
        return parse_body(await request.body(), request.headers.get("content-type"))

    _handlers(app)

    def find(name: str) -> ServedModel:
        if name not in by_name:
            raise ApiError(404, "unknown_model", f"no model '{name}'; served: {', '.join(names)}.")
        return by_name[name]

    async def run_predict(model: ServedModel, req: PredictRequest) -> list:
        if not state["ready"]:
            raise ApiError(503, "not_ready", "the server is still starting; retry shortly.")
        parsed = parse_request(req, model, limits)
        try:
            return await model.batcher.submit(parsed.texts, parsed.pairs, parsed.costs)
        except UserError as e:
            raise ApiError(422, "invalid_input", e.message) from None
        except Exception as e:
            raise internal_error(e, f"POST predict with model '{model.name}'") from None

    def info(model: ServedModel) -> dict:
        b = model.batcher
        return {**model.info(), "batching": {"max_batch": limits.max_batch, "batch_tokens": limits.batch_tokens,
                                             "wait_ms": limits.wait_ms, "model_calls": b.batches if b else 0,
                                             "texts_predicted": b.items if b else 0},
                "limits": {"max_body_bytes": limits.max_body_bytes, "max_texts": limits.max_texts,
                           "max_chars": limits.max_chars, "max_tokens": limits.max_tokens}}

    auth = [Depends(check_token)]
    body_doc = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": PredictRequest.model_json_schema()}}}}

    @app.get("/health", summary="The process is up.")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", summary="Models loaded and warmed up.", responses={503: {"description": "Not ready yet."}})
    async def ready():
        if state["ready"]:
            return {"status": "ready", "models": names}
        return _error(503, "not_ready", "loading or warming up the models.")

    @app.post("/predict", dependencies=auth, summary=f"Predict with the first model ('{names[0]}').",
              openapi_extra=body_doc)
    async def predict(req: PredictRequest = Depends(predict_request)) -> list[dict[str, Any]]:
        return await run_predict(models[0], req)

    @app.get("/info", dependencies=auth, summary=f"About the first model ('{names[0]}').")
    async def info_default() -> dict[str, Any]:
        return info(models[0])

    @app.get("/models", dependencies=auth, summary="The served models.")
    async def list_models() -> dict[str, Any]:
        return {"default": names[0], "models": [{"name": m.name, "task": m.predictor.task.name} for m in models]}

    @app.post("/models/{name}/predict", dependencies=auth, summary="Predict with the model NAME.",
              openapi_extra=body_doc)
    async def predict_named(name: str, req: PredictRequest = Depends(predict_request)) -> list[dict[str, Any]]:
        return await run_predict(find(name), req)

    @app.get("/models/{name}/info", dependencies=auth, summary="About the model NAME.")
    async def info_named(name: str) -> dict[str, Any]:
        return info(find(name))

    if service is not None:
        add_search_routes(app, service, limits, auth, lambda: state["ready"])
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    return app


def check_token_value(token: str | None) -> None:
    """A token must be something a client can send: not empty (that would serve without authentication while
    the operator meant to require it), visible ASCII only (an HTTP header carries no other reliably)."""
    if token is None:
        return
    if not token:
        raise UserError("serve: the token is empty (--token '' or ENCTUNE_TOKEN set to ''): give a real token, "
                        "or leave both out to serve without one.")
    if not all("!" <= c <= "~" for c in token):
        raise UserError("serve: the token holds spaces, control or non-ASCII characters, which an Authorization "
                        "header cannot carry reliably: use letters, digits and punctuation only.")


def _handlers(app: FastAPI) -> None:
    """Every error as ``{"error": code, "message": text}``."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return _error(e.status, e.code, e.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        return _error(422, "invalid_request", describe_errors(e.errors()))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, e: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        return _error(e.status_code, code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        err = internal_error(e, f"{request.method} {request.url.path}")
        return _error(err.status, err.code, err.message)


def parse_specs(specs: list[str]) -> list[tuple[str, str]]:
    """``FOLDER`` or ``NAME=FOLDER`` -> (name, folder); a bare folder is named after itself
    (after its run folder when it is a run's ``model/`` folder)."""
    out = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep:
            folder = spec
            p = Path(folder).resolve()
            name = p.parent.name if p.name == "model" and (p / "enctune.json").is_file() else p.name
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise UserError(f"serve: '{spec}': a model name is letters, digits, '-', '_' and '.'; "
                            "give NAME=FOLDER.")
        out.append((name, folder))
    return out


def load_models(specs: list[str], precision: str | None = None) -> list[ServedModel]:

    return [ServedModel(name, load(folder, precision=precision), folder) for name, folder in parse_specs(specs)]
