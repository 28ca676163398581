#!/usr/bin/env python3
"""What Redis spends on one session write (a PATCH of one 100-byte attribute), for the session
functions of two revisions side by side: each library on its own redis-server, the same writes
sent to both in turns, and the redis-server process's CPU time (INFO cpu) per write, median of
the turns. CPU time rather than wall time, because the project's VMs lose up to half their time to
their host (steal) and wall-clock figures move by 50 % between runs.

    python3 Benchmarks/redis-write-cost.py OLD_REV [NEW_REV]   (NEW_REV: the working tree)

Knows the write function's arguments of protocol versions 2 and 3 (3 added the size limits).
"""
import re, socket, statistics, struct, subprocess, sys, tempfile, time

SOURCE = "Sources/SessionService/Store/SessionFunctions.swift"


def library(revision):
    """The Lua of a revision's SessionFunctions.library and its protocol version."""
    text = open(SOURCE).read() if revision is None else subprocess.check_output(["git", "show", f"{revision}:{SOURCE}"], text=True)
    version = re.search(r"static let protocolVersion = (\d+)", text).group(1)
    body = text[text.index('RedisFunctionLibrary(source: #"""') + len('RedisFunctionLibrary(source: #"""'):text.index('"""#)')]
    lua = "\n".join(line[8:] if line.startswith("        ") else line.strip() for line in body.split("\n")).strip("\n")
    return lua.replace("\\#(protocolVersion)", version).replace("\\#(functionPrefix)", f"sessiond_v{version}_") + "\n", version


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        arg = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Server:
    def __init__(self, lua, version):
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
        self.version = version
        self.key = "sd:s:{00112233445566778899aabbccddeeff}"
        self.digest = b"\xaa" * 16
        self.writes = 0
        assert not self.call("FUNCTION", "LOAD", lua).startswith(b"-")
        prefix = f"sessiond_v{version}_"
        reply = self.call("FCALL", prefix + "create", "1", self.key, b"\xff" * 8, "", "1800000", "86400000", self.digest, "",
                          "a", '"x"', "b", '"y"', "c", '"z"')
        assert reply.startswith(b":1"), reply

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
            args = ["FCALL", f"sessiond_v{self.version}_write", "1", self.key, struct.pack(">Q", self.writes), self.digest, "",
                    "patch", "60000", "0", "revoke"]
            if self.version != "2":
                args += ["262144", "256"]
            batch.append(command(*(args + ["cart", value])))
            if len(batch) == 100:
                self.flush(batch)
                batch = []
        if batch: self.flush(batch)
        return (self.cpu() - before) / count * 1e6

    def flush(self, batch):
        self.socket.sendall(b"".join(batch))
        data = b""
        while data.count(b"\r\n") < len(batch): data += self.socket.recv(1 << 20)
        assert b"-" not in data[:1], data[:200]

    def stop(self):
        self.process.kill()
        self.process.wait()


def main():
    old_revision = sys.argv[1]
    new_revision = sys.argv[2] if len(sys.argv) > 2 else None
    old, new = Server(*library(old_revision)), Server(*library(new_revision))
    try:
        old.write(5000), new.write(5000)  # warm-up
        turns = []
        for turn in range(10):  # each goes first in half of the turns
            if turn % 2:
                b = new.write(20000)
                a = old.write(20000)
            else:
                a = old.write(20000)
                b = new.write(20000)
            turns.append((a, b))
    finally:
        old.stop(), new.stop()
    print("turns (old, new) µs CPU per write:", [(round(a, 1), round(b, 1)) for a, b in turns])
    print(f"{old_revision} (protocol {old.version}): {statistics.median(a for a, _ in turns):.1f} µs;"
          f" {new_revision or 'working tree'} (protocol {new.version}): {statistics.median(b for _, b in turns):.1f} µs")


main()
