# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types pytest bench sandbox clean lock

$(STAMP): pyproject.toml dev/pyproject.toml constraints.txt
	@# The local Apache Kafka of tests, demo and bench needs Java 17+ and Maven: install them
	@# where we can (root with apt-get); elsewhere the dev tooling falls back to Tansu.
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null; \
	  else echo "notice: no Java 17+/Maven: the dev broker will be Tansu, not Apache Kafka"; fi; }
	@# The browser tests (tests/browser) drive Debian's Chromium through Playwright (whose own
	@# browser download is not used); without it they skip, and fail under CI=true.
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "notice: no chromium: the browser tests (tests/browser) will skip"; fi; }
	@# promtool and the Prometheus server check the chart's alerts and dashboard (tests/ops);
	@# without them those tests skip, and fail under CI=true.
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "notice: no promtool/prometheus: the alert and dashboard checks (tests/ops) will skip"; fi; }
	@# PgBouncer in transaction mode fronts Postgres in tests/worker/test_connections.py;
	@# without it that test skips, and fails under CI=true.
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null; \
	  else echo "notice: no pgbouncer: the PgBouncer test (tests/worker/test_connections.py) will skip"; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]' -e ./dev
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/zoom-dev demo

test: lint types pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

sandbox: $(STAMP)
	$(BIN)/zoom-dev sandbox

# Refresh the constraints file from a clean resolution of pyproject.toml.
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet '.[dev]' ./dev
	.lockenv/bin/pip freeze --exclude talivo-zoom-worker --exclude talivo-zoom-devtools > constraints.txt
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The chaos suite (tests/chaos, about 9 minutes): real worker processes while Postgres, the
# broker and Zoom fail mid-stream, SIGKILLs during a backlog, 10,000 hostile messages. Not part
# of `make test`; its fast tests (the fault proxy, the invariants) are.
.PHONY: chaos
chaos: $(STAMP)
	$(BIN)/pytest -q -m chaos tests/chaos

# Known vulnerabilities in every pinned dependency (constraints.txt: production and dev), from
# PyPI's advisories (AUDIT_SERVICE=osv for osv.dev). Not part of `make test`: it needs that
# database online. constraints.txt pins everything, so nothing is resolved or installed
# (--no-deps --disable-pip); --strict fails when a package could not be audited, instead of
# reporting "no known vulnerabilities" about packages it never checked. AUDIT_FLAGS adds
# pip-audit options (tests/security/test_audit.py points --osv-url at a local stand-in).
AUDIT_SERVICE ?= pypi
AUDIT_FLAGS ?=
.PHONY: audit
audit: $(STAMP)
	$(BIN)/pip-audit --requirement constraints.txt --no-deps --disable-pip --strict \
	  --vulnerability-service $(AUDIT_SERVICE) --progress-spinner off $(AUDIT_FLAGS)

# The Grafana dashboard as code (devservices.dashboards, grafana-foundation-sdk): regenerate
# the JSON the chart ships; tests/ops fails when the checked-in file is stale.
.PHONY: dashboards
dashboards: $(STAMP)
	$(BIN)/python -m devservices.dashboards helm/zoom-worker/dashboards/zoom-worker.json

# The hostile review's attacks (tests/attacks, about 4 minutes): frozen and killed workers,
# crossing leases, 429 storms. Not part of `make test` or CI; the ones that still succeed are
# marked xfail with the limitation they show.
.PHONY: attack
attack: $(STAMP)
	ATTACK=1 $(BIN)/pytest -q -m attack tests/attacks
