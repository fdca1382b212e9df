#!/usr/bin/env python3
"""A slowloris swarm for bench/: N connections to 127.0.0.1:PORT, each sending a request head one
byte a second and never finishing it; a connection the proxy cuts is opened again, as an attacker
would. Runs for --secs and stops by itself; prints how many connections it held and how many were
cut. Loopback only. Standard library only.

  python3 bench/lib/slowloris.py --port 18203 --conns 1000 --secs 12
"""
import argparse
import asyncio
import random
import sys
import time

HEAD = b"GET /slow HTTP/1.1\r\nHost: bench\r\nX-Slow: "


async def one(port, stop_at, stats):
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["open"] += 1
        try:
            writer.write(HEAD[:1])
            await writer.drain()
            await asyncio.sleep(random.random())  # spread the swarm's bytes over the second
            sent = 1
            while time.monotonic() < stop_at:
                byte = HEAD[sent:sent + 1] if sent < len(HEAD) else b"a"
                writer.write(byte)
                await writer.drain()
                sent += 1
                try:
                    # A cut shows as EOF (or a 408 the proxy sends first) within the second.
                    await asyncio.wait_for(reader.read(4096), 1.0)  # EOF or a reply: either way, done
                    stats["cut"] += 1
                    break
                except asyncio.TimeoutError:
                    pass
        except (OSError, ConnectionError):
            stats["cut"] += 1
        finally:
            stats["open"] -= 1
            writer.close()


async def main(args):
    stats = {"open": 0, "cut": 0, "connect_errors": 0, "peak": 0}
    stop_at = time.monotonic() + args.secs
    tasks = []
    for i in range(args.conns):
        tasks.append(asyncio.create_task(one(args.port, stop_at, stats)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # ramp: the listen backlog is not the subject
    while time.monotonic() < stop_at:
        stats["peak"] = max(stats["peak"], stats["open"])
        await asyncio.sleep(0.25)
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"slowloris: peak {stats['peak']} open, {stats['cut']} cut, {stats['connect_errors']} connect errors")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--secs", type=float, default=12)
    args = ap.parse_args()
    if args.secs > 600 or args.conns > 20000:
        sys.exit("slowloris: bounded to 600 s and 20000 connections")
    asyncio.run(main(args))
