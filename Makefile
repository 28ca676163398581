# sessiond — every target installs the Debian packages it needs first (only when missing).
.PHONY: deps build test run bench bench-redis-client clean

deps:
	bash scripts/install-deps.sh

build: deps
	swift build

# The test command: the whole suite against real redis-server processes the tests start themselves.
test: deps
	swift build --build-tests
	swift test

bench: bench-redis-client

bench-redis-client: deps
	bash scripts/bench-redis-client.sh

clean:
	rm -rf .build
