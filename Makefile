# sessiond — every target installs the Debian packages it needs first (only when missing).
.PHONY: deps build test fuzz run bench bench-redis-client allocations contract-test cluster cluster-down demo host-crash-demo clean

deps:
	bash scripts/install-deps.sh

build: deps
	swift build

# The test command: the Swift suite against real redis-server processes the tests start themselves,
# the session API suites again on valkey-server (Valkey 8, from bookworm-backports), then the
# contract test (openapi.yaml validated, schemathesis against a live sessiond), the Kubernetes
# manifests (built, schema-validated, held to their policy) and the alert rules (promtool) checked,
# the compose files' check, and the scripted demo (a rolling restart under load among its steps)
# against the demo cluster run as plain processes.
test:
	bash scripts/install-deps.sh haproxy docker-compose nginx valkey-server python3-venv python3-yaml
	bash scripts/test.sh

# The request parsers and the HTTP request path under libFuzzer (FUZZ_SECONDS each, default 60;
# make test runs it too).
fuzz: deps
	bash scripts/fuzz.sh

# Serve on 127.0.0.1:8080, starting a local redis-server when none answers (see scripts/run.sh).
run: deps
	bash scripts/run.sh $(ARGS)

contract-test: deps
	swift build
	bash scripts/contract-test.sh

# sessiond over HTTP next to webdis, redis-benchmark and the session stores people deploy instead
# (Benchmarks/peers: Go redistore, Flask-Session, starsessions), in one run (see BENCHMARKS.md; ~12 minutes).
# SOAK_SECONDS=600 adds the 10-minute memory soak.
bench:
	bash scripts/install-deps.sh wrk webdis python3-venv golang-go golang-github-gorilla-sessions-dev \
		golang-github-boj-redistore-dev golang-github-gomodule-redigo-dev
	bash scripts/bench-http.sh

# Heap allocations per request (/healthz, /v1/auth, session GET, PATCH, create) of a release build,
# counted by an LD_PRELOAD malloc counter; fails on a regression of more than 5 % over the figures
# in Benchmarks/allocations/recorded.json (see BENCHMARKS.md, "Allocations per request").
allocations: deps
	swift build -c release --product sessiond
	python3 Benchmarks/allocations/allocations.py .build/release/sessiond --check Benchmarks/allocations/recorded.json

# The Redis client alone next to redis-benchmark.
bench-redis-client: deps
	bash scripts/bench-redis-client.sh

# The demo cluster of docker-compose.yml as plain processes on 127.0.0.1 (HAProxy, 3 sessiond,
# Redis primary + 2 replicas, 3 sentinels, the nginx gateway and its application); prints the URLs
# and API key. CLUSTER_PORT=8090 by default.
# REDIS=cluster: docker-compose.cluster.yml's topology instead (a Redis Cluster of 3 primaries with
# 2 replicas each under the same sessiond instances).
REDIS ?= sentinel
cluster:
	bash scripts/install-deps.sh haproxy nginx
	REDIS=$(REDIS) bash scripts/cluster.sh up

cluster-down:
	bash scripts/cluster.sh down

# The scripted demo against the running cluster (make cluster first).
demo:
	bash scripts/demo.sh

# What a host crash costs each durability mode (the async loss depends on the machine's speed, so
# it is a demonstration outside make test; README's failover section quotes its figures).
host-crash-demo:
	bash scripts/host-crash-demo.sh

clean:
	rm -rf .build
