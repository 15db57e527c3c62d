"""Daemons of the cluster: started detached, each in its own process group, and found
again by `down` from /proc alone, so a lost or stale state file never leaves one behind.

Every daemon's command line names a file in the state directory; that is how `down`
recognises them (and never touches another cluster's processes).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class StartError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(argv: list[str], log_path: Path) -> int:
    """Start a daemon in a new session (its own process group); its pid is the group id."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # Field 3 is the state; a zombie has exited already.
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def log_tail(log_path: Path, lines: int = 25) -> str:
    try:
        return "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    pid: int | None = None,
    log_path: Path | None = None,
) -> float:
    """Poll `check` until true; fail early, with its log, if the daemon died meanwhile."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except OSError:
            pass
        if pid is not None and not alive(pid):
            tail = log_tail(log_path) if log_path else ""
            raise StartError(f"{what}: the process exited; last log lines ({log_path}):\n{tail}")
        if time.monotonic() - started > timeout:
            tail = log_tail(log_path) if log_path else ""
            raise StartError(f"{what}: not ready after {timeout:.0f}s; last log lines:\n{tail}")
        time.sleep(0.2)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def owned_by(state_dir: Path) -> dict[int, str]:
    """pid -> command line of every live process whose arguments name a file in state_dir."""
    marker = f"{state_dir}/"
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            cmd = _cmdline(int(entry))
            if marker in cmd and alive(int(entry)):
                found[int(entry)] = cmd
    return found


def stop_all(state_dir: Path, grace: float = 10.0) -> list[str]:
    """SIGTERM the process groups of every daemon of state_dir, SIGKILL what outlives the grace."""
    stopped = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = owned_by(state_dir)
        if not procs:
            break
        for pid, cmd in procs.items():
            if sig == signal.SIGTERM:
                stopped.append(cmd.split(" ", 1)[0].rsplit("/", 1)[-1])
            try:
                # A daemon leads its own group (helpers it forked die with it); anything
                # else naming our files (a user's kubectl) shares a group with its shell.
                if os.getpgid(pid) == pid:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and owned_by(state_dir):
            time.sleep(0.1)
    left = owned_by(state_dir)
    if left:
        raise StartError(f"processes still running after SIGKILL: {sorted(left)}")
    return stopped
