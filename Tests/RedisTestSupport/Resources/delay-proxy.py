"""A TCP proxy on 127.0.0.1 that delays every byte by a fixed time in both directions.

Usage: delay-proxy.py LISTEN_PORT TARGET_PORT DELAY_MS

Used by the failover tests to emulate replication lag between a Redis primary and its replicas:
bytes in flight inside the proxy are lost when it is killed together with the primary, as they
would be when the primary's host crashes. Order is kept; throughput is not limited by the delay.
"""
import asyncio
import sys
import time

LISTEN_PORT, TARGET_PORT, DELAY = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000.0


async def pump(reader, writer):
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            pause = due - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((time.monotonic() + DELAY, data))
    except ConnectionError:
        pass
    queue.put_nowait((0, None))
    await sender


async def handle(client_reader, client_writer):
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", TARGET_PORT)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, upstream_writer), pump(upstream_reader, client_writer), return_exceptions=True)


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN_PORT)
    async with server:
        await server.serve_forever()


asyncio.run(main())
