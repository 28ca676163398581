#!/usr/bin/env python3
"""Whether the expiry sweeper keeps up: sessions whose idle deadlines pass at more than 1,000 a
second, and how late each one's `session.expired` is recorded.

    python3 Benchmarks/expiry-sweep.py [SESSIONS] [SESSIOND_BINARY]   (20000; .build/release/sessiond)

Starts a redis-server and two sessiond instances (events on, the default) on free 127.0.0.1 ports,
creates SESSIONS sessions with a 2 s idle timeout through both as fast as 16 keep-alive clients
can, and never touches them again. Then reads every `session.expired` from `/v1/events` and prints
the rate at which deadlines passed, the rate at which they were recorded, and how long after its
deadline each was recorded (the log entry's own time, in its id): median, p99 and max. Everything
started is stopped by PID.
"""
import calendar, http.client, json, os, socket, statistics, subprocess, sys, tempfile, threading, time

SESSIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
BINARY = sys.argv[2] if len(sys.argv) > 2 else ".build/release/sessiond"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(port, deadline):
    while time.time() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"sessiond on {port} was not ready in time")


def milliseconds(text):
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(text[20:23])


work = tempfile.mkdtemp(prefix="expiry-sweep-")
processes = []
try:
    redis_port = free_port()
    processes.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                       "--dir", work], stdout=subprocess.DEVNULL))
    ports = [free_port(), free_port()]
    for index, port in enumerate(ports):
        processes.append(subprocess.Popen([BINARY, "--port", str(port), "--redis-url", f"redis://127.0.0.1:{redis_port}",
                                           "--instance", f"sweep-{index}", "--log-level", "warning"],
                                          stdout=open(os.path.join(work, f"sessiond-{index}.log"), "w"), stderr=subprocess.STDOUT))
    for port in ports:
        wait_ready(port, time.time() + 30)

    created = []
    lock = threading.Lock()

    def client(number, count):
        connection = http.client.HTTPConnection("127.0.0.1", ports[number % 2], timeout=10)
        for _ in range(count):
            connection.request("POST", "/v1/sessions", body='{"user":"sweep","idle_timeout":2}',
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            body = json.loads(response.read())
            assert response.status == 201, body
            with lock:
                created.append((body["session"]["id"], milliseconds(body["session"]["expires_at"])))

    threads = [threading.Thread(target=client, args=(n, SESSIONS // 16)) for n in range(16)]
    for thread in threads: thread.start()
    for thread in threads: thread.join()
    deadlines = {session: deadline for session, deadline in created}
    first, last = min(deadlines.values()), max(deadlines.values())

    expired = {}
    after = None
    give_up = time.time() + 60
    connection = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=40)
    while len(expired) < len(deadlines) and time.time() < give_up:
        connection.request("GET", "/v1/events?limit=1000&wait=5" + (f"&after={after}" if after else ""))
        page = json.loads(connection.getresponse().read())
        after = page["next"]
        for event in page["events"]:
            if event["type"] == "session.expired" and event["session"]["id"] in deadlines:
                expired.setdefault(event["session"]["id"], int(event["id"].split("-")[0]))
    lags = sorted(recorded - deadlines[session] for session, recorded in expired.items())
    span = max((last - first) / 1000, 0.001)
    recorded_span = max((max(expired.values()) - min(expired.values())) / 1000, 0.001) if expired else 0
    print(f"{len(deadlines)} sessions; their deadlines passed over {span:.1f} s ({len(deadlines) / span:.0f} a second)")
    print(f"{len(expired)} recorded as session.expired over {recorded_span:.1f} s ({len(expired) / max(recorded_span, 0.001):.0f} a second)")
    if lags:
        print(f"recorded after the deadline: median {statistics.median(lags)} ms, p99 {lags[int(len(lags) * 0.99) - 1]} ms, max {lags[-1]} ms")
    sys.exit(0 if len(expired) == len(deadlines) else 1)
finally:
    for process in reversed(processes):
        process.kill()
        process.wait()
