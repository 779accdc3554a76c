# The two commands of the README: `make run` (serve on SQLite + ./artifacts) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-sqlite test-postgresql bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

instance/admin_token:
	mkdir -p instance
	umask 077; $(BIN)/python -c "import secrets; print('mr_' + secrets.token_urlsafe(32))" > $@

## Serve on http://127.0.0.1:8000 with SQLite (instance/registry.db) and ./artifacts, migrations applied.
run: $(BIN)/.installed instance/admin_token
	$(BIN)/flask --app wsgi db upgrade
	@echo "Admin token: $$(cat instance/admin_token)  (kept in instance/admin_token; ADMIN_TOKEN overrides it)"
	ADMIN_TOKEN="$${ADMIN_TOKEN:-$$(cat instance/admin_token)}" $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## The whole suite, on SQLite and then on PostgreSQL (127.0.0.1:5432 unless TEST_POSTGRES_URL says otherwise).
test: $(BIN)/.installed
	$(BIN)/python -m pytest
	TEST_DATABASE=postgresql $(BIN)/python -m pytest

test-sqlite: $(BIN)/.installed
	$(BIN)/python -m pytest

test-postgresql: $(BIN)/.installed
	TEST_DATABASE=postgresql $(BIN)/python -m pytest

## Benchmarks (need wrk: apt-get install wrk); figures go to bench/results/.
bench: $(BIN)/.installed
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) instance/registry.db* .pytest_cache
