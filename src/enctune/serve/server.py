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
- ``GET /openapi.json`` and ``/docs``.

Limits, each a 4xx: a body over ``max_body_bytes`` (413), malformed JSON (400), wrong
types, unknown fields or an empty list (422), more than ``max_texts`` texts (413) or a text
over ``max_chars`` characters (413). With a token, ``/predict``, ``/info`` and ``/models``
need ``Authorization: Bearer <token>`` (401 otherwise); ``/health`` and ``/ready`` stay open.

Concurrent requests are micro-batched per model (``MicroBatcher``).

Nothing here imports torch: an exported ONNX folder is served without it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from ..errors import UserError
from .batcher import MicroBatcher


@dataclass
class Limits:
    max_body_bytes: int = 1 << 20
    max_texts: int = 256
    max_chars: int = 10_000
    max_batch: int = 64  # most texts in one model call across requests
    wait_ms: float = 5.0  # how long the first request of a batch waits for others


@dataclass
class ServedModel:
    """A loaded predictor under a name, with what ``/info`` tells about it."""

    name: str
    predictor: Any  # Predictor or OnnxPredictor: predict(texts, pairs) -> list[dict]
    folder: str
    batcher: MicroBatcher | None = None
    warm: bool = False
    extra_info: dict = field(default_factory=dict)

    @property
    def takes_pairs(self) -> bool:
        return bool(self.predictor.meta.get("columns", {}).get("pair"))

    def info(self) -> dict:
        meta = self.predictor.meta
        return {
            "name": self.name,
            "task": self.predictor.task.name,
            "labels": list(self.predictor.labels),
            "takes_pairs": self.takes_pairs,
            "encoder": {"base_model": meta.get("base_model"), "pooling": meta.get("pooling"),
                        "max_length": meta.get("max_length")},
            "strategy": meta.get("strategy"),
            "runtime": getattr(self.predictor, "runtime", "pytorch"),
            "precision": getattr(self.predictor, "precision", None),
            "metrics": run_metrics(self.folder),
            **self.extra_info,
        }


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


class PredictRequest(BaseModel):
    """One text (``text``) or several (``texts``); pairs likewise (``text_pair`` / ``text_pairs``)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] | None = Field(None, description="Texts to predict, answered in this order.")
    text: str | None = Field(None, description="One text (instead of texts).")
    text_pairs: list[str] | None = Field(None, description="Second texts, one per text (pair models).")
    text_pair: str | None = Field(None, description="The second text for `text` (pair models).")
    questions: list[str] | None = Field(None, description="Another name for texts (extractive models).")
    question: str | None = Field(None, description="Another name for text.")
    contexts: list[str] | None = Field(None, description="Another name for text_pairs (extractive models).")
    context: str | None = Field(None, description="Another name for text_pair.")


# (list field, single field) for the first and the second text of each item
FIRST = (("texts", "text"), ("questions", "question"))
SECOND = (("text_pairs", "text_pair"), ("contexts", "context"))


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _pick(req: PredictRequest, names, what: str) -> list[str] | None:
    """The one list given under any of ``names`` (a single string becomes a list of one)."""
    given = [(n, getattr(req, n)) for pair in names for n in pair if getattr(req, n) is not None]
    if len(given) > 1:
        raise ApiError(422, "ambiguous_input", f"give {what} once: got {', '.join(n for n, _ in given)}.")
    if not given:
        return None
    name, value = given[0]
    return [value] if isinstance(value, str) else value


def parse_request(req: PredictRequest, model: ServedModel, limits: Limits) -> tuple[list[str], list[str] | None]:
    texts = _pick(req, FIRST, "the texts")
    pairs = _pick(req, SECOND, "the text pairs")
    if texts is None:
        raise ApiError(422, "missing_texts", 'nothing to predict: give "texts": [...] or "text": "...".')
    if not texts:
        raise ApiError(422, "empty_texts", '"texts" is an empty list: give at least one text.')
    if len(texts) > limits.max_texts:
        raise ApiError(413, "too_many_texts", f"{len(texts)} texts in one request; the limit is {limits.max_texts} "
                                              "(split the request, or restart the server with a higher --max-texts).")
    if model.takes_pairs and pairs is None:
        raise ApiError(422, "missing_pairs", f"model '{model.name}' was trained on text pairs: give \"text_pairs\" "
                                             "(one per text) as well.")
    if not model.takes_pairs and pairs is not None:
        raise ApiError(422, "unexpected_pairs", f"model '{model.name}' takes single texts, not pairs: "
                                                "leave out text_pairs.")
    if pairs is not None and len(pairs) != len(texts):
        raise ApiError(422, "pair_count", f"{len(texts)} texts but {len(pairs)} text pairs; give one pair per text.")
    for kind, values in (("texts", texts), ("text_pairs", pairs or [])):
        for i, t in enumerate(values):
            if len(t) > limits.max_chars:
                raise ApiError(413, "text_too_long", f"{kind}[{i}] has {len(t)} characters; the limit is "
                                                     f"{limits.max_chars} (--max-chars).")
    return texts, pairs


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


def build_app(models: list[ServedModel], limits: Limits | None = None, token: str | None = None) -> FastAPI:
    if not models:
        raise UserError("serve: no model folder given.")
    limits = limits or Limits()
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise UserError(f"serve: two model folders share a name ({', '.join(names)}); name them with NAME=FOLDER.")
    by_name = {m.name: m for m in models}
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app):
        for m in models:
            m.batcher = MicroBatcher(m.predictor.predict, limits.max_batch, limits.wait_ms)
            m.batcher.start()
            # warm-up: the first call pays for lazy initialisation, not the first client
            await m.batcher.submit(["warm up"], ["warm up"] if m.takes_pairs else None)
            m.warm = True
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            for m in models:
                await m.batcher.stop()

    app = FastAPI(title="enctune", description="Predictions from enctune model folders.", lifespan=lifespan)
    bearer = HTTPBearer(auto_error=False, description="Needed when the server was started with a token.")

    def check_token(cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        if cred is None or not hmac.compare_digest(cred.credentials.encode(), token.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer <token>).")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return _error(e.status, e.code, e.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        errors = e.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return _error(400, "malformed_json", "the request body is not valid JSON.")
        parts = []
        for err in errors[:5]:
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error(422, "invalid_request", "; ".join(parts) + ". Expected {\"texts\": [\"...\"]} or "
                                                                  "{\"text\": \"...\"}.")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, e: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        return _error(e.status_code, code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        return _error(500, "internal_error", f"{type(e).__name__}: {e}")

    def find(name: str) -> ServedModel:
        if name not in by_name:
            raise ApiError(404, "unknown_model", f"no model '{name}'; served: {', '.join(names)}.")
        return by_name[name]

    async def run_predict(model: ServedModel, req: PredictRequest) -> list:
        if not state["ready"]:
            raise ApiError(503, "not_ready", "the server is still starting; retry shortly.")
        texts, pairs = parse_request(req, model, limits)
        try:
            return await model.batcher.submit(texts, pairs)
        except UserError as e:
            raise ApiError(422, "invalid_input", e.message) from None
        except asyncio.CancelledError:
            raise

    def info(model: ServedModel) -> dict:
        return {**model.info(), "batching": {"max_batch": limits.max_batch, "wait_ms": limits.wait_ms,
                                             "model_calls": model.batcher.batches if model.batcher else 0,
                                             "texts_predicted": model.batcher.items if model.batcher else 0},
                "limits": {"max_body_bytes": limits.max_body_bytes, "max_texts": limits.max_texts,
                           "max_chars": limits.max_chars}}

    auth = [Depends(check_token)]

    @app.get("/health", summary="The process is up.")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", summary="Models loaded and warmed up.", responses={503: {"description": "Not ready yet."}})
    async def ready():
        if state["ready"]:
            return {"status": "ready", "models": names}
        return _error(503, "not_ready", "loading or warming up the models.")

    @app.post("/predict", dependencies=auth, summary=f"Predict with the first model ('{names[0]}').")
    async def predict(req: PredictRequest) -> list[dict[str, Any]]:
        return await run_predict(models[0], req)

    @app.get("/info", dependencies=auth, summary=f"About the first model ('{names[0]}').")
    async def info_default() -> dict[str, Any]:
        return info(models[0])

    @app.get("/models", dependencies=auth, summary="The served models.")
    async def list_models() -> dict[str, Any]:
        return {"default": names[0], "models": [{"name": m.name, "task": m.predictor.task.name} for m in models]}

    @app.post("/models/{name}/predict", dependencies=auth, summary="Predict with the model NAME.")
    async def predict_named(name: str, req: PredictRequest) -> list[dict[str, Any]]:
        return await run_predict(find(name), req)

    @app.get("/models/{name}/info", dependencies=auth, summary="About the model NAME.")
    async def info_named(name: str) -> dict[str, Any]:
        return info(find(name))

    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    return app


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
    from .loading import load

    return [ServedModel(name, load(folder, precision=precision), folder) for name, folder in parse_specs(specs)]
