"""``python -m testground up``: start the test ground, print its kubeconfig, stop on Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from testground.ground import TestGround


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m testground")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a local cluster with fake GPU nodes and simulators")
    up.add_argument("--real-node", action="store_true", help="also a real node: kubelet, containerd, kube-proxy")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ground = TestGround(real_node=args.real_node)
    try:
        ground.start()
        print(f"export KUBECONFIG={ground.kubeconfig}", flush=True)
        print(f"started in {ground.timings['total']} s; Ctrl-C or SIGTERM stops it", file=sys.stderr)
        stop.wait()
    finally:
        ground.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
