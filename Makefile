# The two commands a newcomer needs: `make dev` runs the system, `make test` passes the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install dev test test-fast lint typecheck format bench manifests env-example lock clean

# Two distributions, both editable: the library every function image installs (shared/) and the developer
# and deployment tooling no image installs (devtools/: `aiteacher dev`, `aiteacher manifests`, the tests' tools).
$(BIN)/aiteacher: shared/pyproject.toml devtools/pyproject.toml shared/requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip 'uv>=0.9,<1'
	$(BIN)/uv pip install --quiet --python $(BIN)/python --constraints shared/requirements.lock \
	    -e 'shared[rag,lambda]' -e 'devtools[test]'
	@touch $@

install: $(BIN)/aiteacher

dev: install  ## gateway + embedded services on http://127.0.0.1:8080
	$(BIN)/aiteacher dev

test: install  ## the whole suite (embedded defaults unless DATABASE_URL / REDIS_URL are set)
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

typecheck: install  ## mypy over shared/aiteacher and devtools/, then each function handler (config: pyproject.toml)
	$(BIN)/mypy
	for handler in functions/*/handler.py; do $(BIN)/mypy "$$handler" || exit 1; done

format: install  ## ruff's fixes and formatter (CI checks both)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

manifests: install  ## regenerate infra/, stack.pro.yml and docker-compose.yml from stack.yml
	$(BIN)/aiteacher manifests

env-example: install  ## regenerate .env.example from the settings model
	$(BIN)/aiteacher env-example > .env.example

bench: install  ## every benchmark; results go to docs/benchmarks.md by hand
	for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lock: install  ## re-pin every dependency of both packages (all extras, every platform) with hashes: shared/requirements.lock
	$(BIN)/uv pip compile shared/pyproject.toml devtools/pyproject.toml --all-extras --universal --python-version 3.11 \
	    --generate-hashes --no-header --quiet --no-emit-package aiteacher -o shared/requirements.lock

clean:
	rm -rf .data .pytest_cache .ruff_cache .mypy_cache
