# sen12ts-stac: the two commands the README opens with are `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCHEMAS ?= $(abspath ../shared/stac-schemas)
export SEN12TS_SCHEMAS := $(SCHEMAS)

.PHONY: install demo test test-fast sample bench clean

# torch first, from the CPU wheel on disk (an unpinned torch would pull gigabytes of CUDA).
$(BIN)/sen12ts-stac: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24"
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[train,dev]"
	@touch $@

install: $(BIN)/sen12ts-stac

# The main job: a small catalog made offline, then validated and summarised.
demo: install
	$(BIN)/sen12ts-stac create --aoi uganda --source synthetic --max-tiles 4 --out demo-catalogs
	$(BIN)/sen12ts-stac validate demo-catalogs
	$(BIN)/sen12ts-stac info demo-catalogs

# The whole suite, slow end-to-end tests included (CI runs exactly this).
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q -rs

test-fast: install
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

# Regenerate the committed sample catalog (catalogs/) with the real CLI.
sample: install
	rm -rf catalogs/california
	$(BIN)/sen12ts-stac create --aoi california --max-tiles 2 --seasons summer --max-per-season 1 --out catalogs --quiet

bench: install
	$(BIN)/python benchmarks/bench_create.py

clean:
	rm -rf $(VENV) demo-catalogs .pytest_cache
