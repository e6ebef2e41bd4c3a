# Two commands on a fresh machine: `make run` (the chat UI) and `make test` (the whole suite).
# Both create .venv when missing and install exactly what requirements/*.lock pins (torch aside:
# a build already in .venv is kept); they reinstall only when a lock or pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LATEST := .venv-latest
HOST ?= 127.0.0.1
PORT ?= 8000
CHAT_FLAGS ?=
PYTEST_FLAGS ?=
# The suite's tests are independent: one worker per core (`make test JOBS=0` runs them serially).
JOBS ?= auto
TEST_ENV := HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE

.PHONY: run test check lint lock test-latest bench-engine chromium clean-venv

run: $(VENV)/.installed-run
	$(BIN)/promptartisan chat --host $(HOST) --port $(PORT) $(CHAT_FLAGS)

test: $(VENV)/.installed-dev chromium
	$(TEST_ENV) $(BIN)/python -m pytest -n $(JOBS) $(PYTEST_FLAGS)

# The developer's loop: lint, then every test not marked slow or browser (under 90 s here).
check: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(TEST_ENV) $(BIN)/python -m pytest -n $(JOBS) -q -m "not slow and not browser" $(PYTEST_FLAGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

# Refresh the locks to the newest releases (then `make test` installs and tests them).
lock: $(VENV)/.installed-dev
	$(BIN)/python requirements/lock.py $(BIN)/uv --upgrade

# The suite on unlocked newest releases, in a venv of its own: what `pip install promptartisan`
# gives a user today. Rebuilt from scratch each time.
test-latest: chromium
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --upgrade pip
	$(LATEST)/bin/pip install --upgrade -e '.[dev,ray]' uv setuptools wheel
	$(TEST_ENV) $(LATEST)/bin/python -m pytest -n $(JOBS) $(PYTEST_FLAGS)

bench-engine: $(VENV)/.installed-run
	OMP_WAIT_POLICY=PASSIVE $(BIN)/promptartisan bench engine --arch sd15 --size 256 --steps 4

# The dev lock holds the run lock's pins and more, so either stamp is enough for `make run`.
$(VENV)/.installed-run: requirements/run.lock pyproject.toml
	@if [ -f $(VENV)/.installed-dev ] && [ $(VENV)/.installed-dev -nt requirements/run.lock ] \
		&& [ $(VENV)/.installed-dev -nt pyproject.toml ]; then \
		touch $@; \
	else \
		PYTHON=$(PYTHON) requirements/install.sh $(VENV) requirements/run.lock && touch $@; \
	fi

$(VENV)/.installed-dev: requirements/dev.lock pyproject.toml
	PYTHON=$(PYTHON) requirements/install.sh $(VENV) requirements/dev.lock
	touch $@

# Debian's Chromium for the browser tests (Playwright's own browser download can't work here).
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

clean-venv:
	rm -rf $(VENV) $(LATEST)
