# Two commands on a fresh machine: `make run` (the chat UI) and `make test` (the whole suite).
# Both create .venv when missing and reinstall only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
CHAT_FLAGS ?=
PYTEST_FLAGS ?=

.PHONY: run test lint bench-engine clean-venv

run: $(VENV)/.installed-run
	$(BIN)/promptartisan chat --host $(HOST) --port $(PORT) $(CHAT_FLAGS)

test: $(VENV)/.installed-dev chromium
	HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest $(PYTEST_FLAGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

bench-engine: $(VENV)/.installed-run
	OMP_WAIT_POLICY=PASSIVE $(BIN)/promptartisan bench engine --arch sd15 --size 256 --steps 4

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The dev install includes the run install, so either stamp is enough for `make run`.
$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	@if [ -f $(VENV)/.installed-dev ] && [ $(VENV)/.installed-dev -nt pyproject.toml ]; then \
		touch $@; \
	else \
		$(BIN)/pip install -e . && touch $@; \
	fi

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -e '.[dev,ray]'
	touch $@

# Debian's Chromium for the browser tests (Playwright's own browser download can't work here).
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

clean-venv:
	rm -rf $(VENV)
