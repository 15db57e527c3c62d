"""Typed settings, read once per process: environment > YAML file (CONFIG_FILE) > defaults.

The API and both agents share ``CommonSettings`` (logging, Redis, database) so the
three programs can never disagree about where their dependencies live.  Each program
loads its own subclass once, at start-up, through :func:`load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/app.db"


def _parse_database_url(raw: str) -> Any:
    """SQLAlchemy's URL parser, imported lazily: the log collector never touches a database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(raw)
    except ArgumentError:
        return None


class ConfigError(Exception):
    """Raised with one human-readable line naming the offending setting."""


class CommonSettings(BaseSettings):
    """Settings every program of the stack needs."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="forbid",  # a typo in the config file is an error, not a silent default
        frozen=True,
    )

    app_env: str = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    config_file: Path | None = None

    redis_host: str = "localhost"
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_db: int = Field(0, ge=0)
    redis_password: SecretStr | None = None
    redis_timeout_seconds: float = Field(1.0, gt=0, le=60)
    redis_max_connections: int = Field(64, ge=1)

    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(20, ge=0)
    db_pool_recycle_seconds: int = Field(3600, ge=1)
    db_timeout_seconds: float = Field(5.0, gt=0, le=300)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _parseable_database_url(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() == DEFAULT_DATABASE_URL:
            return value  # known good; skips importing SQLAlchemy in the collector
        url = _parse_database_url(value.get_secret_value())
        if url is None:
            raise ValueError("not a database URL (expected e.g. sqlite+aiosqlite:///./data/app.db)")
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError("only sqlite and postgresql databases are supported")
        return value

    @property
    def database_url_redacted(self) -> str:
        """The database URL with any password masked: safe for logs and /api/v1/config."""
        url = _parse_database_url(self.database_url.get_secret_value())
        return url.render_as_string(hide_password=True) if url else "<invalid>"

    @property
    def database_backend(self) -> str:
        url = _parse_database_url(self.database_url.get_secret_value())
        return url.get_backend_name() if url else "unknown"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CONFIG_FILE")
        if config_file:
            sources.append(_StackYamlSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


class _StackYamlSource(YamlConfigSettingsSource):
    """One config file may serve several programs of the stack (a shared ConfigMap).

    Keys that belong to a sibling program are dropped; keys no program knows stay and
    are rejected by ``extra="forbid"``, so a typo still fails loudly.
    """

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        own = set(self.settings_cls.model_fields)
        siblings = {name for cls in CommonSettings.__subclasses__() for name in cls.model_fields}
        return {key: value for key, value in data.items() if key in own or key not in siblings}


class ApiSettings(CommonSettings):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    cache_ttl_seconds: int = Field(3600, ge=1)
    max_value_bytes: int = Field(1024 * 1024, ge=1)
    shutdown_grace_seconds: float = Field(20.0, ge=0, le=600)
    # After SIGTERM readiness is 503 but requests are still served for this long, so
    # Kubernetes can take the pod out of its Service endpoints before the socket closes.
    shutdown_delay_seconds: float = Field(2.0, ge=0, le=600)
    # The cache is trusted only while a short lease in Redis says so; see app/cache.py.
    cache_trust_lease_seconds: float = Field(2.0, gt=0.1, le=60)
    stats_flush_interval_seconds: float = Field(1.0, gt=0, le=60)
    redis_info_cache_seconds: float = Field(5.0, ge=0, le=300)
    startup_retry_max_seconds: float = Field(10.0, gt=0, le=300)


class CollectorSettings(CommonSettings):
    log_paths: str = "/var/log/containers/*.log"
    scan_interval: float = Field(1.0, gt=0, le=300)
    max_line_bytes: int = Field(16 * 1024, ge=256)
    state_dir: Path = Path("/var/lib/cloudnative-journey/collector")
    node_name: str = "unknown"
    pod_name: str | None = None
    pod_namespace: str | None = None
    metrics_port: int = Field(9102, ge=0, le=65535)

    @property
    def log_globs(self) -> list[str]:
        return [glob.strip() for glob in self.log_paths.split(",") if glob.strip()]


class CleanupSettings(CommonSettings):
    cleanup_batch_size: int = Field(500, ge=1, le=100_000)
    cleanup_deadline_seconds: float = Field(240.0, gt=0, le=3600)
    cleanup_lock_ttl_seconds: int = Field(300, ge=1)

    @model_validator(mode="after")
    def _lock_outlives_the_run(self) -> CleanupSettings:
        # A lock that expires while its run is still going would let a second run start.
        if self.cleanup_lock_ttl_seconds <= self.cleanup_deadline_seconds:
            raise ValueError(
                "CLEANUP_LOCK_TTL_SECONDS must be greater than CLEANUP_DEADLINE_SECONDS"
            )
        return self


SettingsT = TypeVar("SettingsT", bound=CommonSettings)


def load_settings(settings_cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build the settings object once; turn any problem into one ``ConfigError`` line."""
    config_file = os.environ.get("CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"invalid setting CONFIG_FILE: no such file {config_file!r}")
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            # Never echo the rejected value: it may be a password.
            problems.append(f"{name}: {message}" if name else message)
        raise ConfigError("invalid setting " + "; ".join(problems)) from None
    except Exception as exc:  # e.g. YAML syntax errors from the config file
        raise ConfigError(f"invalid config file {config_file!r}: {type(exc).__name__}") from None
