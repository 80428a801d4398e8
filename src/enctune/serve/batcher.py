"""Micro-batching: requests that arrive together run as one model call; large ones in pieces.

Each HTTP request hands its items (texts, optionally with pairs, each with a cost in
tokens) to ``MicroBatcher.submit`` and awaits a future. One worker task per model builds
model calls and runs each in a worker thread (so the event loop keeps accepting
connections), then hands every request its results, in its own order.

A model call holds at most ``max_batch`` items and ``batch_tokens`` tokens (one item at
least, however costly). A request larger than that is cut into pieces, one per call, and
the calls are built afresh each time from every waiting request, so a small request that
arrives while a large one is being worked through runs in the next call: it waits for the
piece being computed (``batch_tokens`` tokens: 70-80 ms for 256 tokens of the default
encoder on 2 shared CPU cores) instead of the whole large request (64 texts of 256 tokens:
~4.3 s). A model call cannot be interrupted, so one piece is the floor of that wait: a
one-text request's p99 beside a client looping on maximum-size requests is about one
piece plus its own call (141 ms against 53 ms idle, ``bench/results/serve-mixed``). The
price is the large request's speed while small ones keep coming: pieces of one text run
~20% slower than batches of four, and the small requests take their turns (9 texts/s
beside one one-text client, 15 texts/s as one call).

Order within a call: shortest remaining request first (fewest tokens not yet sent), which
minimises the mean wait and puts a one-text request ahead of the rest of a long one. A
request passed over by ``max_skips`` calls in a row goes ahead of all others (the oldest
such first), so a stream of small requests cannot starve a large one: it gets a piece at
least every ``max_skips + 1`` calls while fewer than that many others starve with it;
under overload, when many starve, service degrades to first come, first served.

Gathering: when the worker is idle, the first arrival waits up to ``wait_ms`` for others
(or until a call's worth of work has come) so concurrent requests share a call; a lone
request pays at most ``wait_ms``. While there is work left no one waits: the next call
is built at once from whatever is queued.

Isolation: when a model call raises, its requests are split in two halves and each half
is run again, down to single requests, so only a request whose own items make the model
fail gets the error and every other one gets its answer (with one bad request among
``n``, about three times the call's work in all: ``n + n + n/2 + ...``). A failed request
gets no further pieces.

Items with and without a pair text are predicted in separate calls to the predictor (it
takes one ``pairs`` list or none).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

_ids = itertools.count()


@dataclass
class _Job:
    """One request: its items, how far it has been sent and what has come back."""

    texts: list[str]
    pairs: list[str] | None
    costs: list[int]
    future: asyncio.Future
    results: list = field(default_factory=list)
    sent: int = 0  # items handed to model calls so far (a prefix)
    answered: int = 0
    skipped: int = 0  # calls in a row that passed this job over
    seq: int = field(default_factory=lambda: next(_ids))
    enqueued: float = field(default_factory=time.perf_counter)

    def __post_init__(self):
        self.results = [None] * len(self.texts)
        self.cost_left = sum(self.costs)

    @property
    def waiting(self) -> bool:
        """Items left to send, and a client still waiting for them."""
        return self.sent < len(self.texts) and not self.future.done()


@dataclass
class _Piece:
    """Items ``start:stop`` of a job, in one model call."""

    job: _Job
    start: int
    stop: int

    @property
    def texts(self) -> list[str]:
        return self.job.texts[self.start:self.stop]

    @property
    def pairs(self) -> list[str] | None:
        return None if self.job.pairs is None else self.job.pairs[self.start:self.stop]


class MicroBatcher:
    def __init__(self, predict, max_batch: int = 64, wait_ms: float = 5.0, batch_tokens: int | None = None,
                 max_skips: int = 4):
        """``predict(texts, pairs) -> list``: one output per text, in order. ``batch_tokens``: the most tokens
        (as the submitted costs count them) in one model call; None: ``max_batch`` items only."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if wait_ms < 0:
            raise ValueError("wait_ms must be 0 or more")
        if batch_tokens is not None and batch_tokens < 1:
            raise ValueError("batch_tokens must be at least 1")
        self.predict = predict
        self.max_batch = max_batch
        self.wait_s = wait_ms / 1000.0
        self.batch_tokens = batch_tokens
        self.max_skips = max_skips
        self._incoming: list[_Job] = []
        self._active: list[_Job] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enctune-predict")
        self.batches = 0  # model calls made, for /info
        self.items = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._active + self._incoming:
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, texts: list[str], pairs: list[str] | None = None, costs: list[int] | None = None) -> list:
        """The predictions for ``texts`` (and ``pairs``), in order; ``costs``: each item's tokens (1 each by
        default)."""
        if not self.running:
            raise RuntimeError("the batcher is not running")
        costs = [1] * len(texts) if costs is None else list(costs)
        if len(costs) != len(texts) or (pairs is not None and len(pairs) != len(texts)):
            raise ValueError("texts, pairs and costs must be as long as each other")
        if not texts:
            return []
        job = _Job(list(texts), None if pairs is None else list(pairs), costs,
                   asyncio.get_running_loop().create_future())
        self._incoming.append(job)
        self._wake.set()
        return await job.future

    # ---- the worker ------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._collect()
            call = self._next_call()
            if not call:
                continue
            outcomes = await loop.run_in_executor(self._pool, self._run_pieces, call)
            self._deliver(call, outcomes)
            # one turn of the event loop before the next call takes the cores: the requests just answered
            # send their responses now, not in the gaps a model call leaves
            await asyncio.sleep(0)

    async def _collect(self) -> None:
        """Take in new requests; when there is no work, wait for some, then for company (``wait_ms``)."""
        self._active = [j for j in self._active if j.waiting]
        if not self._active and not self._incoming:
            await self._arrival()
            deadline = time.perf_counter() + self.wait_s
            while not self._call_full() and (left := deadline - time.perf_counter()) > 0:
                await self._arrival(left)
        self._active += self._incoming
        self._incoming = []

    async def _arrival(self, timeout: float | None = None) -> None:
        """Until ``submit`` hands in a job (or ``timeout`` seconds pass)."""
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _call_full(self) -> bool:
        jobs = self._active + self._incoming
        items = sum(len(j.texts) - j.sent for j in jobs)
        tokens = sum(j.cost_left for j in jobs)
        return items >= self.max_batch or (self.batch_tokens is not None and tokens >= self.batch_tokens)

    def _next_call(self) -> list[_Piece]:
        """Pieces for one model call: shortest remaining job first (a long-skipped one before all), each
        job's next items while they fit the budget."""
        jobs = sorted((j for j in self._active if j.waiting), key=self._priority)
        call: list[_Piece] = []
        items = tokens = 0
        budget = self.batch_tokens if self.batch_tokens is not None else float("inf")
        for job in jobs:
            stop = job.sent
            while stop < len(job.texts) and items < self.max_batch and \
                    (tokens + job.costs[stop] <= budget or not call and stop == job.sent):
                tokens += job.costs[stop]
                items += 1
                stop += 1
            if stop > job.sent:
                call.append(_Piece(job, job.sent, stop))
                job.cost_left -= sum(job.costs[job.sent:stop])
                job.sent = stop
                job.skipped = 0
            else:
                job.skipped += 1
        return call

    def _priority(self, job: _Job) -> tuple:
        """Jobs skipped ``max_skips`` times first, oldest first among them; then shortest remaining first."""
        if job.skipped >= self.max_skips:
            return (0, job.seq, 0)
        return (1, job.cost_left, job.seq)

    def _deliver(self, call: list[_Piece], outcomes: list) -> None:
        for piece, out in zip(call, outcomes, strict=True):
            job = piece.job
            if job.future.done():  # the client left, or an earlier piece failed
                continue
            if isinstance(out, BaseException):
                job.future.set_exception(out)
                continue
            job.results[piece.start:piece.stop] = out
            job.answered += piece.stop - piece.start
            if job.answered == len(job.texts):
                job.future.set_result(job.results)

    # ---- in the worker thread --------------------------------------------------------------------

    def _run_pieces(self, call: list[_Piece]) -> list:
        """Each piece's outputs, or the exception that its own items raise (see Isolation above)."""
        try:
            return self._predict_pieces(call)
        except Exception as e:
            if len(call) == 1:
                return [e]
            half = len(call) // 2
            return self._run_pieces(call[:half]) + self._run_pieces(call[half:])

    def _predict_pieces(self, call: list[_Piece]) -> list[list]:
        """One predictor call per kind of item (with or without pairs); results split back per piece."""
        out: list[list | None] = [None] * len(call)
        for with_pairs in (False, True):
            group = [i for i, p in enumerate(call) if (p.job.pairs is not None) == with_pairs]
            if not group:
                continue
            texts = [t for i in group for t in call[i].texts]
            pairs = [t for i in group for t in call[i].pairs] if with_pairs else None
            preds = list(self.predict(texts, pairs))
            if len(preds) != len(texts):
                raise RuntimeError(f"the predictor returned {len(preds)} outputs for {len(texts)} inputs")
            self.batches += 1
            self.items += len(texts)
            start = 0
            for i in group:
                n = call[i].stop - call[i].start
                out[i] = preds[start:start + n]
                start += n
        return out
