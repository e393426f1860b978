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

# Fashion-MNIST (seconds from the package registry, as the demo gets it) for the test that
# checks the real files; without it that one test skips, and the rest run on generated files.
test: setup
	@$(PY) -m trickbench.datasets fetch || echo "[test] going on without Fashion-MNIST: the test of the real files will skip"
	$(PY) -m pytest $(PYTEST_ARGS)
