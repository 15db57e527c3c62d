"""Cache-aside over Redis that never serves a value older than an acknowledged write.

The full argument is in docs/cache-consistency.md. In short:

* writes commit the record and an outbox row together, then invalidate in Redis;
* a read miss takes a *fill lease* (random token) before reading the database and fills
  only if the token survived, so a fill that raced a write is dropped;
* the cache is read only while a short *trust lease* exists in Redis; every replica's
  reconciler renews it only after draining the outbox, and a writer that could not
  invalidate waits one lease before acknowledging;
* concurrent misses for one key in this process share one database read (single-flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as redis
from redis.exceptions import NoScriptError, RedisError

from app.records import Record, RecordRepository
from app.redis_client import (
    CACHE_TRUST_KEY,
    STATS_KEY,
    cache_key,
    fill_token_key,
    invalidated_key,
)

log = logging.getLogger(__name__)

# Errors that mean "Redis is unusable right now": fall back to the database.
REDIS_FAILURES = (RedisError, OSError, TimeoutError)
OUTBOX_BATCH = 1000
# How long a writer's "invalidated after commit" mark lives: far longer than the
# reconciler's interval; if it expires unread the reconciler just invalidates again.
INVALIDATED_MARK_MS = 60_000

# KEYS: trust, entry, stats. Returns -1 when the cache is not trusted, nil on a miss,
# the entry on a hit; counts the lookup service-wide in the same round trip.
CACHE_GET_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HINCRBY', KEYS[3], 'misses', 1)
  return -1
end
local entry = redis.call('GET', KEYS[2])
if entry then
  redis.call('HINCRBY', KEYS[3], 'hits', 1)
else
  redis.call('HINCRBY', KEYS[3], 'misses', 1)
end
return entry
"""

# KEYS: fill token. ARGV: new token, lease ms. Joins the lease other readers already hold
# (so concurrent fillers in several replicas all succeed) or takes a new one.
FILL_LEASE_LUA = """
local token = redis.call('GET', KEYS[1])
if token then
  return token
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""

# KEYS: fill token, entry. ARGV: token, entry, ttl ms. Fills only if no write
# invalidated the key (which deletes the token) since the lease was taken. The token
# stays until it expires: other readers sharing the lease may still fill the same value.
CACHE_FILL_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


@dataclass
class DependencyHealth:
    """What the process currently believes about its dependencies (feeds probes and metrics)."""

    schema_ready: bool = False
    database_up: bool = False
    redis_connected: bool = False


@dataclass(slots=True)
class ReadResult:
    record: Record | None
    cached: bool


@dataclass
class _Flight:
    """One in-progress database read shared by concurrent misses of the same key."""

    task: asyncio.Task[Record | None] | None = None
    # A joiner may use the result only if it arrived before this instant (monotonic):
    # the start of the DB read, or the moment a successful fill was sent (the value was
    # then still current, or the writer's invalidation would have removed the token).
    valid_for_arrivals_before: float = field(default=float("inf"))


def encode_entry(record: Record) -> str:
    return orjson.dumps([record.value, record.updated_at, record.expires_at]).decode()


def decode_entry(key: str, entry: str) -> Record:
    value, updated_at, expires_at = orjson.loads(entry)
    return Record(key, value, updated_at, expires_at)


class CacheService:
    def __init__(
        self,
        client: redis.Redis,
        repository: RecordRepository,
        health: DependencyHealth,
        *,
        cache_ttl_seconds: int,
        trust_lease_seconds: float,
        fill_deadline_seconds: float,
        observe: Callable[[str, float], None] = lambda operation, seconds: None,
    ) -> None:
        self.redis = client
        self.repository = repository
        self.health = health
        self.cache_ttl_ms = cache_ttl_seconds * 1000
        self.trust_lease_seconds = trust_lease_seconds
        self.fill_deadline_ms = max(1, int(fill_deadline_seconds * 1000))
        self.observe = observe
        self._get_script = client.register_script(CACHE_GET_LUA)
        self._fill_script = client.register_script(CACHE_FILL_LUA)
        self._lease_script = client.register_script(FILL_LEASE_LUA)
        self._flights: dict[str, _Flight] = {}
        self._pool_reset: asyncio.Task[None] | None = None
        # Per-process counters (service-wide ones live in Redis under STATS_KEY).
        self.hits = 0
        self.misses = 0

    # -- Redis bookkeeping -------------------------------------------------------------

    def _redis_ok(self) -> None:
        self.health.redis_connected = True

    def _redis_failed(self, operation: str, exc: BaseException) -> None:
        if self.health.redis_connected:
            log.warning("redis unavailable", extra={"operation": operation, "error": repr(exc)})
        self.health.redis_connected = False
        self._drop_idle_connections()

    def _drop_idle_connections(self) -> None:
        """One failed call means every pooled socket to that server is suspect.

        When the Redis pod is replaced (new IP), the old sockets get no RST: each would
        cost a full timeout the first time it is used. Closing the idle ones now makes the
        next calls reconnect (and re-resolve the name) at once; in-use ones fail and are
        dropped by the client on their own.
        """
        if self._pool_reset is not None and not self._pool_reset.done():
            return
        self._pool_reset = asyncio.get_running_loop().create_task(
            self.redis.connection_pool.disconnect(inuse_connections=False)
        )

    # -- reads ---------------------------------------------------------------------------

    async def _cache_get(self, key: str) -> Any:
        # EVALSHA directly: the hottest call of the service; redis-py's Script wrapper
        # adds measurable per-call work. NOSCRIPT (e.g. Redis restarted) loads it again.
        try:
            return await self.redis.evalsha(
                self._get_script.sha, 3, CACHE_TRUST_KEY, cache_key(key), STATS_KEY
            )
        except NoScriptError:
            return await self._get_script(keys=[CACHE_TRUST_KEY, cache_key(key), STATS_KEY])

    async def read(self, key: str) -> ReadResult:
        arrived = time.monotonic()
        trusted = False
        started = time.perf_counter()
        try:
            entry = await self._cache_get(key)
            self._redis_ok()
            if entry != -1:
                trusted = True
                if entry is not None:
                    self.hits += 1
                    self.observe("get", time.perf_counter() - started)
                    record = decode_entry(key, entry)
                    return ReadResult(record if record.is_live(time.time()) else None, True)
        except REDIS_FAILURES as exc:
            self._redis_failed("get", exc)
        self.misses += 1
        self.observe("get", time.perf_counter() - started)
        record = await self._load(key, arrived, fill=trusted)
        return ReadResult(record, False)

    async def _load(self, key: str, arrived: float, *, fill: bool) -> Record | None:
        while True:
            flight = self._flights.get(key)
            if flight is None:
                flight = _Flight()
                flight.task = asyncio.create_task(self._read_and_fill(key, flight, fill=fill))
                self._flights[key] = flight
                flight.task.add_done_callback(lambda _t, f=flight: self._land(key, f))
            assert flight.task is not None
            record = await asyncio.shield(flight.task)
            if arrived < flight.valid_for_arrivals_before:
                return record
            # That read may predate a write acknowledged before we arrived: read again.
            self._land(key, flight)

    def _land(self, key: str, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    async def _read_and_fill(self, key: str, flight: _Flight, *, fill: bool) -> Record | None:
        token = secrets.token_hex(16) if fill else None
        if token is not None:
            try:
                token = await self._lease_script(
                    keys=[fill_token_key(key)], args=[token, self.fill_deadline_ms]
                )
                self._redis_ok()
            except REDIS_FAILURES as exc:
                self._redis_failed("fill_lease", exc)
                token = None
        flight.valid_for_arrivals_before = time.monotonic()
        record = await self.repository.get(key)
        now = time.time()
        if record is None or not record.is_live(now):
            return None
        if token is not None:
            ttl_ms = self.cache_ttl_ms
            if record.expires_at is not None:
                ttl_ms = min(ttl_ms, int((record.expires_at - now) * 1000))
            if ttl_ms > 0:
                sent = time.monotonic()
                started = time.perf_counter()
                try:
                    filled = await self._fill_script(
                        keys=[fill_token_key(key), cache_key(key)],
                        args=[token, encode_entry(record), ttl_ms],
                    )
                    self._redis_ok()
                    if filled == 1:
                        flight.valid_for_arrivals_before = sent
                except REDIS_FAILURES as exc:
                    self._redis_failed("fill", exc)
                self.observe("fill", time.perf_counter() - started)
        return record

    # -- writes --------------------------------------------------------------------------

    async def write(self, key: str, value: str, ttl: int | None) -> tuple[Record, bool]:
        record, created, outbox_id = await self.repository.upsert(key, value, ttl)
        await self._invalidate_after_commit(key, time.monotonic(), outbox_id)
        return record, created

    async def delete(self, key: str) -> bool:
        deleted, outbox_id = await self.repository.delete(key)
        await self._invalidate_after_commit(key, time.monotonic(), outbox_id)
        return deleted

    async def _invalidate_after_commit(
        self, key: str, committed: float, outbox_id: int | None
    ) -> None:
        started = time.perf_counter()
        try:
            # One MULTI: the entry and fill lease go, and the outbox row is marked done, so
            # the reconciler need not revoke fill leases taken after this commit.
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(cache_key(key), fill_token_key(key))
            if outbox_id is not None:
                pipe.set(invalidated_key(outbox_id), 1, px=INVALIDATED_MARK_MS)
            await pipe.execute()
            self._redis_ok()
            self.observe("invalidate", time.perf_counter() - started)
            return
        except REDIS_FAILURES as exc:
            self._redis_failed("invalidate", exc)
        # The entry may still be cached somewhere Redis can serve it. Every trust lease
        # that was granted without seeing our outbox row expires within one lease of the
        # commit, and none is renewed before the row's key is invalidated: wait it out.
        remaining = committed + self.trust_lease_seconds - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)

    # -- reconciler ----------------------------------------------------------------------

    async def reconcile_once(self) -> bool:
        """Drain the outbox into Redis, then renew the trust lease; True if trust was renewed."""
        if not self.health.schema_ready:
            return False
        checked = time.monotonic()
        try:
            while True:
                rows = await self.repository.pending_invalidations(OUTBOX_BATCH)
                self.health.database_up = True
                if rows:
                    await self._drain(rows)
                    await self.repository.forget_invalidations([row_id for row_id, _ in rows])
                if len(rows) < OUTBOX_BATCH:
                    break
            lease_ms = int((self.trust_lease_seconds - (time.monotonic() - checked)) * 1000)
            if lease_ms <= 0:
                await self.redis.ping()
                self._redis_ok()
                return False
            await self.redis.set(CACHE_TRUST_KEY, 1, px=lease_ms)
            self._redis_ok()
            return True
        except REDIS_FAILURES as exc:
            self._redis_failed("reconcile", exc)
        except Exception as exc:  # database trouble: keep the lease lapsing, retry later
            if self.health.database_up:
                log.warning("reconciler cannot read the outbox", extra={"error": repr(exc)})
            self.health.database_up = False
        return False

    async def _drain(self, rows: list[tuple[int, str]]) -> None:
        """Invalidate the keys of outbox rows whose writer could not do it after its commit.

        Rows their writer marked done are skipped: deleting their fill leases again would
        only revoke fills of reads that started after the write (correct ones).
        """
        marks = [invalidated_key(row_id) for row_id, _ in rows]
        done = await self.redis.mget(marks)
        pipe = self.redis.pipeline(transaction=False)
        for (_, record_key), mark in zip(rows, done, strict=True):
            if mark is None:
                pipe.delete(cache_key(record_key), fill_token_key(record_key))
        pipe.delete(*marks)
        await pipe.execute()

    async def run_reconciler(self) -> None:
        interval = self.trust_lease_seconds / 3
        while True:
            started = time.monotonic()
            await self.reconcile_once()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    # -- service-wide stats and probes ---------------------------------------------------

    async def service_stats(self) -> dict[str, int]:
        raw = await self.redis.hgetall(STATS_KEY)
        return {"hits": int(raw.get("hits", 0)), "misses": int(raw.get("misses", 0))}

    async def is_trusted(self) -> bool:
        """Whether reads may be served from the cache right now (the trust lease exists)."""
        return await self.redis.exists(CACHE_TRUST_KEY) == 1

    async def round_trip_ms(self) -> float:
        """SET + GET + DEL of a probe key: proves Redis really stores and returns data."""
        probe_key = f"{cache_key('__probe__')}:{secrets.token_hex(8)}"
        token = secrets.token_hex(8)
        started = time.perf_counter()
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(probe_key, token, px=10_000)
        pipe.get(probe_key)
        pipe.delete(probe_key)
        _, echoed, _ = await pipe.execute()
        elapsed_ms = (time.perf_counter() - started) * 1000
        if echoed != token:
            raise RedisError("probe key did not round-trip")
        return elapsed_ms

    async def info(self) -> dict[str, Any]:
        return await self.redis.info()


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
