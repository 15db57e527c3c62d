"""Real dependency servers for tests: redis-server and PostgreSQL 15 from Debian packages.

Each server runs on a free loopback port in its own temp dir; nothing assumes a system
service. Tests may stop and restart a server to inject faults.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


# For tests: a restart must bring back every acknowledged write.
TEST_REDIS_OPTIONS = {"save": "", "appendonly": "yes", "appendfsync": "always"}


@dataclass
class RedisServer:
    """redis-server with a password; ``stop()``/``start()`` keep the same port and data.

    ``options`` override redis.conf directives (benchmarks use production-like or no
    persistence). Usable as a context manager: started on entry, removed on exit.
    """

    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-test-")))
    options: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not installed: run `make setup` (apt redis-server)")
        directives = {
            **TEST_REDIS_OPTIONS,
            **self.options,
            "port": str(self.port),
            "bind": "127.0.0.1",
            "requirepass": self.password,
            "dir": str(self.workdir),
            "daemonize": "no",
            "loglevel": "warning",
        }
        argv = [binary]
        for name, value in directives.items():
            argv += [f"--{name}", value]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def cli_env(self) -> dict[str, str]:
        """Environment for redis-cli: the password by env var, never on the command line."""
        return {**os.environ, "REDISCLI_AUTH": self.password}

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def env(self) -> dict[str, str]:
        return {
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(self.port),
            "REDIS_PASSWORD": self.password,
        }

    def cli(self, *args: str) -> str:
        """Run redis-cli against this server (password passed by env, never argv)."""
        result = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            env=self.cli_env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL 15 cluster owned by the postgres user (initdb refuses root)."""

    port: int = field(default_factory=free_port)
    user: str = "app"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    database: str = "app"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pg-test-")))

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    def _as_postgres(self, *cmd: str, **kwargs) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True, **kwargs)

    def init(self) -> PostgresServer:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError("PostgreSQL 15 not installed: run `make setup` (apt postgresql-15)")
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            self.user,
            "--pwfile",
            str(pwfile),
            "-A",
            "scram-sha-256",
            "--no-sync",
        )
        pwfile.unlink()
        return self

    def start(self) -> PostgresServer:
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-w",
            "-t",
            "30",
            "-l",
            str(self.workdir / "server.log"),
            "-o",
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "stop")

    def create_database(self, name: str) -> str:
        self._as_postgres(
            str(PG_BIN / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            "postgres",
            "-c",
            f'CREATE DATABASE "{name}"',
            env={**os.environ, "PGPASSWORD": self.password},
        )
        return self.url(name)

    def url(self, database: str | None = None) -> str:
        db = database or self.database
        return f"postgresql+asyncpg://{self.user}:{self.password}@127.0.0.1:{self.port}/{db}"

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)
