# The two commands of the README are `make run` (or `cargo run --release -- run samples/`) and `make test`.
# Everything here works offline once the package registries have been reached once.

NODE_PACKAGES := statemachine/lint statemachine/conformance cdk
LAMBDAS := validate detect-faces render-variant record-result
export CDK_DISABLE_CLI_TELEMETRY := 1
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: run test node-deps rust-test node-test lint lambdas deploy bootstrap bench fuzz

## The embedded default: run the whole pipeline locally on the shipped sample images.
run:
	cargo run --release -- run samples/

## Every test in the repository: Rust (unit, handlers against a local S3 server, end-to-end through the
## real ASL file, executor conformance against aws-local-stepfunctions), the ASL linters, the CDK tests.
test: node-deps rust-test node-test

node-deps:
	@for dir in $(NODE_PACKAGES); do \
	  if [ ! -d $$dir/node_modules ] || [ $$dir/package-lock.json -nt $$dir/node_modules ]; then \
	    echo "npm ci in $$dir"; npm ci --prefix $$dir --no-audit --no-fund || exit 1; \
	  fi; \
	done

rust-test:
	cargo test --workspace --all-targets

node-test:
	npm test --prefix statemachine/lint
	npm test --prefix cdk

## What CI checks besides the tests.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## Build the four arm64 Lambda bootstraps into target/lambda/<name>/bootstrap (needs `pip install cargo-lambda`
## and the aarch64-unknown-linux-gnu Rust target).
lambdas:
	@command -v cargo-lambda >/dev/null 2>&1 || { echo "cargo-lambda is missing: pip install cargo-lambda (it brings zig)"; exit 1; }
	@rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu || \
	  echo "note: the aarch64-unknown-linux-gnu target may be missing: rustup target add aarch64-unknown-linux-gnu"
	cargo lambda build --release --arm64 $(foreach f,$(LAMBDAS),-p $(f))

## Context options for deploy, e.g.
##   make deploy CDK_CONTEXT="-c workflowType=standard -c alarmEmail=ops@example.com"
## (cdk/README.md lists them all).
CDK_CONTEXT ?=

## Once per account and region, before the first deploy: the account of the current credentials, the region of
## AWS_REGION (or the profile). Run from the repo root, where no cdk.json makes the CLI synthesize the app.
bootstrap:
	npm ci --prefix cdk --no-audit --no-fund
	cdk/node_modules/.bin/cdk bootstrap --no-notices

## Install the CDK packages, build the Lambdas, deploy the stack to the account of the current AWS credentials.
deploy: lambdas
	npm ci --prefix cdk --no-audit --no-fund
	cd cdk && npx cdk deploy --no-notices $(CDK_CONTEXT) || { \
	  echo; echo "Deploy failed. If CloudFormation says the environment is not bootstrapped (no CDKToolkit stack or"; \
	  echo "cdk-hnb659fds-* bucket), run 'make bootstrap' once for this account and region, then 'make deploy' again."; \
	  exit 1; }

## Benchmarks against sharp (never part of `make test`).
bench:
	bash bench/run.sh

## Fuzz every parser for FUZZ_SECONDS each (see README, "Hardening").
fuzz:
	bash fuzz/run.sh
