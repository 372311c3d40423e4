# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates .venv (pinned dev environment, requirements-dev.txt) when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gradsight-installed

.PHONY: demo test bench clean

$(STAMP): requirements-dev.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gradsight demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_torch.py
	$(BIN)/python benchmarks/bench_keras.py
	$(BIN)/python benchmarks/bench_targets.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
