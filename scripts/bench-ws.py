#!/usr/bin/env python3
"""Dashboard websocket benchmark: many clients on `shopflow demo` for a few minutes.

Starts `shopflow demo` (release binary in $SHOPFLOW_BIN) on a free loopback
port, connects CLIENTS websocket clients that read every message, plus SLOW
clients that connect and never read, and runs for DURATION seconds. It prints:

- push latency: receipt time minus the state's publication time (`at`, same
  machine clock), p50 / p99 / max over every delta received;
- the server's resident memory (VmRSS) sampled every 5 s;
- messages received, protocol errors (a delta out of order), and the
  server's counters of skips (slow clients sent a fresh snapshot).

The demo's own dataflow state grows towards its horizon bound during the run;
run once with CLIENTS=0 SLOW=0 for the baseline the clients add to.

Usage: make bench-ws   (or CLIENTS=200 SLOW=10 DURATION=300 python scripts/bench-ws.py)
"""

import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from websockets.asyncio.client import connect

BIN = os.environ.get("SHOPFLOW_BIN", "target/release/shopflow")
CLIENTS = int(os.environ.get("CLIENTS", "200"))
SLOW = int(os.environ.get("SLOW", "10"))
DURATION = float(os.environ.get("DURATION", "300"))
RATE = os.environ.get("RATE", "2000")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name))


class Stats:
    def __init__(self):
        self.latencies = []
        self.messages = 0
        self.errors = 0
        self.snapshots = 0


async def reader(url, stats, stop):
    async with connect(url, max_size=None) as ws:
        seq = None
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=1)
            except asyncio.TimeoutError:
                continue
            now = time.time() * 1000
            msg = json.loads(text)
            stats.messages += 1
            if msg["type"] == "snapshot":
                stats.snapshots += 1
                seq = msg["seq"]
            elif msg["type"] == "delta":
                if seq is not None and msg["seq"] != seq + 1:
                    stats.errors += 1
                seq = msg["seq"]
                stats.latencies.append(now - msg["at"])


async def sleeper(url, stop):
    # Connects and never reads: its socket buffers fill, the server skips it.
    # No keepalive pings: unanswered, they would make the client library hang up.
    async with connect(url, max_size=None, max_queue=1, ping_interval=None):
        await stop.wait()


async def main():
    port = free_port()
    demo = subprocess.Popen([BIN, "demo", "--listen", f"127.0.0.1:{port}", "--rate", RATE],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            sys.exit("demo did not start: " + demo.stderr.read().decode()[-2000:])
        url = f"ws://127.0.0.1:{port}/ws"
        stats, stop = Stats(), asyncio.Event()
        rss0 = rss_mib(demo.pid)
        tasks = [asyncio.create_task(reader(url, stats, stop)) for _ in range(CLIENTS)]
        tasks += [asyncio.create_task(sleeper(url, stop)) for _ in range(SLOW)]
        samples, began = [], time.time()
        while time.time() - began < DURATION:
            await asyncio.sleep(5)
            samples.append(rss_mib(demo.pid))
            print(f"  t={time.time() - began:5.0f}s  rss={samples[-1]:7.1f} MiB  "
                  f"deltas={len(stats.latencies)}", file=sys.stderr)
        clients = metric(port, "shopflow_dashboard_clients")
        skips = metric(port, "shopflow_dashboard_skips_total")
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    lat = sorted(stats.latencies) or [float("nan")]
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [float("nan")] * 99
    print(f"machine: {platform.node()} {os.cpu_count()} cores, {platform.platform()}")
    print(f"clients: {CLIENTS} reading + {SLOW} never reading, {DURATION:.0f} s, demo at {RATE} events/s")
    print("| what | figure |\n|---|---|")
    print(f"| clients connected at the end | {clients:.0f} |")
    print(f"| deltas received | {len(lat)} ({stats.errors} out of order, {stats.snapshots} snapshots) |")
    print(f"| push latency p50 / p99 / max | {q[49]:.1f} / {q[98]:.1f} / {lat[-1]:.1f} ms |")
    print(f"| server RSS: start / max / end | {rss0:.0f} / {max(samples):.0f} / {samples[-1]:.0f} MiB |")
    print(f"| slow clients skipped ahead (skips) | {skips:.0f} |")
    if stats.errors:
        sys.exit("deltas arrived out of order")


if __name__ == "__main__":
    asyncio.run(main())
