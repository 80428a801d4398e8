"""``python -m bench.loadtest``: requests/s and latency of ``enctune serve`` under concurrent clients.

    python -m bench.loadtest --model torch=/tmp/run --model onnx_int8=/tmp/run-onnx \\
        [--data ../shared/data/sst2/test.jsonl] [--concurrency 1,8,32] [--requests 300] \\
        [--max-seconds 60] [--mix large] [--out bench/results/serve]

For each model folder: start ``python -m enctune serve FOLDER`` on a free 127.0.0.1 port
(loopback only), wait for ``/ready``, then for each concurrency C run C client tasks (one
asyncio ``httpx`` client, at most C connections) that send ``{"text": ...}`` requests, one
SST-2 test sentence each, in turn, until ``--requests`` have been answered or
``--max-seconds`` have passed. A few requests warm the level up first and are not counted.
Figures per level: answered requests, failures (any status but 200, or a transport error),
requests/s (answered / wall seconds), p50/p90/p99 latency, and the mean number of texts per
model call the server made (from ``/info``: how much the micro-batcher merged). The server
is stopped after its levels. The client runs on the same machine as the server and takes
some of its CPU; the figures say so.

``--mix large``: does one large request stall everyone else? For each concurrency C, C
clients send one-text requests first on an idle server, then again while one more client
sends maximum-size requests in a loop (the most texts that ``max_tokens`` admits, each of
``max_chars`` characters so every text costs the model's full ``max_length``: with the
defaults 64 texts of 256 tokens, 16,384 tokens a request). Figures per level: the
one-text requests' p50/p99 idle and loaded and the ratio of the p99s (the server's
promise: under 3), failures of both kinds, and the large requests answered, per second,
texts/s and their latency.

Writes ``results.json`` and ``results.md`` (with this command line) into ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WARMUP = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def start_server(folder: str, port: int, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("ENCTUNE_TOKEN", None)
    cmd = [sys.executable, "-m", "enctune", "serve", folder, "--host", "127.0.0.1", "--port", str(port), "--quiet",
           *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> float:
    import httpx

    t0 = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return time.perf_counter() - t0
        except httpx.TransportError:
            pass
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError("the server did not become ready in time")
        time.sleep(0.25)


def _pct(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    i = min(len(sorted_ms) - 1, max(0, int(round(q * (len(sorted_ms) - 1)))))
    return round(sorted_ms[i], 1)


async def single_texts(client, texts: list[str], concurrency: int, n_requests: int,
                       max_seconds: float) -> tuple[list[float], list[str], float]:
    """C client tasks sending one text each, in turn, until ``n_requests`` are answered or time is up:
    (latencies in ms of the answered ones, failures, wall seconds)."""
    import httpx

    latencies: list[float] = []
    failures: list[str] = []
    counter = {"next": 0}
    t0 = time.perf_counter()
    deadline = t0 + max_seconds

    async def client_task():
        while counter["next"] < n_requests and time.perf_counter() < deadline:
            i = counter["next"]
            counter["next"] += 1
            start = time.perf_counter()
            try:
                r = await client.post("/predict", json={"text": texts[i % len(texts)]})
                ok = r.status_code == 200 and len(r.json()) == 1
                if not ok:
                    failures.append(f"status {r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as e:
                failures.append(f"{type(e).__name__}: {e}")
                continue
            if ok:
                latencies.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(client_task() for _ in range(concurrency)))
    return latencies, failures, time.perf_counter() - t0


def _client(url: str, connections: int):
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=300)


async def _warm_up(client, texts: list[str]) -> None:
    await asyncio.gather(*(client.post("/predict", json={"text": texts[i % len(texts)]}) for i in range(WARMUP)))


def _latency_figures(latencies: list[float], prefix: str = "") -> dict:
    lat = sorted(latencies)
    return {f"{prefix}p50_ms": _pct(lat, 0.50), f"{prefix}p90_ms": _pct(lat, 0.90),
            f"{prefix}p99_ms": _pct(lat, 0.99)}


async def run_level(url: str, texts: list[str], concurrency: int, n_requests: int, max_seconds: float) -> dict:
    async with _client(url, concurrency) as client:
        await _warm_up(client, texts)
        before = (await client.get("/info")).json()["batching"]
        latencies, failures, wall = await single_texts(client, texts, concurrency, n_requests, max_seconds)
        after = (await client.get("/info")).json()["batching"]
    calls = after["model_calls"] - before["model_calls"]
    return {
        "concurrency": concurrency, "answered": len(latencies), "failed": len(failures),
        "failures": failures[:5], "wall_seconds": round(wall, 2),
        "requests_per_second": round(len(latencies) / max(wall, 1e-9), 1), **_latency_figures(latencies),
        "texts_per_model_call": round((after["texts_predicted"] - before["texts_predicted"]) / calls, 2)
        if calls else None,
    }


def largest_request(info: dict, texts: list[str]) -> dict:
    """The costliest request the server admits: texts of ``max_chars`` characters (each costs the model's
    full ``max_length`` tokens), as many as ``max_tokens``, ``max_texts`` and the body limit allow."""
    from enctune.serve.inputs import estimate_tokens

    limits, max_length = info["limits"], int(info["encoder"]["max_length"])
    corpus = " ".join(texts)
    n_chars = min(limits["max_chars"], len(corpus))
    one = estimate_tokens(n_chars, None, max_length)
    n = max(1, min(limits["max_texts"], limits["max_tokens"] // one,
                   (limits["max_body_bytes"] - 1024) // (n_chars + 8)))
    step = max(1, (len(corpus) - n_chars) // n)
    body = [corpus[i * step:i * step + n_chars] for i in range(n)]  # distinct texts
    return {"texts": body, "tokens": n * one}


async def run_mixed(url: str, texts: list[str], large: dict, concurrency: int, n_requests: int,
                    max_seconds: float) -> dict:
    """One-text requests from C clients on an idle server, then beside a client that loops on ``large``."""
    import httpx

    async with _client(url, concurrency + 1) as client:
        await _warm_up(client, texts)
        idle, idle_failures, _ = await single_texts(client, texts, concurrency, n_requests, max_seconds)
        done = asyncio.Event()
        big = {"answered": 0, "failed": 0, "failures": [], "seconds": []}

        async def large_client():
            while not done.is_set():
                start = time.perf_counter()
                try:
                    r = await client.post("/predict", json={"texts": large["texts"]})
                    ok = r.status_code == 200 and len(r.json()) == len(large["texts"])
                    if not ok:
                        big["failures"].append(f"status {r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as e:
                    ok = False
                    big["failures"].append(f"{type(e).__name__}: {e}")
                big["answered" if ok else "failed"] += 1
                if ok:
                    big["seconds"].append(time.perf_counter() - start)

        t0 = time.perf_counter()
        background = asyncio.create_task(large_client())
        await asyncio.sleep(0.5)  # the large requests are being worked through before the first small one
        loaded, loaded_failures, _ = await single_texts(client, texts, concurrency, n_requests, max_seconds)
        done.set()
        await background  # the large request in flight finishes and is counted
        wall = time.perf_counter() - t0
    idle_p99, loaded_p99 = _pct(sorted(idle), 0.99), _pct(sorted(loaded), 0.99)
    n_large = len(large["texts"])
    return {
        "concurrency": concurrency, "idle_answered": len(idle), "loaded_answered": len(loaded),
        "failed": len(idle_failures) + len(loaded_failures), "failures": (idle_failures + loaded_failures)[:5],
        **_latency_figures(idle, "idle_"), **_latency_figures(loaded, "loaded_"),
        "p99_ratio": round(loaded_p99 / idle_p99, 2) if idle_p99 and loaded_p99 else None,
        "large_texts": n_large, "large_tokens": large["tokens"], "large_answered": big["answered"],
        "large_failed": big["failed"], "large_failures": big["failures"][:3], "wall_seconds": round(wall, 2),
        "large_requests_per_second": round(big["answered"] / wall, 3),
        "large_texts_per_second": round(big["answered"] * n_large / wall, 1),
        "large_p50_s": round(sorted(big["seconds"])[len(big["seconds"]) // 2], 2) if big["seconds"] else None,
    }


def render(results: dict) -> str:
    mixed = results.get("mix") == "large"
    lines = ["# enctune serve: load test" + (" (one-text requests beside maximum-size ones)" if mixed else ""), "",
             "```", results["command"], "```", "",
             f"Started {results['started']}; load average at start {results['load_avg_start']}, at end "
             f"{results.get('load_avg_end')}. Client and server on the same machine ({results['cpus']} CPUs), "
             f"loopback; {results['requests']} requests (or {results['max_seconds']} s) per level after a warm-up.",
             ""]
    lines += _mixed_table(results) if mixed else _table(results)
    return "\n".join(lines) + "\n"


def _table(results: dict) -> list[str]:
    lines = ["One text per request.", "",
             "| model | runtime | clients | answered | failed | requests/s | p50 ms | p90 ms | p99 ms | "
             "texts per model call |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in results["models"]:
        if m.get("error"):
            lines.append(f"| {m['name']} | - | - | - | - | - | - | - | - | FAILED: {m['error']} |")
            continue
        for lv in m["levels"]:
            lines.append(f"| {m['name']} | {m['runtime']} | {lv['concurrency']} | {lv['answered']} | {lv['failed']} | "
                         f"{lv['requests_per_second']} | {lv['p50_ms']} | {lv['p90_ms']} | {lv['p99_ms']} | "
                         f"{lv['texts_per_model_call']} |")
    return lines


def _mixed_table(results: dict) -> list[str]:
    lines = ["Clients: the one-text clients; beside them, in the loaded phase, one client loops on the "
             "largest request the server admits (texts x tokens each, estimated as the server does).", "",
             "| model | runtime | clients | idle p50 ms | idle p99 ms | loaded p50 ms | loaded p99 ms | p99 loaded/idle "
             "| one-text failed | large request | large answered | large failed | large requests/s | "
             "large texts/s | large p50 s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in results["models"]:
        if m.get("error"):
            lines.append(f"| {m['name']} | - | - | FAILED: {m['error']} |" + " - |" * 12)
            continue
        for lv in m["levels"]:
            size = f"{lv['large_texts']} x {lv['large_tokens'] // lv['large_texts']}"
            lines.append(f"| {m['name']} | {m['runtime']} | {lv['concurrency']} | {lv['idle_p50_ms']} | "
                         f"{lv['idle_p99_ms']} | {lv['loaded_p50_ms']} | {lv['loaded_p99_ms']} | {lv['p99_ratio']} | "
                         f"{lv['failed']} | {size} | {lv['large_answered']} | {lv['large_failed']} | "
                         f"{lv['large_requests_per_second']} | {lv['large_texts_per_second']} | "
                         f"{lv['large_p50_s']} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m bench.loadtest", description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="NAME=FOLDER (repeatable)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "sst2" / "test.jsonl")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--requests", type=int, default=300, help="answered requests per level (at most)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="seconds per level (at most)")
    p.add_argument("--ready-timeout", type=float, default=300.0)
    p.add_argument("--serve-args", default="", help="extra arguments for enctune serve")
    p.add_argument("--mix", choices=["none", "large"], default="none",
                   help="large: one-text requests idle, then beside a client looping on maximum-size requests")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serve")
    args = p.parse_args(argv)
    texts = _texts(args.data)
    levels = [int(x) for x in args.concurrency.split(",")]
    results = {"command": "python -m bench.loadtest " + shlex.join(argv), "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
               "load_avg_start": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(), "requests": args.requests,
               "max_seconds": args.max_seconds, "data": str(args.data), "mix": args.mix, "models": []}
    for spec in args.model:
        name, _, folder = spec.partition("=")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(folder, port, shlex.split(args.serve_args))
        entry: dict = {"name": name, "folder": folder}
        try:
            entry["ready_seconds"] = round(wait_ready(url, proc, args.ready_timeout), 1)
            import httpx

            info = httpx.get(f"{url}/info", timeout=10).json()
            entry["runtime"] = f"{info.get('runtime')} {info.get('precision') or ''}".strip()
            entry["levels"] = []
            large = largest_request(info, texts) if args.mix == "large" else None
            for c in levels:
                print(f"{name}: {c} clients", file=sys.stderr, flush=True)
                level = run_mixed(url, texts, large, c, args.requests, args.max_seconds) if large else \
                    run_level(url, texts, c, args.requests, args.max_seconds)
                entry["levels"].append(asyncio.run(level))
        except Exception as e:  # a failed model is a result: the others still run
            entry["error"] = f"{type(e).__name__}: {e}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        results["models"].append(entry)
    results["load_avg_end"] = round(os.getloadavg()[0], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(render(results))
    print(render(results))
    failed = any(m.get("error") or any(lv["failed"] or lv.get("large_failed") for lv in m.get("levels", []))
                 for m in results["models"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
