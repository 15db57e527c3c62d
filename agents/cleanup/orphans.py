"""Remove cache keys that have no TTL: orphans that would otherwise live forever.

Every entry the API writes has a TTL, so a key under the cache prefix without one can
only be left over from a bug, an old release or a hand-made key.

The sweep walks the keyspace with SCAN (never KEYS, which blocks Redis for the whole
keyspace), one page per call of a short Lua script: the script runs SCAN cursor MATCH
prefix* COUNT n, then TTL on each key of the page and UNLINK on those answering -1, and
returns the next cursor and its counts. Because check and delete are one atomic step, a
key that gets a TTL between the scan and the delete is never touched, a key already gone
(TTL -2) is not counted, and a key with a TTL never is. Doing the page inside Redis also
means no key names cross the network: a page costs one round trip and blocks Redis for
about as long as the SCAN itself (see bench/cleanup_bench.py). UNLINK frees values in a
background thread, so big values don't stall Redis either.
"""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as redis

from app.redis_client import CACHE_KEY_PREFIX

# KEYS: none (the page's keys are only known inside the script; standalone Redis allows
# that). ARGV: cursor, MATCH pattern, COUNT, "delete" or "count" (dry run).
# Returns {next cursor, keys scanned, keys without TTL (deleted unless dry run)}.
_SWEEP_PAGE = """
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local keys = page[2]
local orphans = 0
for _, key in ipairs(keys) do
  if redis.call('TTL', key) == -1 then
    if ARGV[4] == 'delete' then
      redis.call('UNLINK', key)
    end
    orphans = orphans + 1
  end
end
return {page[1], #keys, orphans}
"""


class OrphanSweeper:
    def __init__(self, client: redis.Redis, page_size: int, prefix: str = CACHE_KEY_PREFIX):
        self._client = client
        self._page_size = page_size
        # SCAN's MATCH is a glob: escape the glob characters a prefix could contain.
        self._pattern = _glob_escape(prefix.encode()) + b"*"
        self._page_script = client.register_script(_SWEEP_PAGE)

    async def sweep(self, dry_run: bool, on_page: Callable[[int, int], None]) -> None:
        """Walk every key under the prefix once; ``on_page(scanned, deleted)`` per page.

        In a dry run nothing is deleted and ``deleted`` counts what would have been.
        """
        mode = "count" if dry_run else "delete"
        cursor: bytes | str = b"0"
        while True:
            cursor, scanned, deleted = await self._page_script(
                keys=[], args=[cursor, self._pattern, self._page_size, mode]
            )
            on_page(int(scanned), int(deleted))
            if int(cursor) == 0:
                return


def _glob_escape(text: bytes) -> bytes:
    escaped = bytearray()
    for byte in text:
        if byte in b"*?[]\\":
            escaped += b"\\"
        escaped.append(byte)
    return bytes(escaped)
