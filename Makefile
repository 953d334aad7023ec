# Every target does its own setup into .venv/ so it works from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo clean

install: $(STAMP)

# Pinned install path: constraints.txt holds the exact CPU build of torch (an open range would
# pull several GB of CUDA packages). Re-runs only when the dependency files change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: install
	MUJOCO_GL=egl $(BIN)/python -m pytest tests

demo: install
	MUJOCO_GL=egl $(BIN)/autodidact demo

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
