#!/usr/bin/env bash
# Runs each benchmark at its default size; every script prints its own ratios.
# (Issue 6 turns this into one suite with a report and charts.)
set -euo pipefail
cd "$(dirname "$0")"
for script in bench_core.py bench_cache.py bench_mount.py bench_write.py; do
    echo "=== $script"
    python "$script"
done
