#!/usr/bin/env python3
"""Keep-alive clients doing create/read/patch/read/delete cycles against a sessiond URL until told to
stop, counting every request that did not get the answer it should.

    scripts/keepalive-load.py URL API_KEY STOP_FILE [CLIENTS]

Runs until STOP_FILE exists (10 minutes at most), then prints one JSON line: requests, failed (a wrong status, a wrong
body, or the connection closed or reset under a request), failures (the first few, described),
answered_by (requests per X-Sessiond-Instance). Used by scripts/demo.sh's rolling restart: each
client keeps one connection open to the load balancer for as long as that connection lives, as a
pooled HTTP client does. Every wait has a deadline (10 s per request).
"""
import http.client
import json
import os
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

url, api_key, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]
clients = int(sys.argv[4]) if len(sys.argv) > 4 else 16
target = urlsplit(url)
lock = threading.Lock()
requests = 0
failures = []
answered_by = Counter()


class Failed(Exception):
    pass


def client(number):
    connection = None
    cycle = 0
    while not os.path.exists(stop_file) and time.monotonic() - started < 600:
        cycle += 1
        if connection is None:
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=10)

        def call(method, path, token=None, body=None, expect=200):
            global requests
            with lock:
                requests += 1
            headers = {"Authorization": f"Bearer {api_key}"}
            if token:
                headers["X-Session-Token"] = token
            if body is not None:
                headers["Content-Type"] = "application/json"
                body = json.dumps(body)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                raise Failed(f"{method} {path}: {type(error).__name__}: {error}")
            with lock:
                answered_by[response.getheader("X-Sessiond-Instance", "?")] += 1
            if response.status != expect:
                raise Failed(f"{method} {path}: {response.status} {payload[:200]!r}")
            return json.loads(payload) if payload else None

        try:
            created = call("POST", "/v1/sessions", body={"user": f"load-{number}", "data": {"n": 0}}, expect=201)
            token = created["token"]
            if call("GET", "/v1/session", token)["data"] != {"n": 0}:
                raise Failed("GET /v1/session: the data just created is not there")
            call("PATCH", "/v1/session", token, {"n": cycle})
            read = call("GET", "/v1/session", token)
            if read["data"] != {"n": cycle}:
                raise Failed(f"GET /v1/session: {read['data']} after patching n to {cycle}")
            call("DELETE", "/v1/session", token, expect=204)
        except Failed as failure:
            with lock:
                failures.append(str(failure))
            # The connection may be broken: the next cycle opens a new one, as a pool would.
            connection.close()
            connection = None
    if connection is not None:
        connection.close()


threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
started = time.monotonic()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout=60)
print(json.dumps({
    "clients": clients,
    "seconds": round(time.monotonic() - started, 1),
    "requests": requests,
    "failed": len(failures),
    "failures": failures[:10],
    "answered_by": dict(sorted(answered_by.items())),
}))
