"""docs/CLI.md lists every command, option and environment variable (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def test_cli_reference_is_up_to_date():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "cli_reference.py"),
                        "--check"], capture_output=True, text=True)
    assert r.returncode == 0, "docs/CLI.md is out of date: run python scripts/cli_reference.py"


def test_every_environment_variable_is_documented_in_help_and_readme():
    from datamonfs.cli.environment import ENVIRONMENT

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    help_text = subprocess.run([os.path.join(os.path.dirname(sys.executable), "datamonfs"),
                                "--help"], capture_output=True, text=True).stdout
    assert "docs/CLI.md" in readme
    for name, _ in ENVIRONMENT:
        for var in name.split(", "):
            if not var.startswith("XDG_"):
                assert var in readme, var
                assert var in help_text, var
