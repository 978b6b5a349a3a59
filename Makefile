PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
RUN_STAMP := $(VENV)/.installed-run
RUN_LOCK := requirements/run.lock
TEST_LOCK := requirements/test.lock
TOOL_LOCK := requirements/lock-tool.lock

# uv installs and locks; pip only installs uv itself, from its own hashed lock, into the venv.
# Installs take exactly the files a lock names, checked against their hashes, wheels only (pip
# and setuptools included), compiled to bytecode like pip does; the project itself is then
# installed from this folder with the locked setuptools, offline: nothing unpinned is fetched.
UV := UV_PYTHON_DOWNLOADS=never $(BIN)/uv
UV_INSTALL := $(UV) pip install --quiet --no-config --python $(BIN)/python --link-mode copy
INSTALL_LOCK := $(UV_INSTALL) --require-hashes --no-deps --only-binary :all: --compile-bytecode -r
INSTALL_PROJECT := $(UV_INSTALL) --no-deps --no-build-isolation --offline -e .
# The locks are for CPython 3.11 on Linux (the wheels of every platform are hashed).
UV_COMPILE := $(UV) pip compile --quiet --no-config --python $(BIN)/python \
	--python-version 3.11 --python-platform linux --generate-hashes --only-binary :all: \
	--custom-compile-command 'make lock'

.PHONY: run test test-dates lint browser faketime screenshots lock bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: $(TOOL_LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--require-hashes --no-deps --only-binary :all: -r $(TOOL_LOCK)
	touch $@

# `make run` installs only what the service needs; `make test` adds the test tools. A changed
# lock (or pyproject.toml) installs again.
$(RUN_STAMP): $(BIN)/uv $(RUN_LOCK) pyproject.toml
	$(INSTALL_LOCK) $(RUN_LOCK)
	$(INSTALL_PROJECT)
	touch $(RUN_STAMP)

$(STAMP): $(BIN)/uv $(TEST_LOCK) pyproject.toml
	$(INSTALL_LOCK) $(TEST_LOCK)
	$(INSTALL_PROJECT)
	touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/responder serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

lint: $(STAMP)
	$(BIN)/ruff format --check responder tests bench
	$(BIN)/ruff check responder tests bench
	$(BIN)/mypy

# The admin's browser tests drive Debian's Chromium (never a downloaded browser): install it
# when this machine allows (root with apt-get); otherwise those tests fail saying how to.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || echo "could not install chromium"

# The PostgreSQL tests need a server (DESIGN §9): RESPONDER_TEST_POSTGRES when set, else this
# machine's on 127.0.0.1:5432, started when it is down. Where there is none, root installs
# Debian's postgresql and lets its `postgres` user in from loopback without a password (a test
# machine's set-up); otherwise those tests fail saying how to get one. Never a silent skip.
.PHONY: postgres
postgres:
	@[ -n "$$RESPONDER_TEST_POSTGRES" ] || pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
		if [ -z "$$(ls /etc/postgresql 2>/dev/null)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql && \
			for hba in /etc/postgresql/*/main/pg_hba.conf; do \
				sed -i '1i host all postgres 127.0.0.1/32 trust' $$hba; done; fi; \
		version=$$(ls /etc/postgresql 2>/dev/null | head -1); \
		[ -z "$$version" ] || pg_ctlcluster --skip-systemctl-redirect $$version main start; \
		pg_isready -q -h 127.0.0.1 -p 5432 -t 10 || echo "no PostgreSQL on 127.0.0.1:5432:" \
			"the PostgreSQL tests will fail (see README, Development)"; }

# Debian's faketime, for test-dates: installed when this machine allows, else a clear stop.
faketime:
	@command -v faketime >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q faketime; } \
		|| { echo "make test-dates needs Debian's faketime: apt-get install faketime (as root)"; exit 1; }

# Two workers, one per core: in one process the app, the fakes and the tests share one GIL.
# worksteal: a worker done with its share takes tests still queued at the other, so a few slow
# process tests near the end do not leave one core idle.
PYTEST := $(BIN)/pytest -q -n 2 --dist worksteal

test: $(STAMP) lint browser postgres faketime
	$(PYTEST)
	$(MAKE) --no-print-directory test-dates

# The tests where the date can matter, run again with the machine's date a year ahead and a year
# behind (relative offsets: time keeps ticking, and the weekday moves too): the clock itself, dates
# people type, the CLI (the real clock), and what keeps or compares times (sessions, the engine's
# hours and limits, opening hours and closed dates, outbox expiry/retries/leases, delivery reports,
# polling, flows, conversation limits). Left out, to keep `make test` within CI's time on two cores:
# code that never reads the time, the tests that reach the same code with the test clock (store
# contract, admin pages, API shapes, rules versions: their times are the test clock's, and the rules
# watcher compares the files' mtimes only with each other), the browser tests (Chromium under
# libfaketime is not their subject) and the costly process and load tests.
# A new test of time-keeping belongs in this list.
DATE_TESTS := tests/test_clock.py tests/test_moments.py tests/test_cli.py tests/test_sessions.py \
	tests/test_engine.py tests/test_outbox.py tests/test_delivery.py tests/test_reports.py \
	tests/test_poller.py tests/test_flows.py tests/test_conversations.py tests/test_hours.py
# libfaketime 0.9.10 settings, each needed:
# - --exclude-monotonic (FAKETIME_DONT_FAKE_MONOTONIC=1): timeouts, asyncio and threads run on
#   the monotonic clock; faked, every timed wait in Python hangs or returns at once.
# - FAKETIME_FORCE_MONOTONIC_FIX=0: its "fix" (on by default with glibc >= 2.30) shifts the
#   deadline of every monotonic pthread_cond_timedwait, so Python's GIL waits return at once
#   and threads spin: the suite takes three times the CPU.
# - tests/faketime/sitecustomize.py: time.sleep would fail with EINVAL (libfaketime issue 426).
# FAKETIME_NO_CACHE is not needed: the offset is fixed for the whole run. Installs (pip, uv)
# never run under it: they happen first.
FAKETIME_RUN := PYTHONPATH=$(CURDIR)/tests/faketime FAKETIME_DONT_FAKE_MONOTONIC=1 \
	FAKETIME_FORCE_MONOTONIC_FIX=0 faketime --exclude-monotonic -f

test-dates: $(STAMP) postgres faketime
	$(FAKETIME_RUN) '+365d' $(PYTEST) -p no:cacheprovider $(DATE_TESTS)
	$(FAKETIME_RUN) '-365d' $(PYTEST) -p no:cacheprovider $(DATE_TESTS)

# Refreshes the screenshots in docs/ from the browser tests (a plain test run keeps its own).
screenshots: $(STAMP) browser
	SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -q -p no:cacheprovider tests/test_admin_browser.py tests/test_rules_browser.py tests/test_team_browser.py tests/test_admin_phone.py tests/test_broadcasts_browser.py

# Resolves every dependency again to the newest versions pyproject.toml allows and rewrites the
# locks, hashes included; review the diff, run `make test`, commit. `make lock UPGRADE=` keeps
# the versions locked now and only adds (or drops) what pyproject.toml's changes call for.
UPGRADE ?= --upgrade
lock: $(BIN)/uv
	$(UV_COMPILE) $(UPGRADE) pyproject.toml requirements/build.in --extra test -o $(TEST_LOCK)
	$(UV_COMPILE) $(UPGRADE) pyproject.toml requirements/build.in -c $(TEST_LOCK) -o $(RUN_LOCK)
	$(UV_COMPILE) requirements/lock-tool.in -o $(TOOL_LOCK)

bench: $(STAMP)
	$(BIN)/python bench/webhook.py --seconds 10 --rounds 3
	$(BIN)/python bench/match.py
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/latency.py --rates 50,200 --seconds 30
	$(BIN)/python bench/wal.py --seconds 60
	$(BIN)/python bench/wal_reset.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/contacts_import.py --book 500000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache responder.egg-info
