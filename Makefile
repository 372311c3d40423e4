# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates .venv (pinned dev environment, requirements-dev.txt) when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gradsight-installed

.PHONY: demo check test bench clean

$(STAMP): requirements-dev.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	# the serve tests drive Debian's chromium (Playwright uses it; no browser download)
	command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gradsight demo --out demo-output --overwrite  # demo-output/ is make's own folder: a rerun replaces it

# Lint, types and the import layers (rule sets in pyproject.toml); `make test` runs it first.
check: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_torch.py
	$(BIN)/python benchmarks/bench_keras.py
	$(BIN)/python benchmarks/bench_targets.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
