#!/usr/bin/env python3
"""Write docs/openapi.json, the OpenAPI document `datamonfs serve` serves.

    python scripts/openapi_doc.py            # rewrite docs/openapi.json
    python scripts/openapi_doc.py --check    # exit 1 when it is out of date
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from datamonfs.serve.openapi import document  # noqa: E402

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "openapi.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = json.dumps(document(), indent=2, sort_keys=True) + "\n"
    if args.check:
        try:
            with open(DOC, encoding="utf-8") as f:
                return 0 if f.read() == text else 1
        except FileNotFoundError:
            return 1
    with open(DOC, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
