"""Start host daemons detached from the caller and stop them again by their pid.

Every daemon gets a pid file and a log file; `stop` only ever signals the pid it
recorded (after checking that pid still runs the same binary), never a name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from . import paths


class NodeError(RuntimeError):
    """A step of bringing the node up or down failed; the message says which and why."""


def pid_file(name: str) -> Path:
    return paths.PID_DIR / f"{name}.pid"


def log_file(name: str) -> Path:
    return paths.LOG_DIR / f"node-{name}.log"


def _exe_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def running_pid(name: str) -> int | None:
    """Pid of the daemon `name` if its pid file points at a live process of the same binary."""
    pf = pid_file(name)
    try:
        pid_text, _, exe = pf.read_text().partition("\n")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    live_exe = _exe_of(pid)
    # Compare names only: a binary's cache dir may be renamed under a running process.
    recorded = os.path.basename(exe.strip())
    if live_exe is None or (recorded and os.path.basename(live_exe).split(" ")[0] != recorded):
        return None
    return pid


def _raise_nofile() -> None:
    # Containers inherit the runtime's open-file limit (containerd 1.6's CRI sets none);
    # a login shell's 1024 would cap Redis' maxclients and PostgreSQL's connections.
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    target = 1048576 if hard == resource.RLIM_INFINITY else min(1048576, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))


def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    """Start `argv` in its own session with output appended to its log file."""
    if (pid := running_pid(name)) is not None:
        return pid
    paths.PID_DIR.mkdir(parents=True, exist_ok=True)
    paths.LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = log_file(name).open("ab")
    log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {argv}\n".encode())
    log.flush()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        close_fds=True,
        preexec_fn=_raise_nofile,
    )
    log.close()
    pid_file(name).write_text(f"{proc.pid}\n{os.path.realpath(argv[0])}\n")
    time.sleep(0.2)
    if proc.poll() is not None:
        raise NodeError(f"{name} exited at once with code {proc.returncode}; see {log_file(name)}")
    return proc.pid


def stop(name: str, timeout: float = 20.0) -> bool:
    """SIGTERM the recorded pid, SIGKILL it after `timeout`; True when something was stopped."""
    pid = running_pid(name)
    pid_file(name).unlink(missing_ok=True)
    if pid is None:
        return False
    return kill_pid(pid, timeout)


def kill_pid(pid: int, timeout: float = 20.0) -> bool:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    return True


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        # Our own child that exited: reap it so it does not linger as a zombie.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def run(
    argv: list[str],
    *,
    check: bool = True,
    capture: bool = True,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run a short command; on failure raise NodeError carrying its own stderr."""
    try:
        res = subprocess.run(
            argv,
            capture_output=capture,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            input=input_text,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        raise NodeError(f"command not found: {argv[0]} (see tests/node/README.md)") from exc
    except subprocess.TimeoutExpired as exc:
        raise NodeError(f"timed out after {timeout}s: {' '.join(argv[:4])} ...") from exc
    if check and res.returncode != 0:
        detail = (res.stderr or res.stdout or "").strip()[-3000:] if capture else ""
        raise NodeError(f"`{' '.join(argv[:6])}` failed with exit {res.returncode}: {detail}")
    return res


def wait_for(what: str, probe, timeout: float, interval: float = 0.5):
    """Poll `probe()` until it returns a truthy value; NodeError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    suffix = f" (last error: {last_exc})" if last_exc else ""
    raise NodeError(f"timed out after {timeout:.0f}s waiting for {what}{suffix}")
