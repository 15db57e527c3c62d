"""The baseline the API is measured against: a bare Quart app doing one Redis GET per request.

Same server settings as ``python -m app`` (Hypercorn, uvloop, one worker) and the same URL
template (so routing costs the same), no metrics, no logging, no validation: what remains
is the floor cost of Quart + Hypercorn + one Redis round trip on this machine.

    python -m bench.baseline_app   # HOST, PORT, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD
"""

from __future__ import annotations

import asyncio
import os
import signal

import redis.asyncio as redis
import uvloop
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart

app = Quart("baseline")
client: redis.Redis | None = None


@app.before_serving
async def connect() -> None:
    global client
    client = redis.Redis(
        host=os.environ.get("REDIS_HOST", "127.0.0.1"),
        port=int(os.environ.get("REDIS_PORT", "6379")),
        password=os.environ.get("REDIS_PASSWORD") or None,
        decode_responses=True,
        max_connections=64,
    )


@app.after_serving
async def disconnect() -> None:
    if client is not None:
        await client.aclose()


@app.get("/api/v1/data/<key>")
async def get(key: str):
    assert client is not None
    value = await client.get(key)
    if value is None:
        return {"error": "not_found"}, 404
    return {"key": key, "value": value}


@app.post("/api/v1/data/<key>")
async def set_(key: str):
    assert client is not None
    await client.set(key, "x" * 64)
    return {"key": key}, 201


async def main() -> None:
    config = Config()
    config.bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8081')}"]
    config.workers = 1
    config.worker_class = "uvloop"
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    uvloop.run(main())
