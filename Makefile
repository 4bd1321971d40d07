# sen12ts-stac: the two commands the README opens with are `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCHEMAS ?= $(abspath ../shared/stac-schemas)
export SEN12TS_SCHEMAS := $(SCHEMAS)

.PHONY: install demo test test-fast lint format sample bench clean

# torch first, from the CPU wheel on disk (an unpinned torch would pull gigabytes of CUDA).
$(BIN)/sen12ts-stac: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24"
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[train,dev,collect-dl]"
	@touch $@

install: $(BIN)/sen12ts-stac
	@# Chromium (Debian) for the STAC Browser test; STAC Browser from npm, built for the test's URL (both idempotent).
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "chromium not installed: the browser test will skip"
	@command -v npm >/dev/null && bash scripts/stac-browser.sh build http://127.0.0.1:8431/catalog.json "" /browser/ >/dev/null \
	  || echo "STAC Browser not built (npm missing or build failed): the browser test will try again or skip"
	@# Azurite (npm, Microsoft's Azure Blob emulator) for the object-store tests (idempotent).
	@command -v npm >/dev/null && bash scripts/azurite.sh install >/dev/null \
	  || echo "Azurite not installed (npm missing or install failed): the Azure tests will skip"

# The main job: a small catalog made offline, then validated and summarised.
demo: install
	$(BIN)/sen12ts-stac create --aoi uganda --source synthetic --max-tiles 4 --out demo-catalogs
	$(BIN)/sen12ts-stac validate demo-catalogs
	$(BIN)/sen12ts-stac info demo-catalogs

# The whole suite, slow end-to-end tests included (CI runs exactly this).
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q -rs

# Linter, formatter check and type checker (CI runs this before the tests).
lint: install
	$(BIN)/ruff check sen12ts_stac training tests benchmarks
	$(BIN)/ruff format --check sen12ts_stac training tests benchmarks
	$(BIN)/mypy sen12ts_stac

format: install
	$(BIN)/ruff format sen12ts_stac training tests benchmarks
	$(BIN)/ruff check --fix sen12ts_stac training tests benchmarks

test-fast: install
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

# Regenerate the committed sample catalog (catalogs/) with the real CLI.
sample: install
	rm -rf catalogs/california
	$(BIN)/sen12ts-stac create --aoi california --source synthetic --max-tiles 2 --seasons summer --max-per-season 1 --out catalogs --quiet

bench: install
	$(BIN)/python benchmarks/bench_create.py

clean:
	rm -rf $(VENV) demo-catalogs .pytest_cache
