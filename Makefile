# Everything a fresh Debian 12 machine needs, from a clean clone, as root.
# Each step checks what is already there, so a second run installs nothing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# strace: a unit test watches a local store's syncs from the kernel's side.
APT_PACKAGES := fuse3 libfuse3-dev pkg-config gcc python3-dev python3-venv util-linux fio strace
# The UI tests drive Debian's Chromium through its WebDriver (make test, never make check).
TEST_APT_PACKAGES := chromium chromium-driver
BENCH_APT_PACKAGES := rclone s3fs nginx-light wrk
# Peers run from a virtualenv of their own, so their dependencies never meet ours.
PEERS_VENV := .venv-peers
PEERS := dvc==3.67.1 moto[server]==5.2.5
PYTEST_ARGS ?=
SIZE ?= default

.PHONY: demo test check bench deps apt kubectl venv clean

demo: deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

# Every test: the unit and integration tiers (real mounts, daemons, the GCS emulator), on two
# workers: each test has its own directories, store, daemon, socket and emulator port, and
# most of a FUSE test's time is spent waiting, not computing.
test: deps
	@$(MAKE) --no-print-directory apt APT_PACKAGES="$(TEST_APT_PACKAGES)"
	$(VENV)/bin/pytest -q -n 2 $(PYTEST_ARGS) tests

# Before every commit, in about a minute: the linter and the unit tier without the emulator.
check: deps
	$(VENV)/bin/ruff check datamonfs tests scripts
	$(VENV)/bin/pytest -q -m "not gcs" $(PYTEST_ARGS) tests/unit

bench: deps $(VENV)/.bench-installed $(PEERS_VENV)/.installed
	@$(MAKE) --no-print-directory apt APT_PACKAGES="$(BENCH_APT_PACKAGES)"
	PATH="$(CURDIR)/$(VENV)/bin:$(CURDIR)/$(PEERS_VENV)/bin:$$PATH" \
		$(VENV)/bin/python scripts/bench.py --size $(SIZE)

deps: apt kubectl venv

# `kubectl kustomize` renders packaging/k8s offline in the tests. Checked by command, not by
# package: a kubectl from another repository serves as well as Debian's kubernetes-client.
kubectl:
	@command -v kubectl >/dev/null || { echo "installing kubernetes-client (kubectl)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		kubernetes-client >/dev/null; }

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing apt packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

$(VENV)/.bench-installed: $(VENV)/.installed
	$(VENV)/bin/python -m pip install -q -e '.[test,bench]'
	touch $@

$(PEERS_VENV)/.installed:
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q $(foreach p,$(PEERS),'$(p)')
	touch $@

clean:
	rm -rf $(VENV) $(PEERS_VENV) build *.egg-info
