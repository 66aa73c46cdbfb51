# The two commands of the README: `make demo` (the main job) and `make test`.
VENV := .venv
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: setup demo test test-all bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dynarep collect --task button-press --episodes 10 --out runs/demo/button-press.zarr --overwrite

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m ""

bench: $(STAMP)
	$(VENV)/bin/python bench/collect.py

clean:
	rm -rf runs .pytest_cache
