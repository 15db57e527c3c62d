"""Keep the test cluster's hostPath PV directories writable for non-root pods.

kube-controller-manager's in-tree hostpath provisioner creates each PV directory with
mode 0750 owned by root, and the kubelet applies no fsGroup to hostPath volumes, so
Redis and PostgreSQL (UID 999, as in the official images) could not write their data
on the real node. Minikube's storage provisioner creates these directories with mode
0777; this loop gives the test cluster the same behaviour. It only touches directories
directly below the provisioner's base path, and stops on SIGTERM.

Run by realnode.py as its own process: python3 pvperms.py BASE_DIR
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import time

POLL_SECONDS = 0.2
running = True


def _stop(_signum, _frame) -> None:
    global running
    running = False


def fix_once(base: str) -> list[str]:
    fixed = []
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return fixed
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
        if mode != 0o777:
            os.chmod(entry.path, 0o777)
            fixed.append(entry.path)
    return fixed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: pvperms.py BASE_DIR", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while running:
        for path in fix_once(argv[1]):
            print(f"made {path} writable (mode 0777)", flush=True)
        time.sleep(POLL_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
