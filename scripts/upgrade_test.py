#!/usr/bin/env python3
"""A rolling upgrade from the landed version to this one, on real processes (scripts/upgrade-test.sh
builds both and runs this once on a single Redis and once on a Redis Cluster).

    upgrade_test.py LANDED_BINARY NEW_BINARY single|cluster WORK_DIR

1. Two landed instances serve alone; sessions are made.
2. Two new instances join behind the same round-robin balancer (this script's): the mixed fleet
   keeps writing layout 1. Every session made by either version is read, patched, rotated, listed
   and revoked through every instance of both.
3. The landed instances are replaced one at a time (each taken out of the balancer first, as a
   rolling deploy does), with the same checks between.
4. `sessiond --finalize-layout` makes the newest layout (3) active; the running instances follow;
   every session is still there with its last acknowledged data, and moves into it when used; the
   landed version's library is removed.
5. A landed instance started after finalization: what it creates is served (and moved) by the new
   ones; sessions it cannot see are 404 to it, never a 5xx, never a lost write.

All along, four clients each run create / patch / read-back / delete cycles through the balancer,
so every step happens under load, and each patch must be read back (through whichever instance the
balancer picks next) with the value just written. Any 5xx, any lost session or write, any
disagreement between instances fails the run. Every process it starts is stopped by PID.
"""
import atexit, json, os, signal, socket, subprocess, sys, threading, time, urllib.error, urllib.request

LANDED, NEW, MODE, WORK = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
# The newest storage layout this build writes (3: layout 2's keys, with events); the landed
# version writes layout 1.
NEWEST = 3
processes = []
counts = {"requests": 0}
load = {"cycles": 0, "failures": [], "stop": False}  # the clients that run all along (below)


def free_port(bus=False):
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if not bus:
            return port
        if port + 10000 < 65536:
            b = socket.socket()
            try:
                b.bind(("127.0.0.1", port + 10000))
                b.close()
                return port
            except OSError:
                pass


@atexit.register
def stop_everything():
    """Whatever ends the run (a failed check included), every process it started is stopped."""
    load["stop"] = True
    for process in reversed(processes):
        stop(process)


def start(argv, log, env=None):
    process = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    processes.append(process)
    return process


def stop(process, sig=signal.SIGTERM):
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def eventually(condition, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return
        except (OSError, urllib.error.URLError, subprocess.CalledProcessError):
            pass
        time.sleep(0.05)
    raise SystemExit(f"upgrade test ({MODE}): {what} did not happen within {timeout} s")


def check(condition, what):
    if not condition:
        raise SystemExit(f"upgrade test ({MODE}): {what}")


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), "-c", *args], capture_output=True, text=True, check=True).stdout.strip()


# --- Redis ----------------------------------------------------------------------------------------
redis_ports = []
if MODE == "single":
    port = free_port()
    start(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", WORK],
          f"{WORK}/redis-{port}.log")
    redis_ports.append(port)
    redis_env = {"SESSIOND_REDIS_URL": f"redis://127.0.0.1:{port}"}
else:
    for _ in range(3):
        port = free_port(bus=True)
        directory = f"{WORK}/node-{port}"
        os.makedirs(directory)
        start(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", directory,
               "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000"],
              f"{directory}/redis.log")
        redis_ports.append(port)
    for port in redis_ports:
        eventually(lambda: redis_cli(port, "ping") == "PONG", f"redis on {port}")
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in redis_ports], "--cluster-yes"],
                   capture_output=True, check=True)
    eventually(lambda: all("cluster_state:ok" in redis_cli(p, "cluster", "info") for p in redis_ports), "the cluster forming")
    redis_env = {"SESSIOND_REDIS_CLUSTER": ",".join(f"127.0.0.1:{p}" for p in redis_ports)}
for port in redis_ports:
    eventually(lambda: redis_cli(port, "ping") == "PONG", f"redis on {port}")


def primaries():
    return [p for p in redis_ports if redis_cli(p, "role").split("\n")[0] == "master"]


def libraries():
    names = set()
    for port in primaries():
        out = subprocess.run(["redis-cli", "-p", str(port), "function", "list"], capture_output=True, text=True, check=True).stdout.split("\n")
        names.update(out[i + 1] for i, line in enumerate(out) if line == "library_name")
    return names


def exists(key):
    return redis_cli(redis_ports[0], "exists", key) == "1"


def layout_one_key(session_id):
    return f"sd:s:{{{session_id}}}"


def layout_two_key(session_id):
    return f"sd:{{b{int(session_id[:4], 16) % 1024}}}:s:{session_id}"


# --- sessiond instances and the balancer ---------------------------------------------------------
class Instance:
    def __init__(self, binary, name):
        self.binary, self.name, self.port = binary, name, free_port()
        env = dict(os.environ, SESSIOND_PORT=str(self.port), SESSIOND_INSTANCE=name, SESSIOND_LOG_LEVEL="warning", **redis_env)
        self.process = start([binary], f"{WORK}/{name}.log", env)
        self.url = f"http://127.0.0.1:{self.port}"
        eventually(lambda: self.request("GET", "/readyz")[0] == 200, f"{name} ready")

    def request(self, method, path, body=None, token=None):
        status, body = self.call(method, path, body, token)
        check(status < 500, f"{self.name} answered {status} to {method} {path}: {body}")
        return status, body

    def call(self, method, path, body=None, token=None):
        """The status and the JSON body (or the text of a 5xx), checking nothing."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Session-Token"] = token
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with lock:
            counts["requests"] += 1
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        if status >= 500:
            return status, text
        return status, (json.loads(text) if text else None)

    def layout(self):
        return self.request("GET", "/readyz")[1].get("layout")


fleet = []
turn = [0]
lock = threading.Lock()


def balancer():
    """The next instance in rotation: a round-robin load balancer in front of the fleet."""
    with lock:
        turn[0] += 1
        return fleet[turn[0] % len(fleet)]


def take_out(instance):
    with lock:
        fleet.remove(instance)


def put_in(instance):
    with lock:
        fleet.append(instance)


# --- the load all along -------------------------------------------------------------------------


def load_client(number):
    while not load["stop"]:
        try:
            load_cycle(number)
        except Exception as error:  # an unanswered request (refused, reset, timed out) is a failure too
            load["failures"].append(f"{type(error).__name__}: {error}")


def load_cycle(number):
    """create, 10 × (patch through one instance, read back through the next), delete, read: 404."""
    status, body = balancer().call("POST", "/v1/sessions", {"user": f"load-{number}", "data": {"c": 0}})
    if status != 201:
        load["failures"].append(f"create: {status} {body}")
        return
    token = body["token"]
    for count in range(1, 11):
        via = balancer()
        status, body = via.call("PATCH", "/v1/session", {"c": count}, token=token)
        if status != 200:
            load["failures"].append(f"patch on {via.name}: {status} {body}")
            break
        via = balancer()
        status, body = via.call("GET", "/v1/session?touch=false", token=token)
        if status != 200 or body["data"].get("c") != count:
            load["failures"].append(f"read-back on {via.name}: {status} {body if status >= 500 else body and body.get('data')}, wrote {count}")
            break
    via = balancer()
    status, body = via.call("DELETE", "/v1/session", token=token)
    if status != 204:
        load["failures"].append(f"delete on {via.name}: {status} {body}")
    elif balancer().call("GET", "/v1/session", token=token)[0] != 404:
        load["failures"].append("a deleted session was still served")
    load["cycles"] += 1


# --- the sessions and what every instance must say about them -----------------------------------
sessions = {}  # id -> {"token", "user", "data"}; ended ones are removed


def create(via, index):
    user = f"user-{index % 4}"
    data = {"n": index, "note": "x" * 50}
    status, body = via.request("POST", "/v1/sessions", {"user": user, "data": data})
    check(status == 201, f"create on {via.name}: {status}")
    sessions[body["session"]["id"]] = {"token": body["token"], "user": user, "data": data}


def verify_everywhere(session_id):
    expected = sessions[session_id]
    for instance in fleet:
        status, body = instance.request("GET", "/v1/session?touch=false", token=expected["token"])
        check(status == 200, f"{instance.name} lost session {session_id} ({status})")
        check(body["data"] == expected["data"], f"{instance.name} has {body['data']} for {session_id}, not {expected['data']}")


def work_round(label, size=12):
    """Sessions made, changed and ended through the balancer; every outcome seen by every instance."""
    base = len(sessions) * 100 + turn[0]
    for index in range(size):
        create(balancer(), base + index)
    for number, session_id in enumerate(list(sessions)):
        entry = sessions[session_id]
        if number % 3 == 0:  # a patch through one instance, seen by all
            entry["data"] = dict(entry["data"], patched=f"{label}-{number}")
            status, _ = balancer().request("PATCH", "/v1/session", {"patched": entry["data"]["patched"]}, token=entry["token"])
            check(status == 200, f"patch: {status}")
        if number % 5 == 1:  # a rotation through one instance; the new token works everywhere
            status, body = balancer().request("POST", "/v1/session/rotate", {}, token=entry["token"])
            check(status == 200, f"rotate: {status}")
            entry["token"] = body["token"]
        verify_everywhere(session_id)
    # Listing: every instance lists exactly the user's live sessions.
    for user in {entry["user"] for entry in sessions.values()}:
        expected = {sid for sid, entry in sessions.items() if entry["user"] == user}
        for instance in fleet:
            status, body = instance.request("GET", f"/v1/users/{user}/sessions")
            check(status == 200 and {s["id"] for s in body["sessions"]} == expected,
                  f"{instance.name} lists {sorted(s['id'] for s in body['sessions'])} for {user}, not {sorted(expected)}")
    # Ends: a logout, an administrator's revoke; gone on every instance.
    for number, session_id in enumerate(list(sessions)[:4]):
        entry = sessions.pop(session_id)
        if number % 2:
            status, _ = balancer().request("DELETE", "/v1/session", token=entry["token"])
        else:
            status, _ = balancer().request("DELETE", f"/v1/sessions/{session_id}")
        check(status == 204, f"delete: {status}")
        for instance in fleet:
            check(instance.request("GET", "/v1/session", token=entry["token"])[0] == 404, f"{instance.name} still serves an ended session")
    print(f"  {label}: {len(sessions)} live sessions, each read on all {len(fleet)} instances "
          f"({', '.join(i.name for i in fleet)}); {load['cycles']} load cycles so far", flush=True)


try:
    print(f"== upgrade test on {MODE} Redis", flush=True)
    fleet += [Instance(LANDED, "landed-1"), Instance(LANDED, "landed-2")]
    clients = [threading.Thread(target=load_client, args=(number,), daemon=True) for number in range(4)]
    for client in clients:
        client.start()
    work_round("landed fleet")

    for instance in [Instance(NEW, "new-1"), Instance(NEW, "new-2")]:
        put_in(instance)
    check(all(i.layout() == {"active": 1, "newest_supported": NEWEST} for i in fleet if i.binary == NEW),
          "new instances beside the landed version must write layout 1")
    work_round("mixed fleet, 2 landed + 2 new")
    check(all(exists(layout_one_key(sid)) for sid in sessions), "the mixed fleet must write what the landed version reads (layout 1)")

    for number, old in enumerate([i for i in fleet if i.binary == LANDED], start=3):
        take_out(old)  # out of the balancer first, as a rolling deploy takes it out of rotation
        time.sleep(0.5)  # the requests it is answering finish (the landed version has no drain)
        stop(old.process)
        put_in(Instance(NEW, f"new-{number}"))
        work_round(f"{old.name} replaced by new-{number}")
    check(all(i.layout() == {"active": 1, "newest_supported": NEWEST} for i in fleet),
          "without the operator's step the fleet stays at layout 1 (landed instances cannot be seen)")

    env = dict(os.environ, **redis_env)
    finalize = subprocess.run([NEW, "--finalize-layout"], env=env, capture_output=True, text=True, timeout=60)
    check(finalize.returncode == 0 and f"layout {NEWEST} is active" in finalize.stdout, f"--finalize-layout: {finalize.returncode} {finalize.stdout} {finalize.stderr}")
    eventually(lambda: all(i.layout()["active"] == NEWEST for i in fleet), f"every instance following layout {NEWEST}", timeout=15)
    for session_id in sessions:
        verify_everywhere(session_id)
    check(all(exists(layout_two_key(sid)) and not exists(layout_one_key(sid)) for sid in sessions),
          "every session used after finalization must have moved into the newest layout (layout 2's keys)")
    eventually(lambda: "sessiond" not in libraries(), "the landed version's library removed", timeout=15)
    work_round(f"new fleet, layout {NEWEST}")
    print(f"  finalized: {len(sessions)} sessions all there, moved into the newest layout; libraries now {sorted(libraries())}", flush=True)

    late = Instance(LANDED, "landed-late")
    status, body = late.request("POST", "/v1/sessions", {"user": "late", "data": {"from": "landed"}})
    check(status == 201, f"the late landed instance's create: {status}")
    sessions[body["session"]["id"]] = {"token": body["token"], "user": "late", "data": {"from": "landed"}}
    verify_everywhere(body["session"]["id"])  # served by every new instance (found in layout 1, moved)
    some_new = next(sid for sid, entry in sessions.items() if entry["user"] != "late")
    check(late.request("GET", "/v1/session", token=sessions[some_new]["token"])[0] == 404,
          "a landed instance after finalization cannot see layout 2: a 404, never a 5xx")
    stop(late.process)
    print(f"  a landed instance started after finalization: its session is served by the new ones; it answers 404 for layout 2", flush=True)
    load["stop"] = True
    for client in clients:
        client.join(timeout=30)
    check(not load["failures"], f"the load all along failed {len(load['failures'])} times: {load['failures'][:5]}")
    check(load["cycles"] > 0, "the load all along made no cycle")
    print(f"  the load all along: {load['cycles']} create/patch/read-back/delete cycles, every write read back", flush=True)
    print(f"upgrade test ({MODE}): every step held ({counts['requests']} requests, no 5xx, no session or write lost)", flush=True)
finally:
    stop_everything()
