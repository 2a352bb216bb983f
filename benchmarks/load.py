"""Bounded load run against one `remem serve` process on loopback (httpx + asyncio).

Starts `remem serve` (local ONNX embedder by default, rate limit off, a fresh data directory), creates a tenant
key, seeds a few memories per user, then runs CLIENTS concurrent clients for DURATION seconds, each looping
over searches and adds (SEARCH_SHARE of requests are searches). Reports requests/s and p50/p95/p99 latency per
operation and overall, the error count (must be 0), and verifies afterwards that every acknowledged add is
present (listing every user's memories through the API).

    python benchmarks/load.py                       # 60 s, 32 clients, local embedder
    python benchmarks/load.py --duration 10 --clients 8 --embedder fake
    python benchmarks/load.py --json results/load.json

Exit status 1 if any request failed or any acknowledged add is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TOPICS = ["coffee", "hiking", "Lisbon", "the dentist", "piano lessons", "a red bike", "the marathon", "sushi",
          "her sister", "the new job", "tomatoes", "a trip to Oslo", "chess", "the cat", "yoga", "tax forms"]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"search": [], "add": []})
    errors: list[str] = field(default_factory=list)
    acked: dict[str, set[str]] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def client_loop(cid: int, http: httpx.AsyncClient, users: list[str], stop_at: float, share: float,
                      stats: Stats) -> None:
    rng = random.Random(cid)
    i = 0
    while time.monotonic() < stop_at:
        user = rng.choice(users)
        topic = rng.choice(TOPICS)
        op = "search" if rng.random() < share else "add"
        t0 = time.perf_counter()
        try:
            if op == "search":
                r = await http.post(f"/v1/users/{user}/search", json={"query": f"what about {topic}?", "limit": 5})
            else:
                text = f"{user} mentioned {topic} (client {cid}, note {i})"
                r = await http.post(f"/v1/users/{user}/memories", json={"messages": text, "categories": ["load"]})
            elapsed = time.perf_counter() - t0
            if r.status_code != 200:
                stats.errors.append(f"{op} {r.status_code} {r.text[:200]}")
                continue
            stats.latencies[op].append(elapsed)
            if op == "add":
                for e in r.json()["events"]:
                    if e["event"] == "ADD":
                        stats.acked.setdefault(user, set()).add(e["memory_id"])
        except httpx.HTTPError as exc:
            stats.errors.append(f"{op} {type(exc).__name__}: {exc}")
        i += 1


async def verify(http: httpx.AsyncClient, acked: dict[str, set[str]]) -> tuple[int, int]:
    """(acknowledged adds, of which missing)."""
    missing = 0
    for user, ids in acked.items():
        present: set[str] = set()
        offset: int | None = 0
        while offset is not None:
            page = (await http.get(f"/v1/users/{user}/memories", params={"offset": offset, "limit": 1000})).json()
            present |= {r["id"] for r in page["items"]}
            offset = page["next_offset"]
        missing += len(ids - present)
    return sum(len(v) for v in acked.values()), missing


async def run(url: str, key: str, args: argparse.Namespace) -> dict[str, object]:
    users = [f"user{n:02d}" for n in range(args.users)]
    limits = httpx.Limits(max_connections=args.clients + 4, max_keepalive_connections=args.clients + 4)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60, limits=limits) as http:
        for u in users:  # a few memories per user so searches have something to rank
            r = await http.post(f"/v1/users/{u}/memories",
                                json={"messages": [f"{u} likes {t}" for t in TOPICS[:4]], "categories": ["seed"]})
            r.raise_for_status()
        stats = Stats()
        start = time.monotonic()
        await asyncio.gather(*(client_loop(c, http, users, start + args.duration, args.search_share, stats)
                               for c in range(args.clients)))
        wall = time.monotonic() - start
        acked, missing = await verify(http, stats.acked)
    rows = []
    for op, lat in [*stats.latencies.items(), ("all", stats.latencies["search"] + stats.latencies["add"])]:
        rows.append({"op": op, "requests": len(lat), "rps": len(lat) / wall, "p50_ms": pct(lat, 50) * 1000,
                     "p95_ms": pct(lat, 95) * 1000, "p99_ms": pct(lat, 99) * 1000,
                     "mean_ms": (statistics.fmean(lat) * 1000) if lat else float("nan")})
    return {"wall_s": wall, "clients": args.clients, "users": args.users, "embedder": args.embedder,
            "rows": rows, "errors": len(stats.errors), "error_samples": stats.errors[:5],
            "acked_adds": acked, "missing_adds": missing}


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str, str, Path]:
    home = Path(args.home or tempfile.mkdtemp(prefix="remem-load-"))
    env = {**os.environ, "REMEM_HOME": str(home), "REMEM_EMBEDDER": args.embedder}
    cli = [sys.executable, "-m", "remem.cli"]
    key = subprocess.run([*cli, "keys", "create", "--tenant", "load"], env=env, check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([*cli, "serve", "--port", str(port), "--rate-limit", "0", "--no-mcp",
                             "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/v1/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("remem serve did not start")
        time.sleep(0.3)
    return proc, url, key, home


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of sustained load (default 60)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    ap.add_argument("--users", type=int, default=20, help="distinct users (default 20)")
    ap.add_argument("--search-share", type=float, default=0.8, help="share of searches (default 0.8)")
    ap.add_argument("--embedder", default="local", help="embedder of the server (default: local ONNX)")
    ap.add_argument("--home", help="data directory (default: a fresh temporary one)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()
    proc, url, key, home = start_server(args)
    try:
        result = asyncio.run(run(url, key, args))
    finally:
        proc.terminate()
        proc.wait(30)
        if not args.home:
            shutil.rmtree(home, ignore_errors=True)
    print(f"remem serve load run: {result['wall_s']:.1f} s, {args.clients} clients, {args.users} users, "
          f"embedder {args.embedder}, data {home}, CPUs {os.cpu_count()}")
    print("| op | requests | req/s | p50 ms | p95 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in result["rows"]:  # type: ignore[attr-defined]
        print(f"| {row['op']} | {row['requests']} | {row['rps']:.1f} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} "
              f"| {row['p99_ms']:.1f} |")
    print(f"errors: {result['errors']}  acknowledged adds: {result['acked_adds']}  "
          f"missing after the run: {result['missing_adds']}")
    for sample in result["error_samples"]:  # type: ignore[attr-defined]
        print("  error:", sample)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["errors"] == 0 and result["missing_adds"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
