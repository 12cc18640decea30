"""python -m datamonfs.daemon [--socket PATH] [--group NAME] [--ready-fd FD] [--node [--root DIR]]

The detached daemon that `datamonfs daemon start` (or an on-demand mount) runs.
"""

from __future__ import annotations

import argparse
import sys

from .node import DEFAULT_ROOT
from .service import run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m datamonfs.daemon")
    parser.add_argument("--socket", default=None)
    parser.add_argument("--group", default=None)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--node", action="store_true")
    parser.add_argument("--root", default=None)
    args = parser.parse_args()
    root = (args.root or DEFAULT_ROOT) if args.node else None
    sys.exit(run(args.socket, args.group, foreground=False, ready_fd=args.ready_fd,
                 node_root=root))


if __name__ == "__main__":
    main()
