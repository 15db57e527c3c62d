"""Everything one app instance depends on, created at start-up and kept on ``app.extensions``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import redis.asyncio as redis
from quart import current_app
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cache import CacheService, DependencyHealth
from app.metrics import Metrics
from app.records import RecordRepository
from app.settings import ApiSettings

STATE_EXTENSION = "cloudnative_journey"


@dataclass
class AppState:
    settings: ApiSettings
    metrics: Metrics = field(default_factory=Metrics)
    health: DependencyHealth = field(default_factory=DependencyHealth)
    engine: AsyncEngine | None = None
    redis: redis.Redis | None = None
    repository: RecordRepository | None = None
    cache: CacheService | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    shutting_down: bool = False
    started_monotonic: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)

    @property
    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)


def get_state() -> AppState:
    return current_app.extensions[STATE_EXTENSION]
