# Two set-up commands: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test lint typecheck unit bench docker tools assets pusher-image clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)  ## start the service with its embedded defaults on 127.0.0.1:8086
	CCTV_HOST=$${CCTV_HOST:-127.0.0.1} $(BIN)/cctv-orchestrator serve

lint: $(STAMP)
	$(BIN)/ruff check orchestrator tests scripts deploy/pusher
	$(BIN)/ruff format --check orchestrator tests scripts deploy/pusher
	$(BIN)/lint-imports  # the layering contracts in pyproject.toml

typecheck: $(STAMP)
	$(BIN)/mypy

docker:  ## make sure a Docker engine answers (installs docker.io when root and missing)
	bash scripts/ensure-docker.sh

tools:  ## make sure the Debian packages the tests drive are installed (faketime, chromium)
	bash scripts/ensure-tools.sh

assets:  ## bundle the pages' browser libraries (livekit-client, pinned by web/package-lock.json)
	bash scripts/build-assets.sh

pusher-image: $(STAMP) docker  ## build the WHIP pusher image without a registry; prints its tag
	PYTHONPATH=deploy/pusher $(BIN)/python -m pusher_image

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test: $(STAMP) lint typecheck docker tools  ## what CI runs
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.reservations

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
