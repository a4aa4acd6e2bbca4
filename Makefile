# The two set-up commands of the README: `make run` and `make test`.
# Each creates (or reuses) the virtual environment .venv with what it needs; Python >= 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# `make run HOST=0.0.0.0 PORT=9000`; unset, facever serve reads FACEVER_HOST / FACEVER_PORT
# (default 127.0.0.1:8000).
HOST ?=
PORT ?=
PIP_INSTALL := $(BIN)/python -m pip install --quiet

.PHONY: run test lint typecheck fuzz

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "facever needs Python >= 3.11; '$(PYTHON)' is $$($(PYTHON) --version 2>&1). Try: make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip

# Service only: onnxruntime, no torch.
$(VENV)/.serve: pyproject.toml | $(BIN)/python
	@echo "installing facever[serve] into $(VENV) (the first time takes a minute or two)"
	$(PIP_INSTALL) -e '.[serve]'
	touch $@

# Everything the tests need: the service, the trainer (torch==2.13.*) and the benchmark peer (dlib).
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	@echo "installing facever[serve,train,bench,dev] into $(VENV) (the first time takes several minutes)"
	$(PIP_INSTALL) -e '.[serve,train,bench,dev]'
	touch $@ $(VENV)/.serve

# Local trial: no API keys needed unless FACEVER_AUTH is set (the service warns loudly about it).
# Stopping it (Ctrl-C, or SIGTERM: the server exits by the signal it got, status 130 or 143) is a normal end.
run: $(VENV)/.serve
	@echo "facever serve (Ctrl-C stops it)"
	@FACEVER_AUTH=$${FACEVER_AUTH:-disabled} $(BIN)/facever serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT)); \
	  status=$$?; if [ $$status -eq 130 ] || [ $$status -eq 143 ]; then exit 0; fi; exit $$status

# pytest's exit code 5 (no tests collected) fails this target like any other failure.
test: $(VENV)/.dev
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# ruff's checks, then the type checker (the typecheck target below, also run on its own).
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(MAKE) --no-print-directory typecheck

# mypy on the installed package names (see [tool.mypy] in pyproject.toml): the links map
# facever.model -> model/, facever.training -> training/, facever.app -> app/ as the editable install does.
MYPY_TREE := .cache/mypy-path/facever
typecheck: $(VENV)/.dev
	@mkdir -p $(MYPY_TREE)
	@for f in facever/*.py; do ln -sfn ../../../$$f $(MYPY_TREE)/; done
	@for d in model training app; do ln -sfn ../../../$$d $(MYPY_TREE)/$$d; done
	MYPYPATH=.cache/mypy-path $(BIN)/mypy -p facever

# The long schemathesis sitting over every operation (tests/app/test_fuzz.py), fresh random cases:
# FACEVER_FUZZ_CASES per operation and generation mode, 60 by default = over 1,000 cases per database
# (SQLite and PostgreSQL; see `make test` for the PostgreSQL it needs). The CI run takes 12.
fuzz: $(VENV)/.dev
	FACEVER_FUZZ_CASES=$${FACEVER_FUZZ_CASES:-60} FACEVER_FUZZ_RANDOM=1 \
	  $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/app/test_fuzz.py $(PYTEST_ARGS)
