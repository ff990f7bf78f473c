# Everything runs from the project's own virtualenv in .venv/, made on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo run test lint pytest sandbox migrate bench bench-reminders bench-checkout \
	bench-faults bench-webhook bench-intake bench-memory bench-soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# The scripted scene against the local Telegram stand-in; the transcript lands in demo-out/.
demo: setup
	$(PY) -m bot demo

# The real bot: needs BOT_TOKEN (in the environment or .env).
run: setup
	$(PY) -m bot run

sandbox: setup
	$(PY) -m bot sandbox

migrate: setup
	$(PY) -m bot migrate

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest

test: lint pytest

# Benchmarks, run by hand (figures in BENCHMARKS.md): the ranking over 1,000,000 problems.
bench: setup
	$(PY) -m bench.bench_ranking

# The other benchmarks (see bench/README.md); each prints its figures.
bench-reminders: setup
	$(PY) -m bench.reminders --n 1000

bench-checkout: setup
	$(PY) -m bench.checkout

bench-webhook: setup
	$(PY) bench/intake.py

bench-intake: setup
	$(PY) -m bench.intake_vs_echo --profile /tmp/greengrid-intake.prof

bench-memory: setup
	$(PY) -m bench.memory

# The scripted week with a fifth of the Bot API calls failing, for three seeds.
bench-faults: setup
	$(PY) -m bench.fault_week --seeds 5,6,7

# One hour of steady traffic (SOAK=seconds to change it).
SOAK ?= 3600
bench-soak: setup
	$(PY) -m bench.memory --soak $(SOAK)

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
