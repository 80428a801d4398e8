"""``MicroBatcher`` on its own, with a fake model: pieces, order of service, isolation of failures.

The fake model answers ``{"echo": text}`` and records the texts of every call, so each test
can say exactly which call held what. A gate (a ``threading.Event``) holds a call open
while the test submits more work, so the order is deterministic, not a matter of timing.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from enctune.serve.batcher import MicroBatcher


class FakeModel:
    def __init__(self, fail_on: str | None = None, gate_first: bool = False):
        self.calls: list[list[str]] = []
        self.fail_on = fail_on
        self.started = threading.Event()
        self.gate = threading.Event()
        if not gate_first:
            self.gate.set()

    def __call__(self, texts, pairs=None):
        self.calls.append(list(texts))
        self.started.set()
        self.gate.wait(10)
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise ValueError(f"cannot read {self.fail_on!r}")
        return [{"echo": t, "pair": p} for t, p in zip(texts, pairs or [None] * len(texts), strict=True)]


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _started(model: FakeModel) -> None:
    await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 10)


def _echoes(texts):
    return [{"echo": t, "pair": None} for t in texts]


def test_a_large_request_runs_in_pieces_within_the_token_budget():
    model = FakeModel()

    async def go():
        b = MicroBatcher(model, max_batch=64, wait_ms=0, batch_tokens=100)
        b.start()
        texts = [f"t{i}" for i in range(10)]
        out = await b.submit(texts, costs=[30] * 10)
        alone = await b.submit(["huge"], costs=[500])  # over the budget on its own: runs alone, not refused
        await b.stop()
        return texts, out, alone

    texts, out, alone = _run(go())
    assert out == _echoes(texts)
    assert [len(c) for c in model.calls] == [3, 3, 3, 1, 1]  # 90 tokens a call; the 500-token text alone
    assert alone == _echoes(["huge"])


def test_a_small_request_runs_in_the_next_call_not_after_the_large_one():
    """While a large request's first piece is being computed, a one-text request arrives: it runs in the very
    next call, before the large request's other nine pieces."""
    model = FakeModel(gate_first=True)

    async def go():
        b = MicroBatcher(model, max_batch=64, wait_ms=0, batch_tokens=100)
        b.start()
        large = asyncio.create_task(b.submit([f"long{i}" for i in range(10)], costs=[100] * 10))
        await _started(model)
        small = asyncio.create_task(b.submit(["short"], costs=[5]))
        await asyncio.sleep(0.05)  # the small request is queued while the first piece is still computing
        model.gate.set()
        result = await small, await large
        await b.stop()
        return result

    small, large = _run(go())
    assert model.calls[0] == ["long0"] and model.calls[1] == ["short"]
    assert small == _echoes(["short"]) and large == _echoes([f"long{i}" for i in range(10)])


def test_a_stream_of_small_requests_does_not_starve_a_large_one():
    """Shortest first would serve 30 queued one-text requests before the large one; after ``max_skips`` calls
    that pass it over, the large request gets a piece."""
    model = FakeModel(gate_first=True)

    async def go():
        b = MicroBatcher(model, max_batch=64, wait_ms=0, batch_tokens=100, max_skips=3)
        b.start()
        first = asyncio.create_task(b.submit(["first"], costs=[100]))
        await _started(model)
        large = asyncio.create_task(b.submit(["L0", "L1"], costs=[100, 100]))
        smalls = [asyncio.create_task(b.submit([f"s{i}"], costs=[60])) for i in range(30)]
        await asyncio.sleep(0.05)
        model.gate.set()
        await asyncio.gather(first, large, *smalls)
        await b.stop()

    _run(go())
    served_at = next(i for i, c in enumerate(model.calls) if "L0" in c)
    assert served_at == 1 + 3  # after the first call, three calls of small requests skip it, then its turn
    second_piece = next(i for i, c in enumerate(model.calls) if "L1" in c)
    assert second_piece - served_at <= 3 + 1


def test_a_failing_request_fails_alone_and_its_neighbours_get_their_answers():
    """Twenty requests gathered into one call, three of them holding a text the model cannot read: the call
    fails, its halves are retried apart, and only the three get the error."""
    model = FakeModel(fail_on="BAD")

    async def go():
        b = MicroBatcher(model, max_batch=64, wait_ms=200)
        b.start()
        groups = [[f"g{i}a", f"g{i}b"] if i not in (3, 11, 17) else [f"g{i}a", "BAD"] for i in range(20)]
        results = await asyncio.gather(*(b.submit(g) for g in groups), return_exceptions=True)
        await b.stop()
        return groups, results

    groups, results = _run(go())
    assert len(model.calls[0]) == 40  # they did share the first call
    for i, (g, r) in enumerate(zip(groups, results, strict=True)):
        if "BAD" in g:
            assert isinstance(r, ValueError) and "BAD" in str(r), (i, r)
        else:
            assert r == _echoes(g), (i, r)


def test_a_request_whose_piece_fails_gets_no_more_pieces():
    model = FakeModel(fail_on="BAD")

    async def go():
        b = MicroBatcher(model, max_batch=64, wait_ms=0, batch_tokens=10)
        b.start()
        with pytest.raises(ValueError):
            await b.submit(["a", "BAD", "c", "d"], costs=[10] * 4)
        after = await b.submit(["next"], costs=[1])
        await b.stop()
        return after

    assert _run(go()) == _echoes(["next"])
    assert model.calls == [["a"], ["BAD"], ["next"]]


def test_a_client_that_leaves_gets_no_more_pieces():
    model = FakeModel(gate_first=True)

    async def go():
        b = MicroBatcher(model, max_batch=64, wait_ms=0, batch_tokens=10)
        b.start()
        large = asyncio.create_task(b.submit([f"x{i}" for i in range(5)], costs=[10] * 5))
        await _started(model)
        large.cancel()
        await asyncio.sleep(0.01)
        model.gate.set()
        after = await b.submit(["next"], costs=[1])
        await b.stop()
        return after

    assert _run(go()) == _echoes(["next"])
    assert model.calls == [["x0"], ["next"]]


def test_pairs_and_single_texts_are_predicted_in_separate_calls_and_counted():
    model = FakeModel()

    async def go():
        b = MicroBatcher(model, max_batch=64, wait_ms=100)
        b.start()
        single, paired = await asyncio.gather(b.submit(["a", "b"]), b.submit(["c"], ["C"]))
        await b.stop()
        return single, paired, b.batches, b.items

    single, paired, batches, items = _run(go())
    assert single == _echoes(["a", "b"]) and paired == [{"echo": "c", "pair": "C"}]
    assert sorted(model.calls) == [["a", "b"], ["c"]] and (batches, items) == (2, 3)


def test_stopping_fails_the_requests_still_waiting():
    model = FakeModel(gate_first=True)

    async def go():
        b = MicroBatcher(model, max_batch=64, wait_ms=0, batch_tokens=10)
        b.start()
        waiting = asyncio.create_task(b.submit(["a", "b"], costs=[10, 10]))
        await _started(model)
        await b.stop()
        model.gate.set()
        with pytest.raises(RuntimeError, match="shutting down"):
            await waiting

    _run(go())


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        MicroBatcher(FakeModel(), batch_tokens=0)

    async def go():
        b = MicroBatcher(FakeModel())
        b.start()
        with pytest.raises(ValueError, match="as long as"):
            await b.submit(["a", "b"], costs=[1])
        assert await b.submit([]) == []
        await b.stop()

    _run(go())
