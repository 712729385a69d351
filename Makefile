# orderpipe — make install | demo | up | test | lint | bench | bench-receiver | bench-smoke | bench-soak | chaos | chaos-quick
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo up test lint bench bench-receiver bench-smoke bench-soak chaos chaos-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(BIN)/orderpipe demo

up: install
	$(BIN)/orderpipe up

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check .

BENCH_ARGS ?=

bench: install
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.bench --receiver $(BENCH_ARGS)

bench-receiver: install
	$(BIN)/python -m benchmarks.bench --receiver $(BENCH_ARGS)

bench-soak: install
	$(BIN)/python -m benchmarks.soak $(BENCH_ARGS)

bench-smoke: install
	$(BIN)/python -m benchmarks.bench --quick $(BENCH_ARGS)

CHAOS_ARGS ?=

chaos: install
	$(BIN)/python -m chaos $(CHAOS_ARGS)

chaos-quick: install
	$(BIN)/python -m chaos --quick $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .orderpipe .pytest_cache
