"""A Redis lock that keeps two cleanup runs (CronJob retries, manual runs) from overlapping.

SET NX PX takes it; the expiry frees it if the holder is killed. Release is
compare-and-delete so a run whose lock already expired can never free a newer holder's.
"""

from __future__ import annotations

import os
import secrets
import socket

import redis.asyncio as redis

from app.redis_client import CLEANUP_LOCK_KEY

# Delete the lock only if it still holds our token (GET+DEL atomically).
_RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RunLock:
    def __init__(self, client: redis.Redis, ttl_seconds: float, key: str = CLEANUP_LOCK_KEY):
        self._client = client
        self._key = key
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        # Host (the pod name in the cluster) and pid tell an operator who holds it;
        # the random part makes the value unique to this run.
        self.token = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(16)}"
        self._release_script = client.register_script(_RELEASE_IF_OWNER)

    async def acquire(self) -> bool:
        """True if this run now holds the lock, False if another run does."""
        return bool(await self._client.set(self._key, self.token, nx=True, px=self._ttl_ms))

    async def holder(self) -> str | None:
        """Host/pid of the run holding the lock, for the "already running" log line."""
        value = await self._client.get(self._key)
        return value.rsplit("/", 1)[0] if value else None

    async def release(self) -> bool:
        """True if our lock was deleted; False if it had expired (or was taken over)."""
        return bool(await self._release_script(keys=[self._key], args=[self.token]))
