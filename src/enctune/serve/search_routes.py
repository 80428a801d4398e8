"""``POST /search`` and ``POST /embed``, served beside ``/predict`` when ``enctune serve`` is given ``--index``.

- ``POST /search``: ``{"query": "..."}`` or ``{"queries": [...]}``, optionally ``"top_k"`` (10) and ``"dims"``
  (search on a Matryoshka prefix): ``{"results": [{"query", "hits": [{"id", "score", "text"}, ...]}, ...]}``.
- ``POST /embed``: ``{"texts": [...]}`` or ``{"text": "..."}``: ``{"dim", "embeddings": [[...], ...]}``, the
  vectors of the index's encoder (unit length, as the index holds them).

Both go through the server's guarantees: the same body checks, per-text checks and limits as ``/predict`` (a
bad text is a 4xx that names it and never reaches a model call), the same token, and a micro-batcher of
their own for the encoder's calls; ranking the index is one NumPy product per request, off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, Request
from pydantic import Field

from ..errors import UserError
from ..retrieval import normalised
from .batcher import MicroBatcher
from .inputs import estimate_tokens
from .request import ApiError, PredictRequest, internal_error, parse_body, parse_request


class SearchRequest(PredictRequest):
    """Queries (``queries``/``query``, or ``texts``/``text``), how many documents each, and an optional prefix."""

    queries: list[str] | None = Field(None, description="Queries, answered in this order.")
    query: str | None = Field(None, description="One query (instead of queries).")
    top_k: int = Field(10, ge=1, le=1000, description="Documents per query.")
    dims: int | None = Field(None, ge=1, description="Search on the vectors' first dims dimensions.")


class SearchService:
    """The index, the encoder that built it and its batcher; priced like a served model (``parse_request``)."""

    name = "search"
    takes_pairs = False
    pairs_optional = False

    def __init__(self, searcher, limits):
        self.searcher, self.limits = searcher, limits
        self.max_length = int(searcher.embedder.encoder.max_length)
        self.batcher: MicroBatcher | None = None

    def cost(self, text: bytes, pair: bytes | None) -> int:
        return estimate_tokens(len(text), None, self.max_length)

    def _embed(self, texts: list[str], pairs=None) -> list:
        return list(normalised(self.searcher.embedder(texts, 64, progress_bar=False)))

    async def start(self) -> None:
        lim = self.limits
        self.batcher = MicroBatcher(self._embed, lim.max_batch, lim.wait_ms, lim.batch_tokens)
        self.batcher.start()
        await self.batcher.submit(["warm up"], None)

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()

    def info(self) -> dict:
        idx = self.searcher.index
        return {"documents": len(idx), "dim": int(idx.vectors.shape[1]), "pooling": idx.meta.get("pooling")}


def add_search_routes(app: FastAPI, service: SearchService, limits, auth: list, ready) -> None:
    """Register ``/search`` and ``/embed`` on ``app``; ``ready()`` says whether the server has warmed up."""

    async def search_request(request: Request) -> SearchRequest:
        return parse_body(await request.body(), request.headers.get("content-type"), SearchRequest)

    async def vectors(req: PredictRequest) -> tuple[list[str], list]:
        if not ready():
            raise ApiError(503, "not_ready", "the server is still starting; retry shortly.")
        parsed = parse_request(req, service, limits)
        try:
            return parsed.texts, await service.batcher.submit(parsed.texts, None, parsed.costs)
        except UserError as e:
            raise ApiError(422, "invalid_input", e.message) from None
        except Exception as e:
            raise internal_error(e, f"embedding for the index {service.info()}") from None

    body = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": SearchRequest.model_json_schema()}}}}

    @app.post("/search", dependencies=auth, summary="The index's documents nearest each query.", openapi_extra=body)
    async def search(req: SearchRequest = Depends(search_request)) -> dict[str, Any]:
        texts, vecs = await vectors(req)
        try:
            hits = await asyncio.to_thread(service.searcher.index.search, np.stack(vecs), req.top_k, req.dims)
        except UserError as e:
            raise ApiError(422, "invalid_input", e.message) from None
        return {"results": [{"query": q, "hits": h} for q, h in zip(texts, hits, strict=True)]}

    @app.post("/embed", dependencies=auth, summary="Unit vectors of texts by the index's encoder.",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": PredictRequest.model_json_schema()}}}})
    async def embed(request: Request) -> dict[str, Any]:
        req = parse_body(await request.body(), request.headers.get("content-type"))
        _, vecs = await vectors(req)
        return {"dim": int(len(vecs[0])), "embeddings": [[round(float(x), 7) for x in v] for v in vecs]}
