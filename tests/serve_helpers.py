"""A real uvicorn server on a free loopback port, in a thread, for the HTTP tests."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import enctune

# a tiny random encoder learns the toy task with these settings in a second or two
# (fp32: the tests compare scores with thresholds, which bf16 rounding moves differently per CPU kind)
FAST_FULL = {"strategy": "full", "epochs": 8, "lr": 3e-3, "batch_size": 8, "patience": 20, "precision": "fp32"}


def train_tiny(tiny, data, out, **kw):
    return enctune.train(data=str(data), out=str(out), model=str(tiny), **{**FAST_FULL, **kw})


@contextmanager
def running_server(app):
    """Yield the base URL of ``app`` served by uvicorn on 127.0.0.1 (a free port)."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
