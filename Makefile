# The two set-up commands of the README: `make run` and `make test`.
# Each creates (or reuses) the virtual environment .venv with what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test serve-install dev-install lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Service only: onnxruntime, no torch.
$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[serve]'
	touch $@

# Everything the tests need: the service, the trainer (torch CPU build) and the benchmark peer (dlib).
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[serve,train,bench,dev]'
	touch $@ $(VENV)/.serve

run: $(VENV)/.serve
	FACEVER_AUTH=$${FACEVER_AUTH:-disabled} $(BIN)/facever serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
