# sessiond — every target installs the Debian packages it needs first (only when missing).
.PHONY: deps build test run bench bench-redis-client contract-test clean

deps:
	bash scripts/install-deps.sh

build: deps
	swift build

# The test command: the Swift suite against real redis-server processes the tests start themselves,
# then the contract test (openapi.yaml validated, schemathesis against a live sessiond).
test: deps
	bash scripts/test.sh

# Serve on 127.0.0.1:8080, starting a local redis-server when none answers (see scripts/run.sh).
run: deps
	bash scripts/run.sh $(ARGS)

contract-test: deps
	swift build
	bash scripts/contract-test.sh

# sessiond over HTTP next to webdis and redis-benchmark in one run (see BENCHMARKS.md; ~7 minutes).
# SOAK_SECONDS=600 adds the 10-minute memory soak.
bench:
	bash scripts/install-deps.sh wrk webdis
	bash scripts/bench-http.sh

# The Redis client alone next to redis-benchmark.
bench-redis-client: deps
	bash scripts/bench-redis-client.sh

clean:
	rm -rf .build
