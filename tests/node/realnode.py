#!/usr/bin/env python3
"""Run a real Kubernetes node (containerd + kubelet + kube-proxy + CoreDNS) on this machine.

    tests/node/realnode.py images   build-or-reuse the node's images, load them into containerd
    tests/node/realnode.py up       join the node to the running test control plane
    tests/node/realnode.py status   components, health and memory (JSON)
    tests/node/realnode.py down     stop everything, unmount, restore routes

The control plane comes from tests/cluster/kubecluster.py (start it first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nodelib import node, procs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="realnode.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    img = sub.add_parser("images", help="build or reuse images and load them into containerd")
    img.add_argument("--no-app", action="store_true", help="skip the project image")
    upp = sub.add_parser("up", help="start the node against the running control plane")
    upp.add_argument("--no-app", action="store_true", help="skip the project image")
    upp.add_argument(
        "--exclusive",
        action="store_true",
        help="remove the KWOK-simulated nodes, so every pod of the cluster really runs",
    )
    sub.add_parser("down", help="stop the node and clean up")
    sub.add_parser("status", help="print component status as JSON")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(
            "error: realnode.py must run as root (it manages containerd, routes, iptables)",
            file=sys.stderr,
        )
        return 2
    try:
        if args.command == "images":
            for ref, archive in node.ensure_images(with_app=not args.no_app).items():
                print(f"{ref}\t{archive}")
        elif args.command == "up":
            node.up(with_app=not args.no_app, exclusive=args.exclusive)
        elif args.command == "down":
            node.down()
        else:
            print(json.dumps(node.status(), indent=2))
    except procs.NodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
