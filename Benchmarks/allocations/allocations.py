#!/usr/bin/env python3
"""Heap allocations per request of a sessiond binary, counted by malloc-counter.so (LD_PRELOAD).

    python3 Benchmarks/allocations/allocations.py SESSIOND_BINARY [--check RECORDED_JSON]
    make allocations   (a release build, checked against Benchmarks/allocations/recorded.json)

Why an LD_PRELOAD counter: it counts the shipped release binary, unchanged, under real HTTP and a
real redis-server, with no package dependency and nothing compiled into sessiond; every allocator
entry point of glibc is counted (malloc, calloc, realloc, the aligned ones), as swift-nio's
alloc-counter does. The counts are deterministic: the same binary gives the same figures run after
run (to a tenth), whatever the machine's load.

Starts its own redis-server and the binary on free loopback ports (sessiond's default
configuration: events on, no API keys on loopback), creates a session with a user and 3 attributes
of 100 bytes, then for each request kind sends WARMUP requests and then REQUESTS more over one
keep-alive connection, reading the counter before and after. What sessiond allocates meanwhile on
its own (the event log's tail, the sweeper, fleet announcements) is counted while it is idle for as
long as the requests took, and taken off. Prints allocations per request, and the budgets of issue #23
beside them; with --check, fails (exit 1) when one is more than 5 % over the figure the file
records for it (a regression), like swift-nio's allocation thresholds.
"""
import http.client, json, os, socket, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
# What each request may allocate at most (issue #23's budgets).
BUDGETS = {"GET /healthz": 20, "GET /v1/auth": 45, "GET /v1/session": 50, "PATCH /v1/session": 70, "POST /v1/sessions": 90}
WARMUP, REQUESTS = 2000, 4000
VALUE = "v" * 100
DATA = {"profile": VALUE, "cart": VALUE, "prefs": VALUE}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition(): return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"allocations: {what} within {timeout} s")


class Counter:
    def __init__(self, path):
        self.path = path

    def read(self):
        with open(self.path, "rb") as file:
            return int.from_bytes(file.read(8), "little")


def main():
    binary = sys.argv[1]
    budgets = json.load(open(sys.argv[3])) if len(sys.argv) > 3 and sys.argv[2] == "--check" else None
    work = tempfile.mkdtemp(prefix="allocations-")
    library = os.path.join(work, "malloc-counter.so")
    subprocess.check_call(["clang", "-O2", "-shared", "-fPIC", "-o", library, os.path.join(HERE, "malloc-counter.c")])
    processes = []
    try:
        redis_port, port = free_port(), free_port()
        processes.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL))
        counter = Counter(os.path.join(work, "count"))
        environment = dict(os.environ, LD_PRELOAD=library, MALLOC_COUNTER_FILE=counter.path)
        processes.append(subprocess.Popen([binary, "--port", str(port), "--redis-url", f"redis://127.0.0.1:{redis_port}",
                                           "--log-level", "warning", "--instance", "allocations"],
                                          env=environment, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "sessiond.log"), "w")))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def request(method, path, body=None, headers={}):
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()

        def ready():
            try:
                return request("GET", "/readyz")[0] == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                return False
        wait_until(ready, 30, "sessiond was not ready")
        status, body = request("POST", "/v1/sessions", json.dumps({"user": "alloc", "data": DATA}), {"Content-Type": "application/json"})
        assert status == 201, (status, body)
        token = json.loads(body)["token"]
        create_body = json.dumps({"user": "alloc", "data": DATA})
        kinds = [
            ("GET /healthz", lambda: request("GET", "/healthz"), 200),
            ("GET /v1/auth", lambda: request("GET", "/v1/auth", headers={"X-Session-Token": token}), 200),
            ("GET /v1/session", lambda: request("GET", "/v1/session", headers={"X-Session-Token": token}), 200),
            ("PATCH /v1/session", lambda: request("PATCH", "/v1/session", json.dumps({"cart": VALUE}),
                                                  {"X-Session-Token": token, "Content-Type": "application/json"}), 200),
            ("POST /v1/sessions", lambda: request("POST", "/v1/sessions", create_body, {"Content-Type": "application/json"}), 201),
        ]
        results = {}
        for name, send, expected in kinds:
            for _ in range(WARMUP):
                status, body = send()
                assert status == expected, (name, status, body)
            before, started = counter.read(), time.monotonic()
            for _ in range(REQUESTS):
                send()
            after, took = counter.read(), time.monotonic() - started
            # The same time idle: what sessiond allocates on its own.
            idle_before = counter.read()
            time.sleep(took)
            idle = counter.read() - idle_before
            results[name] = (after - before - idle) / REQUESTS
            print(f"{name}: {results[name]:.1f} allocations per request (budget {BUDGETS[name]}; {after - before} in {REQUESTS} requests,"
                  f" {idle} while idle as long)")
        if budgets:
            over = [f"{name}: {results[name]:.1f} > {budgets[name]} + 5 %" for name in budgets if results[name] > budgets[name] * 1.05]
            if over:
                sys.exit("allocations over their recorded figures: " + "; ".join(over))
    finally:
        for process in reversed(processes):
            process.kill()
            process.wait()


main()
