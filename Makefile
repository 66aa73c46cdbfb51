# The two commands of the README: `make demo` (the main job) and `make test`.
VENV := .venv
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: setup demo test test-all bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(STAMP)

# collect -> pre-train AFRO -> train DP3 and AFRO-frozen -> evaluate -> runs/demo/report.html
# (rerun to resume; DEMO_ARGS=--quick for a 3-minute first look)
demo: $(STAMP)
	$(VENV)/bin/dynarep demo --out runs/demo $(DEMO_ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m ""

bench: $(STAMP)
	$(VENV)/bin/python -m bench --out runs/bench.json

clean:
	rm -rf runs .pytest_cache
