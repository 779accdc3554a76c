# The two commands of the README: `make run` (serve on SQLite + ./artifacts) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# MLflow, the peer of the import tests, in a venv of its own: it pins gunicorn<27 (requirements-mlflow.txt).
MLFLOW_VENV := .venv-mlflow
# KServe's Python SDK, in a venv of its own: its resource models check deploy/kubernetes/kserve/, its gRPC client
# drives the gRPC tests; kserve pins fastapi, pandas, psutil and starlette apart from the service (requirements-kserve.txt).
KSERVE_VENV := .venv-kserve
# Nothing listens here: the PostgreSQL pass then has to start its own throwaway server.
CLOSED_POSTGRES_URL := postgresql+psycopg://postgres@127.0.0.1:9/postgres
CONTAINERS_CONF := /etc/containers/containers.conf
CONTAINERS_CONF_LINES := '[containers]' 'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]' '' '[engine]' 'runtime = "runc"'

.PHONY: run test test-sqlite grpc-descriptor test-postgresql test-postgresql-fallback bench clean stress-end-to-end \
	step-sqlite step-sqlite-end-to-end step-postgresql step-postgresql-end-to-end \
	postgresql-binaries chromium wrk stress-ng containers oidc-provider test-prerequisites fuzz sanitizers

# What running needs (make run): the service installed from this checkout (pyproject.toml: the pinned
# requirements.txt, and the compiled tree walker built into registry/inference/native/), then what testing
# and benchmarking add (make test).
$(BIN)/.installed-run: pyproject.toml setup.py requirements.txt $(wildcard registry/inference/native/*.[ch]) \
		client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e ./client
	touch $@

$(BIN)/.installed: $(BIN)/.installed-run requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(BIN)/.installed-bench: $(BIN)/.installed requirements-bench.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

$(MLFLOW_VENV)/bin/.installed: requirements-mlflow.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-mlflow.txt
	touch $@

$(KSERVE_VENV)/bin/.installed: requirements-kserve.txt
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-kserve.txt
	touch $@

## The gRPC service's descriptor (api/grpc/grpc_predict_v2.txtpb), again from the kserve package's: its header
## (the licence and where it comes from) kept, the descriptor under it rewritten.
grpc-descriptor: $(KSERVE_VENV)/bin/.installed
	grep '^#' api/grpc/grpc_predict_v2.txtpb > api/grpc/descriptor.tmp
	$(KSERVE_VENV)/bin/python -c "from google.protobuf import descriptor_pb2, text_format; \
		from kserve.protocol.grpc import grpc_predict_v2_pb2 as m; d = descriptor_pb2.FileDescriptorProto(); \
		m.DESCRIPTOR.CopyToProto(d); print(text_format.MessageToString(d), end='')" >> api/grpc/descriptor.tmp
	mv api/grpc/descriptor.tmp api/grpc/grpc_predict_v2.txtpb

instance/admin_token:
	mkdir -p instance
	umask 077; $(BIN)/python -c "import secrets; print('mr_' + secrets.token_urlsafe(32))" > $@

## Serve on http://127.0.0.1:8000 with SQLite (instance/registry.db) and ./artifacts, migrations applied.
run: $(BIN)/.installed-run instance/admin_token
	$(BIN)/flask --app wsgi db upgrade
	@echo "Admin token: $$(cat instance/admin_token)  (kept in instance/admin_token; ADMIN_TOKEN overrides it)"
	ADMIN_TOKEN="$${ADMIN_TOKEN:-$$(cat instance/admin_token)}" $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

## A pass runs in two steps: every test outside tests/e2e on both cores (pytest-xdist, a file per worker at
## a time), then the end-to-end tests: two files at a time, then those of ALONE_END_TO_END one at a time.
ON_BOTH_CORES = -n 2 --dist loadfile --ignore=tests/e2e
## The end-to-end files that run alone: those that race the clock under load (a move seen within the alias
## refresh window, a p99, a deadline or a time-bounded run measured: STRESS_TESTS and their kind), those that
## take both cores by design (Spark and Dask, a fleet of replicas), the container tests (they build and share
## one image), the install of the checkout (it builds in the source tree, as the client's install does) and the
## dashboard in a browser (its layout checks measured a row being redrawn once, two files at a time).
## The others leave a core idle much of the time (docs/testing.md, "Where the time goes"). A file that only
## waits out one refresh window before a check (a deleted alias, a log share, a canary that every worker
## routes: test_operability.py, test_log_share_propagation.py, test_retrain_cli.py) runs two at a time: each
## passed so beside the heaviest files of that half and with stress-ng --cpu 2 beside them.
ALONE_END_TO_END := $(addprefix tests/e2e/test_, $(addsuffix .py, \
	fleet_compose stalled_store overload hot_swap database_outage \
	replicas rollouts rollout_replicas rollout_autopilot grpc v2_clients \
	explain_deadline database_locked queue_order openapi_conformance \
	batch_scoring fleet \
	container_image container_data_plane kserve_runtime_container kubernetes_dev_profile \
	installed_package dashboard_browser))
## Each half lists its slowest tests: where the suite's budget goes (docs/testing.md).
END_TO_END_PAIRED = tests/e2e -n 2 --dist loadfile $(addprefix --ignore=,$(ALONE_END_TO_END)) --durations=25
END_TO_END_ALONE = $(ALONE_END_TO_END) --durations=25

## The whole suite, on SQLite and then on PostgreSQL: the server at TEST_POSTGRES_URL (default
## 127.0.0.1:5432) or, where none answers, a throwaway one started from the installed binaries.
## Every step runs whatever the steps before it gave (a red SQLite pass does not hide the PostgreSQL
## one); a table of each step's result and minutes closes the run, which fails if any step failed.
TEST_STEPS := sqlite sqlite-end-to-end postgresql postgresql-end-to-end
test: test-prerequisites
	@$(call run_steps,$(TEST_STEPS))

test-sqlite: test-prerequisites
	@$(call run_steps,sqlite sqlite-end-to-end)

test-postgresql: $(BIN)/.installed $(MLFLOW_VENV)/bin/.installed $(KSERVE_VENV)/bin/.installed postgresql-binaries chromium oidc-provider
	@$(call run_steps,postgresql postgresql-end-to-end)

# The steps: pytest on both cores outside tests/e2e, then the end-to-end tests, per backend.
step-sqlite:
	$(BIN)/python -m pytest $(ON_BOTH_CORES)
step-sqlite-end-to-end:
	@$(call both_halves,$(BIN)/python -m pytest)
step-postgresql:
	TEST_DATABASE=postgresql $(BIN)/python -m pytest $(ON_BOTH_CORES)
step-postgresql-end-to-end:
	@$(call both_halves,TEST_DATABASE=postgresql $(BIN)/python -m pytest)

# The end-to-end tests with the pytest command $(1): two files at a time, then the alone ones, each half
# whatever the other gave; fail if either failed.
define both_halves
	failed=0; \
	echo "end-to-end, two files at a time:"; $(1) $(END_TO_END_PAIRED) || failed=1; \
	echo "end-to-end, the alone ones (ALONE_END_TO_END) one at a time:"; $(1) $(END_TO_END_ALONE) || failed=1; \
	exit $$failed
endef

# Run the steps $(1) in order, each whatever the others gave; print each one's result and minutes; fail
# at the end if any failed.
define run_steps
	summary=""; failed=0; \
	for step in $(1); do \
		started=$$(date +%s); \
		if $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) step-$$step; then result=passed; else result=FAILED; failed=1; fi; \
		summary="$$summary$$(awk -v r=$$result -v s=$$step -v t=$$(( $$(date +%s) - started )) 'BEGIN { printf "  %-6s  %-24s %5.1f min", r, s, t / 60 }')\n"; \
	done; \
	printf '\nmake test, step by step:\n%b' "$$summary"; \
	exit $$failed
endef

## The end-to-end tests that race the clock (a rolling upgrade of the compose fleet, a stalled store, a
## database outage, overload, hot swap), STRESS_RUNS times in a row with stress-ng keeping both cores
## busy beside them: each run's result, then how many failed (docs/testing.md).
STRESS_RUNS ?= 10
STRESS_TESTS ?= tests/e2e/test_fleet_compose.py::test_replacing_both_replicas_one_at_a_time_under_load_fails_no_request \
	tests/e2e/test_stalled_store.py tests/e2e/test_overload.py tests/e2e/test_hot_swap.py
STRESS_TESTS_POSTGRESQL ?= tests/e2e/test_database_outage.py  # a database server's outage: PostgreSQL's pass runs it
stress-end-to-end: test-prerequisites stress-ng
	@stress-ng --cpu 2 --quiet & stress=$$!; trap 'kill $$stress' EXIT; failed=0; \
	for run in $$(seq $(STRESS_RUNS)); do \
		if $(BIN)/python -m pytest -q -p no:cacheprovider $(STRESS_TESTS) \
			&& { [ -z "$(STRESS_TESTS_POSTGRESQL)" ] || TEST_DATABASE=postgresql $(BIN)/python -m pytest -q -p no:cacheprovider $(STRESS_TESTS_POSTGRESQL); }; \
		then echo "stress run $$run: passed"; else echo "stress run $$run: FAILED"; failed=$$((failed + 1)); fi; \
	done; \
	echo "$$failed of $(STRESS_RUNS) runs failed, with stress-ng --cpu 2 beside them"; [ $$failed = 0 ]

## What the tests need: the Debian packages one after the other (apt takes one lock), then the three virtualenvs
## and the OpenID provider side by side (four installs that wait on the disk and the network as much as on a core).
test-prerequisites: postgresql-binaries chromium containers sanitizers
	$(MAKE) -j4 $(BIN)/.installed $(MLFLOW_VENV)/bin/.installed $(KSERVE_VENV)/bin/.installed oidc-provider

## The PostgreSQL pass on a machine where PostgreSQL is installed but not running (CI runs it too).
test-postgresql-fallback: $(BIN)/.installed postgresql-binaries
	TEST_DATABASE=postgresql TEST_POSTGRES_URL=$(CLOSED_POSTGRES_URL) $(BIN)/python -m pytest -q \
		tests/integration/test_migrations.py tests/integration/test_models_api.py

## The fuzzers (tests/fuzz, docs/testing.md "Fuzzing"): each model-file reader guided by coverage (atheris), then
## what it found walked and explained by the walker and TreeSHAP built with gcc's AddressSanitizer and
## UndefinedBehaviorSanitizer, and the walker's and the predict body reader's (json_rows.c) own targets under them.
## FUZZ_RUNS inputs (0: no bound) and at most FUZZ_SECONDS (0: no bound) per target, FUZZ_TARGETS to run fewer;
## one line per target: executions and crashes.
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?= 0
FUZZ_TARGETS ?=
FUZZ_WORK ?= build/fuzz
fuzz: $(BIN)/.installed sanitizers
	$(BIN)/python -m tests.fuzz.run $(FUZZ_TARGETS) --runs $(FUZZ_RUNS) --seconds $(FUZZ_SECONDS) --work $(FUZZ_WORK)

## Benchmarks; figures go to bench/results/.
bench: $(BIN)/.installed-bench wrk
	$(BIN)/python -m bench.run_all

# Debian packages the tests and benchmarks use: installed through apt when missing and running as
# root (as CI does), otherwise one line saying what to install. Fast when already there.
define debian_package
	@if ! { $(1); } >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing $(2) (apt-get)"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
		else \
			echo "$(2) is missing: apt-get install $(2)" >&2; exit 1; \
		fi; \
	fi
endef

postgresql-binaries:
	$(call debian_package,test -x "$$(pg_config --bindir)/pg_ctl" || ls /usr/lib/postgresql/*/bin/pg_ctl,postgresql)

chromium:
	$(call debian_package,command -v chromium,chromium)

wrk:
	$(call debian_package,command -v wrk,wrk)

stress-ng:
	$(call debian_package,command -v stress-ng,stress-ng)

# gcc's AddressSanitizer and UndefinedBehaviorSanitizer runtimes, which the fuzzers' build of the walker links.
sanitizers:
	$(call debian_package,test -e "$$(gcc -print-file-name=libasan.so)" && test -e "$$(gcc -print-file-name=libubsan.so)",gcc)

## The certified OpenID provider the single sign-on tests start (tests/e2e/test_dashboard_oidc.py): the npm
## package oidc-provider, at the version package-lock.json pins, under Debian's Node.js.
OIDC_PROVIDER_DIR := tests/e2e/oidc_provider
oidc-provider: $(OIDC_PROVIDER_DIR)/node_modules/.installed

$(OIDC_PROVIDER_DIR)/node_modules/.installed: $(OIDC_PROVIDER_DIR)/package.json $(OIDC_PROVIDER_DIR)/package-lock.json
	$(call debian_package,command -v node && command -v npm,nodejs npm)
	cd $(OIDC_PROVIDER_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## podman for the image test (tests/e2e/test_container_image.py), with runc as its runtime and the machine's
## own ulimits (crun and podman's default ulimits are refused in sandboxes like CI's); debootstrap makes the
## local base image where no registry can be reached.
containers:
	$(call debian_package,command -v podman && command -v runc && command -v debootstrap && command -v podman-compose,podman runc debootstrap podman-compose)
	@test -e $(CONTAINERS_CONF) || { \
		echo "writing $(CONTAINERS_CONF) (runc, the machine's ulimits)"; \
		mkdir -p $(dir $(CONTAINERS_CONF)) && printf '%s\n' $(CONTAINERS_CONF_LINES) > $(CONTAINERS_CONF); \
	}

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) $(KSERVE_VENV) instance/registry.db* .pytest_cache build *.egg-info registry/inference/native/*.so registry/*.so
