"""Micro-batching: requests that arrive together run as one model call.

Each HTTP request hands its items (a list of texts, optionally with pairs) to
``MicroBatcher.submit`` and awaits a future. One worker task per model takes the first
waiting request, then gathers more for at most ``wait_ms`` milliseconds or until
``max_batch`` items are collected, runs the predictor once in a worker thread (so the event
loop keeps accepting connections) and hands each request its slice of the results, in its
own order. A request larger than ``max_batch`` runs alone. Under load the queue is never
empty, so batches fill without waiting; a lone request pays at most ``wait_ms``.

Items with and without a pair text are predicted in separate calls (a predictor takes one
``pairs`` list or none).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class _Job:
    texts: list[str]
    pairs: list[str] | None
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(self, predict, max_batch: int = 64, wait_ms: float = 5.0):
        """``predict(texts, pairs) -> list``: one output per text, in order."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if wait_ms < 0:
            raise ValueError("wait_ms must be 0 or more")
        self.predict = predict
        self.max_batch = max_batch
        self.wait_s = wait_ms / 1000.0
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enctune-predict")
        self.batches = 0  # model calls made, for /info
        self.items = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, texts: list[str], pairs: list[str] | None = None) -> list:
        if not self.running:
            raise RuntimeError("the batcher is not running")
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(texts, pairs, fut))
        return await fut

    async def _gather(self) -> list[_Job]:
        """The next batch: the oldest job, then whatever else arrives within the window and fits."""
        jobs = [self._held.pop(0) if self._held else await self._queue.get()]
        size = len(jobs[0].texts)
        deadline = time.perf_counter() + self.wait_s
        while size < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
            if size + len(job.texts) > self.max_batch:
                self._held.append(job)  # does not fit: it leads the next batch
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self._held: list[_Job] = []
        while True:
            jobs = [j for j in await self._gather() if not j.future.cancelled()]  # drop clients that left
            if not jobs:
                continue
            try:
                results = await loop.run_in_executor(self._pool, self._predict_jobs, jobs)
            except Exception as e:  # one failing batch fails its requests, not the server
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            for j, r in zip(jobs, results, strict=True):
                if not j.future.done():
                    j.future.set_result(r)

    def _predict_jobs(self, jobs: list[_Job]) -> list[list]:
        """One predictor call per kind of item (with or without pairs); results split back per job."""
        out: list[list | None] = [None] * len(jobs)
        for with_pairs in (False, True):
            group = [i for i, j in enumerate(jobs) if (j.pairs is not None) == with_pairs]
            if not group:
                continue
            texts = [t for i in group for t in jobs[i].texts]
            pairs = [p for i in group for p in jobs[i].pairs] if with_pairs else None
            preds = list(self.predict(texts, pairs))
            if len(preds) != len(texts):
                raise RuntimeError(f"the predictor returned {len(preds)} outputs for {len(texts)} inputs")
            self.batches += 1
            self.items += len(texts)
            start = 0
            for i in group:
                n = len(jobs[i].texts)
                out[i] = preds[start:start + n]
                start += n
        return out
