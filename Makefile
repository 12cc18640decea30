# Everything a fresh Debian 12 machine needs, from a clean clone, as root.
# Each step checks what is already there, so a second run installs nothing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
APT_PACKAGES := fuse3 libfuse3-dev pkg-config gcc python3-dev python3-venv util-linux
BENCH_APT_PACKAGES := rclone
PYTEST_ARGS ?=

.PHONY: demo test bench deps apt venv clean

demo: deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

test: deps
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

bench: deps
	@$(MAKE) --no-print-directory apt APT_PACKAGES="$(BENCH_APT_PACKAGES)"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/bench.sh

deps: apt venv

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

clean:
	rm -rf $(VENV) build *.egg-info
