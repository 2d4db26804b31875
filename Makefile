# llmops — the two commands a newcomer needs:
#   make run    install, migrate SQLite, load models, create a demo key, serve on 127.0.0.1:8000
#   make test   install and run the whole test suite
# Everything else is optional (serve, worker, beat, dev, bench, lint).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_CONCURRENCY ?= 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run serve dev test lint worker beat bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed ## Create the virtualenv and install pinned dependencies

.env:
	@sed "s|^SECRET_KEY=.*|SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')|" \
		.env.example > .env
	@echo "Wrote .env with a fresh SECRET_KEY"

run: install .env ## Embedded defaults: SQLite, in-process cache, simulated models, demo key
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py load_default_models
	@$(PY) manage.py create_api_key --team demo --user demo --json > .llmops-demo-key.json
	@$(PY) -c "import json; print(json.load(open('.llmops-demo-key.json'))['key'])" > .llmops-demo-key
	@echo ""
	@echo "  Demo API key (also in .llmops-demo-key): $$(cat .llmops-demo-key)"
	@echo "  Gateway: http://127.0.0.1:$(PORT)/v1   docs: http://127.0.0.1:$(PORT)/api/docs/"
	@echo ""
	$(MAKE) --no-print-directory serve HOST=127.0.0.1

serve: install ## Production server (uvicorn, WEB_CONCURRENCY workers on HOST:PORT)
	$(PY) manage.py check --fail-level ERROR
	@# Several workers share metrics through files (prometheus_client's multiprocess mode).
	@if [ "$(WEB_CONCURRENCY)" -gt 1 ] && [ -z "$$PROMETHEUS_MULTIPROC_DIR" ]; then \
		export PROMETHEUS_MULTIPROC_DIR="$(CURDIR)/prometheus_multiproc"; fi; \
	exec $(PY) -m llmops.serve --host $(HOST) --port $(PORT) --workers $(WEB_CONCURRENCY)

dev: install .env ## Web + Celery worker + beat together (needs CELERY_BROKER_URL for a real queue)
	@export PROMETHEUS_MULTIPROC_DIR="$(CURDIR)/prometheus_multiproc"; \
	mkdir -p "$$PROMETHEUS_MULTIPROC_DIR"; \
	trap 'kill 0' INT TERM EXIT; \
	$(PY) -m llmops.serve --host $(HOST) --port $(PORT) --workers $(WEB_CONCURRENCY) & \
	sleep 2; \
	$(VENV)/bin/celery -A llmops worker --loglevel=INFO & \
	$(VENV)/bin/celery -A llmops beat --loglevel=INFO -s .celerybeat-schedule & \
	wait

test: install ## The whole suite (SQLite by default; set DATABASE_URL for PostgreSQL)
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

worker: install ## Celery worker (needs CELERY_BROKER_URL)
	$(VENV)/bin/celery -A llmops worker --loglevel=INFO

beat: install ## Celery beat (the schedule lives in settings)
	$(VENV)/bin/celery -A llmops beat --loglevel=INFO

bench: install ## Benchmarks vs LiteLLM (wrk, installed if missing; PostgreSQL, Redis db 8); tables -> docs/performance.md
	@command -v wrk >/dev/null 2>&1 || { echo "wrk missing: installing Debian's wrk"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
	$(PY) -m bench.run_all --update-docs $(BENCH_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
