"""Remove cache keys that have no TTL: orphans that would otherwise live forever.

Every entry the API writes has a TTL, so a key under the cache prefix without one can
only be left over from a bug, an old release or a hand-made key. The sweep walks the
keyspace with SCAN (never KEYS, which blocks Redis for the whole keyspace) and handles
each SCAN page with one short Lua script that checks TTL == -1 and UNLINKs in the same
atomic step: a key that got a TTL between the scan and the delete is therefore never
touched, a key already gone (TTL -2) is not counted, and a key with a TTL never is.
UNLINK frees the value's memory in a background thread, so big values don't stall Redis.
"""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as redis
from redis.client import NEVER_DECODE

from app.redis_client import CACHE_KEY_PREFIX

NO_EXPIRY = -1  # what TTL answers for a key that exists but never expires

_UNLINK_IF_NO_TTL = """
local removed = 0
for _, key in ipairs(KEYS) do
  if redis.call('TTL', key) == -1 then
    redis.call('UNLINK', key)
    removed = removed + 1
  end
end
return removed
"""


class OrphanSweeper:
    def __init__(self, client: redis.Redis, page_size: int, prefix: str = CACHE_KEY_PREFIX):
        self._client = client
        self._page_size = page_size
        # SCAN's MATCH is a glob: escape the glob characters a prefix could contain.
        self._pattern = _glob_escape(prefix.encode()) + b"*"
        self._unlink_script = client.register_script(_UNLINK_IF_NO_TTL)

    async def sweep(self, dry_run: bool, on_page: Callable[[int, int], None]) -> None:
        """Walk every key under the prefix once; ``on_page(scanned, deleted)`` per page.

        In a dry run ``deleted`` is the number of keys the page would have lost.
        """
        cursor = 0
        while True:
            # Keys stay bytes: a key that is not valid UTF-8 must not stop the sweep.
            cursor, keys = await self._client.execute_command(
                "SCAN",
                cursor,
                "MATCH",
                self._pattern,
                "COUNT",
                self._page_size,
                **{NEVER_DECODE: True},
            )
            if keys:
                if dry_run:
                    deleted = await self._count_without_ttl(keys)
                else:
                    deleted = int(await self._unlink_script(keys=keys))
                on_page(len(keys), deleted)
            if cursor == 0:
                return

    async def _count_without_ttl(self, keys: list[bytes]) -> int:
        # A dry run stays read-only: plain TTLs, pipelined into one round trip.
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.ttl(key)
            ttls = await pipe.execute()
        return sum(1 for ttl in ttls if ttl == NO_EXPIRY)


def _glob_escape(text: bytes) -> bytes:
    escaped = bytearray()
    for byte in text:
        if byte in b"*?[]\\":
            escaped += b"\\"
        escaped.append(byte)
    return bytes(escaped)
