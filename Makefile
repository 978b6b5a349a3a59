PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run test lint browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# `make run` installs only what the service needs; `make test` adds the test tools.
$(RUN_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
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

test: $(STAMP) lint browser postgres
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/webhook.py --seconds 10 --rounds 3
	$(BIN)/python bench/match.py
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/latency.py --rates 50,200 --seconds 30
	$(BIN)/python bench/wal.py --seconds 60

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache responder.egg-info
