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

.PHONY: install run serve test test-postgres lint worker beat dev bench clean

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
	PROMETHEUS_MULTIPROC_DIR=$${PROMETHEUS_MULTIPROC_DIR:-$$( [ "$(WEB_CONCURRENCY)" -gt 1 ] && echo "$(CURDIR)/prometheus_multiproc" )} \
	$(VENV)/bin/python -m llmops.serve --host $(HOST) --port $(PORT) --workers $(WEB_CONCURRENCY)

test: install ## The whole suite (SQLite by default; set DATABASE_URL for PostgreSQL)
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check .

worker: install ## Celery worker (needs CELERY_BROKER_URL)
	$(VENV)/bin/celery -A llmops worker --loglevel=INFO

beat: install ## Celery beat (the schedule lives in settings)
	$(VENV)/bin/celery -A llmops beat --loglevel=INFO

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
