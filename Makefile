# eventlake: build, test, run and deploy. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
VENV ?= .venv
PYTHON ?= python3
# Lambda CPU architecture: x86_64 (default) or arm64 (needs the aarch64 Rust target).
ARCH ?= x86_64
LAMBDAS := firehose-transform parquet-writer
CARGO_LAMBDA := $(VENV)/bin/cargo-lambda
# Python tools the tests use, pinned in requirements-test.txt: cargo-lambda, DuckDB
# and pyarrow (independent Parquet readers), moto's server (S3, Glue, SQS emulator).
TOOLS := $(VENV)/.tools-installed
# `make run`, `make query` and the tests share one build: the dev profile
# (Cargo.toml says why).
EVENTLAKE := $(TARGET_DIR)/debug/eventlake
DEMO := $(TARGET_DIR)/demo
# Days of events `make run` generates, up to today: its query prints one row each.
DEMO_DAYS := 7
DEMO_START := today-$(shell echo $$(($(DEMO_DAYS) - 1)))
# Property-test cases per property for `make fuzz`; seconds per target for `make fuzz-libfuzzer`.
FUZZ_CASES ?= 20000
FUZZ_SECONDS ?= 300
# Input size of the ingest benchmark.
BENCH_MIB ?= 1024
# Terraform: the environment (terraform/environments/$(ENV).tfvars) and, when the
# machine has one, a local provider mirror for offline `terraform init`.
ENV ?= dev
TF := terraform -chdir=terraform
TF_PLUGIN_DIR ?= $(wildcard /opt/tf-plugins)
TF_INIT := $(TF) init -input=false $(if $(TF_PLUGIN_DIR),-plugin-dir=$(TF_PLUGIN_DIR))
CHECKOV := $(VENV)-checkov/.installed
# TF_ARGS: more options for apply and destroy, e.g. TF_ARGS='-var region=us-east-1'.
TF_ARGS ?=
TF_VARS = -var-file=environments/$(ENV).tfvars -var lambda_architecture=$(ARCH) \
	-var transform_zip=$(abspath $(TARGET_DIR))/lambda/firehose-transform/bootstrap.zip \
	-var writer_zip=$(abspath $(TARGET_DIR))/lambda/parquet-writer/bootstrap.zip $(TF_ARGS)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'

$(TOOLS): requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

.PHONY: tools
tools: $(TOOLS) ## Install the test and build tools into $(VENV) (cargo-lambda, duckdb, pyarrow, moto)

.PHONY: build
build: $(TOOLS) ## Build the Lambda zips: target/lambda/<name>/bootstrap.zip (ARCH=x86_64|arm64)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(CARGO_LAMBDA) lambda build --release --output-format zip \
		$(if $(filter arm64,$(ARCH)),--arm64,--x86-64) --no-default-features $(addprefix --bin ,$(LAMBDAS))
	@for name in $(LAMBDAS); do ls -l $(TARGET_DIR)/lambda/$$name/bootstrap.zip; done

.PHONY: test
test: $(TOOLS) ## Run every test a contributor must pass (Rust tests, the demo, then test-infra with make e2e's test)
	CARGO_LAMBDA="$(abspath $(CARGO_LAMBDA))" EVENTLAKE_PYTHON="$(abspath $(VENV))/bin/python" \
		MOTO_SERVER="$(abspath $(VENV))/bin/moto_server" cargo test --all-targets
	cargo test --doc
	$(MAKE) test-run
	$(MAKE) test-infra

.PHONY: test-run
test-run: ## `make run` on the test build: the demo ends with its query, one row a day
	rm -rf $(DEMO)/test-lake && mkdir -p $(DEMO)
	$(MAKE) --no-print-directory run LAKE=$(DEMO)/test-lake > $(DEMO)/test-run.log
	@rows=$$(grep -cE '^\| [0-9]{4}-[0-9]{2}-[0-9]{2} +\| [0-9]+ +\| 100 +\|$$' $(DEMO)/test-run.log || true); \
	if [ "$$rows" != $(DEMO_DAYS) ]; then cat $(DEMO)/test-run.log; echo "make run: $$rows day rows, expected $(DEMO_DAYS)" >&2; exit 1; fi; \
	echo "make run: ends with $(DEMO_DAYS) day rows"

# checkov has many pinned dependencies: its own venv, so they cannot clash with moto's.
$(CHECKOV): requirements-checkov.txt
	$(PYTHON) -m venv $(VENV)-checkov
	$(VENV)-checkov/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

.PHONY: test-infra
test-infra: $(TOOLS) build ## Terraform: fmt, offline init, validate, checkov, apply on moto, the stack test and make e2e's test on it, destroy
	terraform fmt -check -recursive -diff terraform
	$(TF_INIT) -backend=false > /dev/null
	$(TF) validate
	@if $(MAKE) --no-print-directory $(CHECKOV); then \
		$(VENV)-checkov/bin/checkov --skip-download -d terraform --config-file terraform/.checkov.yaml; \
	elif [ -n "$(ALLOW_NO_CHECKOV)" ]; then echo "checkov could not be installed: skipped (ALLOW_NO_CHECKOV is set)"; \
	else echo "checkov could not be installed from PyPI; set ALLOW_NO_CHECKOV=1 to run the rest without it" >&2; exit 1; fi
	cargo build --quiet --bin eventlake
	TF_PLUGIN_DIR="$(TF_PLUGIN_DIR)" $(VENV)/bin/python tests/infra/stack_test.py "$(CURDIR)" \
		"$(abspath $(TARGET_DIR))/lambda" "$(EVENTLAKE)" "$(abspath $(VENV))/bin/moto_server" --e2e

# Events per first delivery of the e2e test (its faults add about 13,000 more).
E2E_EVENTS ?= 20000
export E2E_EVENTS

.PHONY: e2e
e2e: $(TOOLS) build ## The pipeline on emulators: apply terraform/ to moto, events through the built Lambdas into the lake, faults
	cargo build --quiet --bin eventlake
	TF_PLUGIN_DIR="$(TF_PLUGIN_DIR)" $(VENV)/bin/python tests/infra/e2e_test.py "$(CURDIR)" \
		"$(abspath $(TARGET_DIR))/lambda" "$(EVENTLAKE)" "$(abspath $(VENV))/bin/moto_server"

.PHONY: deploy
deploy: build ## Deploy the stack to AWS: make deploy ENV=dev|prod (terraform workspace ENV)
	$(TF_INIT)
	$(TF) workspace select -or-create $(ENV)
	$(TF) apply $(TF_VARS)

.PHONY: destroy
destroy: ## Destroy the stack of ENV (make destroy ENV=dev)
	$(TF_INIT)
	$(TF) workspace select $(ENV)
	$(TF) destroy $(TF_VARS)

.PHONY: lint
lint: ## Format check, clippy -D warnings, the module layers, one dependency build for make run and make test
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	$(PYTHON) tests/check_layers.py src
	$(PYTHON) tests/check_one_build.py

.PHONY: check
check: lint test ## lint, then the tests

.PHONY: fmt
fmt: ## Format the code
	cargo fmt --all

LAKE ?= lake

.PHONY: run
# The recipes run under pipefail: no `| head`, whose early exit would fail the
# writer with SIGPIPE once its output outgrows the pipe buffer.
run: ## Run the local pipeline: generate a week of events, ingest them into ./lake, query it
	cargo build --bin eventlake
	mkdir -p $(DEMO)
	$(EVENTLAKE) generate --events 200000 --start $(DEMO_START) --days $(DEMO_DAYS) --duplicates 0.02 --invalid 0.01 > $(DEMO)/events.ndjson
	$(EVENTLAKE) ingest --lake $(LAKE) $(DEMO)/events.ndjson
	@echo "--- a few of the $$(find $(LAKE)/events -name '*.parquet' | wc -l) Parquet files:"
	@find $(LAKE)/events -name '*.parquet' | sort | sed -n 1,3p
	@echo "--- first rejected record and why:"
	@awk '{ print; exit }' $(LAKE)/_rejected/*.ndjson
	@echo "--- eventlake query: events per day (events_unique, the deduplicated view; more: make query Q=funnel):"
	$(EVENTLAKE) query --lake $(LAKE) "SELECT created_date, count(*) AS events, count(DISTINCT event_type) AS event_types FROM events_unique GROUP BY created_date ORDER BY created_date"

Q ?= events_per_type_per_day

.PHONY: query
query: ## Run athena/queries/$(Q).sql on ./lake (make query Q=freshness)
	cargo build --bin eventlake
	$(EVENTLAKE) query --lake $(LAKE) --file athena/queries/$(Q).sql

.PHONY: run-transform
run-transform: ## Run the Firehose transform locally on generated requests and show what it did
	cargo build --bin eventlake
	mkdir -p $(DEMO)
	$(EVENTLAKE) generate --events 50000 --duplicates 0.02 --invalid 0.01 --firehose > $(DEMO)/requests.ndjson
	$(EVENTLAKE) transform --input $(DEMO)/requests.ndjson > $(DEMO)/responses.ndjson 2> $(DEMO)/transform.log
	@echo "--- three rejected records and why:"
	@grep -m 3 '"record rejected"' $(DEMO)/transform.log
	@echo "--- one enriched event:"
	@head -n 1 $(DEMO)/responses.ndjson | $(PYTHON) -c 'import base64, json, sys; r = next(r for r in json.load(sys.stdin)["records"] if r["result"] == "Ok"); print(base64.b64decode(r["data"]).decode(), end=""); print("partition keys:", r["metadata"]["partitionKeys"])'
	@echo "--- summary:"
	@grep '"transform finished"' $(DEMO)/transform.log

.PHONY: bench
# Built without the query engine: neither benchmark uses it, and DataFusion under
# link-time optimization would double the build.
bench: $(TOOLS) ## Benchmarks: transform (3 MB, 20 MB requests), Python baseline, ingest vs DuckDB and pyarrow (1 GiB)
	cargo bench --no-default-features --bench transform
	cargo build --release --quiet --no-default-features --features cli --bin eventlake
	$(TARGET_DIR)/release/eventlake generate --events 2900 --firehose > $(DEMO)/bench-request.json
	$(PYTHON) benches/python_transform.py $(DEMO)/bench-request.json
	$(VENV)/bin/python benches/ingest.py $(TARGET_DIR)/release/eventlake $(BENCH_MIB)

.PHONY: bench-ingest-memory
# Peak memory of ingest on 1M events (330 MiB) and on ten times as many.
bench-ingest-memory: $(TOOLS) ## Ingest's peak memory on 330 MiB and on 3.3 GiB of events (it should not grow)
	cargo build --release --quiet --no-default-features --features cli --bin eventlake
	$(VENV)/bin/python benches/ingest.py $(TARGET_DIR)/release/eventlake 330 --flat

.PHONY: bench-query
# The release build with the query engine: DataFusion under link-time
# optimization takes 15-25 minutes on 2 cores the first time.
bench-query: $(TOOLS) ## Query benchmark: every file in athena/queries/ on 1M events, eventlake (whole process) against DuckDB
	cargo build --release --quiet --bin eventlake
	$(VENV)/bin/python benches/query.py $(TARGET_DIR)/release/eventlake

.PHONY: bench-compaction
# A month of small files compacted; the queries run with the dev build, which has
# the query engine (an optimized one would build DataFusion for many minutes).
bench-compaction: $(TOOLS) ## Compaction benchmark: a generated month in 5-minute flushes, compacted; files, time, memory, queries before and after
	cargo build --release --quiet --no-default-features --features cli --bin eventlake
	cargo build --quiet --bin eventlake
	$(VENV)/bin/python benches/compaction.py $(TARGET_DIR)/release/eventlake --query-binary $(TARGET_DIR)/debug/eventlake

.PHONY: fuzz
fuzz: ## Long property-test run of the transform, the record parser and the JSON path scanner (FUZZ_CASES=20000 each)
	PROPTEST_CASES=$(FUZZ_CASES) cargo test --release --test it properties -- --nocapture
	PROPTEST_CASES=$(FUZZ_CASES) cargo test --release --lib core::json::tests::value_at -- --nocapture

.PHONY: fuzz-libfuzzer
fuzz-libfuzzer: ## libFuzzer (cargo-fuzz) on the record parser, the request transform and the JSON path scanner (FUZZ_SECONDS=300 each)
	command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz --locked
	# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
	cd fuzz && for target in record request json_path; do \
		mkdir -p corpus/$$target && \
		RUSTC_BOOTSTRAP=1 cargo fuzz run $$target corpus/$$target seeds/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=65536; \
	done

.PHONY: clean
clean: ## Remove build outputs and the tool venv
	cargo clean
	rm -rf $(VENV)
