#!/usr/bin/env python3
"""The single-machine test cluster: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler built from upstream sources, plus KWOK playing three nodes.

    kubecluster.py build    build (or find cached) binaries
    kubecluster.py up       start a fresh cluster, print the `export KUBECONFIG=...` line
    kubecluster.py env      print the export lines of the running cluster
    kubecluster.py status   component health; exit 3 when not running
    kubecluster.py down     stop everything it started (safe to repeat)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clusterlib import build, control_plane, pki, procs


def _log(msg: str) -> None:
    print(f"kubecluster: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "up", "down", "status", "env"])
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            started = time.monotonic()
            bins = build.ensure_built(_log)
            _log(f"binaries ready after {time.monotonic() - started:.1f}s:")
            for directory in (bins.etcd, bins.kubernetes, bins.kwok):
                print(directory)
        elif args.command == "up":
            state = control_plane.up(_log)
            _log(
                f"cluster up in {state['start_seconds']}s "
                f"(+{state['build_seconds']}s build check); logs in {control_plane.LAYOUT.logs}"
            )
            print("\n".join(control_plane.env_lines()))
        elif args.command == "down":
            control_plane.down(_log)
        elif args.command == "env":
            print("\n".join(control_plane.env_lines()))
        elif args.command == "status":
            healthy, lines = control_plane.status()
            print("\n".join(lines))
            return 0 if healthy else 3
    except (build.BuildError, control_plane.ClusterError, pki.PKIError, procs.StartError) as err:
        _log(f"error: {err}")
        return 1
    except KeyboardInterrupt:
        _log("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
