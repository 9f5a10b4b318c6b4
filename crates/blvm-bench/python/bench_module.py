#!/usr/bin/env python3
"""The Python SDK's side of the benchmarks: `bench-module`'s `rtt` and
`events` modes (crates/blvm-test-modules/src/bin/bench-module.rs) on the
`blvm-module` SDK, printing the same lines, so `blvm-bench python` measures
both SDKs by one method.

- `rtt <n>`: n/10 uncounted `ping`s, then `n` sequential `ping` round trips;
  prints `RTT <p50> <p99> <mean>` in nanoseconds.
- `events <n>`: subscribes to `NewBlock`, prints `READY`, counts events
  until one with height 2^64-1; prints `EVENTS <count> <last seq>
  <ns from the first to the last> <dropped>` (the dropped count is the
  node's to tell: 0 here).

With `BLVM_BENCH_GATE` set it prints `WARM` before the measured span of
`rtt` and `DONE` after each result, each time waiting for a line on stdin
(the bench reads this process's counters meanwhile). Run with the SDK on
`PYTHONPATH` (`sdk/python/src`).
"""
import asyncio
import os
import sys
import time

from blvm_module import ModuleIntegration

U64_MAX = 2**64 - 1


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def hold(tag: str) -> None:
    if os.environ.get("BLVM_BENCH_GATE"):
        say(tag)
        sys.stdin.readline()


async def rtt(integration: ModuleIntegration, n: int) -> None:
    api = integration.node
    for _ in range(n // 10):
        await api.ping()
    # A blocking read of stdin stops the loop, as the Rust module's
    # blocking `hold` stops its runtime: nothing is in flight meanwhile.
    hold("WARM")
    lat = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t = clock()
        await api.ping()
        lat.append(clock() - t)
    lat.sort()
    say(f"RTT {lat[n // 2]} {lat[n * 99 // 100]} {sum(lat) // n}")
    hold("DONE")


async def events(integration: ModuleIntegration) -> None:
    await integration.node.subscribe_events(events=["NewBlock"])
    say("READY")
    count = last_seq = 0
    first = None
    async for event in integration.events():
        if first is None:
            first = time.perf_counter_ns()
        count += 1
        last_seq = event.seq
        if event.name == "NewBlock" and event.payload.get("height") == U64_MAX:
            break
    elapsed = time.perf_counter_ns() - first if first is not None else 0
    say(f"EVENTS {count} {last_seq} {elapsed} 0")
    hold("DONE")


async def main() -> None:
    integration = await ModuleIntegration.from_env()
    mode = os.environ.get("BLVM_BENCH_MODE", "").split()
    if mode[:1] == ["rtt"]:
        await rtt(integration, int(mode[1]) if len(mode) > 1 else 1000)
    elif mode[:1] == ["events"]:
        await events(integration)
    else:
        raise SystemExit(f"bench_module.py: unknown mode {mode}")
    await integration.close()


if __name__ == "__main__":
    asyncio.run(main())
