# The two commands of the README's quick start. Each sets up the environment first
# (tools/setup.sh: idempotent, seconds once done; about 15 minutes the first time).
VENV ?= $(or $(TRICKBENCH_VENV),.venv)
PY := $(VENV)/bin/python
export TRICKBENCH_VENV := $(abspath $(VENV))

.PHONY: setup demo test
setup:
	@bash tools/setup.sh

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)
