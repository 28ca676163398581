#!/usr/bin/env python3
"""What Redis spends on one session write (a PATCH of one 100-byte attribute) and one session read
(the plain HGETALL of a GET), for the session functions and storage layout of two revisions side by
side: each library on its own redis-server, the same requests sent to both in turns, and the
redis-server process's CPU time (INFO cpu) per request, median of the turns. CPU time rather than wall time, because the project's VMs lose up to half their time to
their host (steal) and wall-clock figures move by 50 % between runs.

    python3 Benchmarks/redis-write-cost.py OLD_REV [NEW_REV]   (NEW_REV: the working tree; '.' for
                                                                either: the working tree, an A/A run)

Each of 30 turns sends 5,000 requests to each server, the two taking turns to go first; besides the
medians it prints the median of the per-turn differences, which cancels most of the VM's drift
(an A/A run of the working tree against itself gives ±0.3 µs per write).

Knows the write function's arguments of protocol versions 2 to 5 (3 added the size limits; 4 the
bucketed storage layout: a session's key named by its bucket, the deadline index as the last key
and the index member as the first argument; 5 events: the outbox as the last key, and the index
member and the event log's retention as the last two arguments; run with events on, as sessiond's
default).
"""
import hashlib, re, socket, statistics, struct, subprocess, sys, tempfile, time

SOURCE = "Sources/SessionService/Store/SessionFunctions.swift"


def library(revision):
    """The Lua of a revision's SessionFunctions.library and its protocol version."""
    text = open(SOURCE).read() if revision in (None, ".") else subprocess.check_output(["git", "show", f"{revision}:{SOURCE}"], text=True)
    version = re.search(r"static let protocolVersion = (\d+)", text).group(1)
    body = text[text.index('RedisFunctionLibrary(source: #"""') + len('RedisFunctionLibrary(source: #"""'):text.index('"""#)')]
    lua = "\n".join(line[8:] if line.startswith("        ") else line.strip() for line in body.split("\n")).strip("\n")
    lua = lua.replace("\\#(protocolVersion)", version).replace("\\#(functionPrefix)", f"sessiond_v{version}_")
    # Protocol 5's backstop (EventSettings.backstop, in SessionEvents.swift).
    return lua.replace("\\#(EventSettings.backstop.milliseconds)", "3600000") + "\n", version


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        arg = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def count_replies(data):
    """How many whole RESP2 replies `data` holds."""
    def skip(at):  # the end of the reply at `at`, or None when it is not all there
        end = data.find(b"\r\n", at)
        if end < 0: return None
        kind, value = data[at:at + 1], data[at + 1:end]
        if kind == b"$":
            length = int(value)
            return end + 2 if length < 0 else (end + 4 + length if len(data) >= end + 4 + length else None)
        if kind == b"*":
            at = end + 2
            for _ in range(max(int(value), 0)):
                at = skip(at)
                if at is None: return None
            return at
        return end + 2
    count, at = 0, 0
    while at < len(data):
        at = skip(at)
        if at is None: break
        count += 1
    return count


class Server:
    """One revision's library and a session it writes. With `beside`, in that Server's redis-server
    (its own session, in another bucket), so that both revisions' calls run in one process."""
    def __init__(self, lua, version, beside=None, seed="old"):
        self.process = None
        if beside:
            self.port = beside.port
            self.socket = socket.create_connection(("127.0.0.1", self.port))
            self._setup(lua, version, seed)
            return
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.directory = tempfile.mkdtemp(prefix="write-cost-")
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--dir", self.directory], stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                self.socket = socket.create_connection(("127.0.0.1", self.port))
                break
            except OSError:
                if time.time() > deadline: raise
                time.sleep(0.05)
        self._setup(lua, version, seed)

    # Writes and reads go round 1,000 sessions: one hash's place in memory alone moved a write's
    # cost by up to 2 µs between otherwise identical sessions.
    SESSIONS = 1000

    def _setup(self, lua, version, seed):
        self.version = version
        self.digest = b"\xaa" * 16
        self.writes = 0
        loaded = self.call("FUNCTION", "LOAD", lua)
        assert not loaded.startswith(b"-") or b"already exists" in loaded, loaded
        self.sessions = []  # (its key, the write's KEYS with their count, the place arguments)
        for index in range(self.SESSIONS):
            session = hashlib.md5(f"{seed}-{index}".encode()).hexdigest()
            bucket = int(session[:4], 16) % 1024
            key = "sd:s:{%s}" % session
            keys, place = ["1", key], []  # protocol 5: the place arguments come last
            if int(version) >= 5:
                key = "sd:{b%d}:s:%s" % (bucket, session)
                keys, place = ["3", key, "sd:{b%d}:d" % bucket, "sd:{e}:log"], [bytes.fromhex(session), "86400000"]
            elif int(version) >= 4:
                key = "sd:{b%d}:s:%s" % (bucket, session)
                keys = ["2", key, "sd:{b%d}:d" % bucket, bytes.fromhex(session)]
            reply = self.call("FCALL", f"sessiond_v{version}_create", *keys, b"\xff" * 8, "", "1800000", "86400000", self.digest, "",
                              "a", '"x"', "b", '"y"', "c", '"z"', *place)
            assert reply.startswith(b":1"), reply
            self.sessions.append((key, keys, place))

    def call(self, *args):
        self.socket.sendall(command(*args))
        return self.socket.recv(1 << 20)

    def cpu(self):
        info = self.call("INFO", "cpu").decode()
        values = dict(line.split(":") for line in info.split("\r\n") if line.startswith(("used_cpu_user:", "used_cpu_sys:")))
        return float(values["used_cpu_user"]) + float(values["used_cpu_sys"])

    def write(self, count):
        """CPU µs per write over `count` patches, each with a new write id, pipelined 100 at a time."""
        value = '"' + "v" * 98 + '"'
        before = self.cpu()
        batch = []
        for _ in range(count):
            self.writes += 1
            _, keys, place = self.sessions[self.writes % len(self.sessions)]
            args = ["FCALL", f"sessiond_v{self.version}_write", *keys, struct.pack(">Q", self.writes), self.digest, "",
                    "patch", "60000", "0", "revoke"]
            if self.version != "2":
                args += ["262144", "256"]
            batch.append(command(*(args + ["cart", value] + place)))
            if len(batch) == 100:
                self.flush(batch)
                batch = []
        if batch: self.flush(batch)
        return (self.cpu() - before) / count * 1e6

    def read(self, count):
        """CPU µs per read (HGETALL of the session, as a GET sends it) over `count` reads, pipelined 100 at a time."""
        before = self.cpu()
        for start in range(0, count, 100):
            self.flush([command("HGETALL", self.sessions[(start + index) % len(self.sessions)][0]) for index in range(min(100, count - start))])
        return (self.cpu() - before) / count * 1e6

    def flush(self, batch):
        self.socket.sendall(b"".join(batch))
        data = b""
        while count_replies(data) < len(batch): data += self.socket.recv(1 << 20)
        assert b"-" not in data[:1], data[:200]

    def stop(self):
        if self.process:
            self.process.kill()
            self.process.wait()


def main():
    old_revision = sys.argv[1]
    new_revision = sys.argv[2] if len(sys.argv) > 2 else None
    (old_lua, old_version), (new_lua, new_version) = library(old_revision), library(new_revision)
    old = Server(old_lua, old_version)
    # In one redis-server when the two libraries can live side by side (different protocol
    # versions, or the very same code): two processes differ by more than what is measured (an
    # A/A run of two processes gave up to ±2 µs per write, one process ±0.3).
    shared = old_version != new_version or old_lua == new_lua
    new = Server(new_lua, new_version, beside=old if shared else None, seed="new")
    print(f"both revisions' calls in {'one redis-server' if shared else 'two redis-servers (the same protocol version, other code)'}")
    try:
        old.write(5000), new.write(5000), old.read(5000), new.read(5000)  # warm-up
        for name, measure in (("write (PATCH)", Server.write), ("read (GET's HGETALL)", Server.read)):
            turns = []
            for turn in range(30):  # each goes first in half of the turns
                if turn % 2:
                    b = measure(new, 5000)
                    a = measure(old, 5000)
                else:
                    a = measure(old, 5000)
                    b = measure(new, 5000)
                turns.append((a, b))
            print(f"{name}: median of the per-turn differences, new - old: {statistics.median(b - a for a, b in turns):+.2f} µs")
            print(f"{name}: {old_revision} (protocol {old.version}): {statistics.median(a for a, _ in turns):.2f} µs;"
                  f" {new_revision or 'working tree'} (protocol {new.version}): {statistics.median(b for _, b in turns):.2f} µs")
    finally:
        old.stop(), new.stop()


main()
