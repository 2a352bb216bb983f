"""Scale-out, proved with real processes on one real Postgres (pgvector store): two `remem serve` processes
sharing a database, a `kill -9` of one of them under load, and `remem serve --workers 2`.

Clients are threads sending HTTP requests, alternating between the processes. What must hold: one live copy of a
fact posted by everyone at once, every acknowledged write present, gap-free versions, store and history in
agreement (`Memory.doctor()`, nothing to repair with pgvector), no 5xx, no user seeing another's memories.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from remem import EventType, Memory
from remem.config import Settings
from remem.server.auth import KeyStore
from remem.storage.postgres import LOCK_SCOPES
from test_server_support import free_port

SHARED = "The team offsite is in Porto on the 12th of June"
USERS = [("acme", "alice"), ("acme", "bob"), ("beta", "alice")]  # the same user name in two tenants
START_TIMEOUT = 60.0


def deployment_env(database_url: str, home: Path) -> dict[str, str]:
    """The environment of one server process of the shared deployment (README, *pgvector*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEM_")}
    env.update(REMEM_DATABASE_URL=database_url, REMEM_STORE="pgvector", REMEM_EMBEDDER="fake",
               REMEM_HOME=str(home), REMEM_RATE_LIMIT="0", LITELLM_LOCAL_MODEL_COST_MAP="True")
    return env


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def logged(self) -> str:
        return self.log.read_text(errors="replace")


def launch(args: list[str], env: dict[str, str], log: Path, port: int) -> Server:
    """Start ``remem <args>`` with its output in ``log`` (a file: a full pipe would stall the server)."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "remem.cli", *args, "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    return Server(proc, f"http://127.0.0.1:{port}", log)


def wait_ready(server: Server, deadline: float) -> None:
    while True:
        try:
            if httpx.get(server.url + "/v1/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.proc.poll() is None, f"server exited ({server.proc.returncode}):\n{server.logged()}"
        assert time.monotonic() < deadline, f"server did not start:\n{server.logged()}"
        time.sleep(0.1)


def stop(server: Server) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)
    return server.proc.returncode


@contextmanager
def servers(database_url: str, tmp_path: Path, count: int = 2) -> Iterator[list[Server]]:
    """``count`` separate `remem serve` processes (own REMEM_HOME and port each) on one database."""
    with ExitStack() as stack:
        started: list[Server] = []
        for k in range(count):
            env = deployment_env(database_url, tmp_path / f"home{k}")
            server = launch(["serve", "--no-mcp"], env, tmp_path / f"server{k}.log", free_port())
            started.append(server)
            stack.callback(stop, server)
        deadline = time.monotonic() + START_TIMEOUT
        for server in started:
            wait_ready(server, deadline)
        yield started


def create_keys(database_url: str, tmp_path: Path) -> dict[str, str]:
    """One key per tenant, made as `remem keys create --tenant …` makes them: in the database's key table,
    which every server process reads on every request."""
    keys = KeyStore.for_settings(Settings.from_env(home=tmp_path / "admin", database_url=database_url))
    try:
        return {t: keys.create(tenant=t).api_key for t in sorted({t for t, _ in USERS})}
    finally:
        keys.close()


@contextmanager
def checker(database_url: str, tmp_path: Path) -> Iterator[Memory]:
    """A Memory on the shared database, to look at what the servers wrote."""
    with Memory(tmp_path / "checker", embedder="fake", database_url=database_url, store="pgvector") as memory:
        yield memory


@dataclass
class Call:
    server: int
    method: str
    path: str
    started: float
    ended: float = 0.0
    status: int | None = None  # None: no answer (connection refused or cut)
    body: Any = None
    error: str | None = None


@dataclass
class Client:
    """One client thread's connections (one per server) and the log of every call it made."""

    urls: list[str]
    key: str
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.http = [httpx.Client(base_url=u, headers={"X-API-Key": self.key}, timeout=60) for u in self.urls]

    def call(self, server: int, method: str, path: str, body: Any = None) -> Call:
        call = Call(server, method, path, time.monotonic())
        try:
            response = self.http[server].request(method, path, json=body)
            call.status = response.status_code
            call.body = response.json()
        except httpx.TransportError as exc:
            call.error = f"{type(exc).__name__}: {exc}"
        call.ended = time.monotonic()
        self.calls.append(call)
        return call

    def close(self) -> None:
        for c in self.http:
            c.close()


def add(client: Client, server: int, user: str, text: str) -> Call:
    return client.call(server, "POST", f"/v1/users/{user}/memories", {"messages": [text]})


def update(client: Client, server: int, user: str, memory_id: str, text: str) -> Call:
    return client.call(server, "PATCH", f"/v1/users/{user}/memories/{memory_id}", {"text": text})


def run_threads(work: list[Callable[[], None]]) -> None:
    with ThreadPoolExecutor(len(work)) as pool:
        for f in [pool.submit(w) for w in work]:
            f.result(timeout=120)


def history_versions(memory: Memory, internal: str, memory_id: str) -> list[int]:
    return [e.snapshot.version for e in memory.history(memory_id, user_id=internal) if e.snapshot]


def assert_history_gap_free(memory: Memory, internal: str) -> int:
    """Every memory of the user: its events carry versions 1, 2, … n, and the store holds version n."""
    page = memory.list(user_id=internal, limit=1000, deleted=None)
    for record in page.items:
        versions = history_versions(memory, internal, record.id)
        assert versions == list(range(1, len(versions) + 1)) and versions[-1] == record.version, (record.id, versions)
    return page.total


def assert_store_agrees_with_history(memory: Memory) -> None:
    """`remem doctor`: nothing missing, differing or orphaned, no half-done change (pgvector: never any)."""
    report = memory.doctor()
    assert report.ok and report.problems == [] and report.pending_intents == 0, report
    assert report.memories_checked > 0


# -- 1. two processes, one database ---------------------------------------------------------------------------
PER_THREAD = 4
THREADS = 8


def test_two_servers_share_one_database_without_duplicates_gaps_or_leaks(postgres_url: str, tmp_path: Path) -> None:
    keys = create_keys(postgres_url, tmp_path)
    with servers(postgres_url, tmp_path) as (a, b), checker(postgres_url, tmp_path) as memory:
        urls = [a.url, b.url]
        targets: dict[tuple[str, str], str] = {}
        setup = {t: Client(urls, key) for t, key in keys.items()}
        for tenant, user in USERS:  # one memory per user that every thread will update
            created = add(setup[tenant], 0, user, f"{tenant}/{user} counter at 0")
            assert created.status == 200, created
            targets[(tenant, user)] = created.body["events"][0]["memory_id"]
        barrier = threading.Barrier(len(USERS) * THREADS)
        clients: dict[tuple[str, str, int], Client] = {}

        def worker(tenant: str, user: str, t: int) -> Callable[[], None]:
            client = clients[(tenant, user, t)] = Client(urls, keys[tenant])

            def run() -> None:
                barrier.wait(timeout=60)
                add(client, t % 2, user, SHARED)  # everyone at once, on both servers
                for i in range(PER_THREAD):
                    add(client, (t + i + 1) % 2, user, f"{tenant}/{user} distinct fact {t}.{i}")
                    update(client, (t + i) % 2, user, targets[(tenant, user)], f"{tenant}/{user} counter {t}.{i}")
                client.call((t + 1) % 2, "POST", f"/v1/users/{user}/search", {"query": "distinct fact", "limit": 50})
            return run

        started = time.monotonic()
        run_threads([worker(tenant, user, t) for tenant, user in USERS for t in range(THREADS)])
        elapsed = time.monotonic() - started

        every = [c for client in clients.values() for c in client.calls]
        assert len(every) == len(USERS) * THREADS * (2 + 2 * PER_THREAD)
        assert Counter(c.status for c in every) == Counter({200: len(every)}), [c for c in every if c.status != 200]
        assert {c.server for c in every} == {0, 1}

        for tenant, user in USERS:
            internal = f"{tenant}:{user}"
            mine = [c for (tn, u, _), client in clients.items() if (tn, u) == (tenant, user) for c in client.calls]
            # one live copy of the shared fact: one ADD, seven NOOPs naming it
            shared = [c.body["events"][0] for c in mine if c.method == "POST" and c.path.endswith("/memories")
                      and c.body["events"][0]["text"] == SHARED]
            assert sorted(e["event"] for e in shared) == ["ADD"] + ["NOOP"] * (THREADS - 1)
            (copy,) = {e["memory_id"] for e in shared}
            live = memory.list(user_id=internal, limit=1000).items
            assert [r.id for r in live if r.text == SHARED] == [copy]
            # every acknowledged distinct fact is there, as acknowledged; nothing else is
            distinct = [c.body["events"][0] for c in mine if c.method == "POST" and c.path.endswith("/memories")
                        and c.body["events"][0]["text"] != SHARED]
            assert [e["event"] for e in distinct] == ["ADD"] * THREADS * PER_THREAD
            acked = {e["memory_id"]: e["text"] for e in distinct}
            texts = {r.id: r.text for r in live}
            assert {mid: texts.get(mid) for mid in acked} == acked
            assert set(texts) == {*acked, copy, targets[(tenant, user)]}
            # the updates were serialised across both processes: each answer got its own version, no gaps
            patches = [c.body for c in mine if c.method == "PATCH"]
            assert sorted(p["version"] for p in patches) == list(range(2, 2 + THREADS * PER_THREAD))
            target = memory.get(targets[(tenant, user)], user_id=internal)
            last = max(patches, key=lambda p: p["version"])
            assert (target.version, target.text) == (1 + THREADS * PER_THREAD, last["text"])
            events = memory.history(target.id, user_id=internal)
            assert [e.event for e in events] == [EventType.ADD] + [EventType.UPDATE] * (THREADS * PER_THREAD)
            assert {e.snapshot.version: e.new_text for e in events[1:] if e.snapshot} == {
                p["version"]: p["text"] for p in patches}
            assert assert_history_gap_free(memory, internal) == len(texts)
            # no leak: the API shows the tenant's own user name, and only this user's memories
            assert all(c.body["hits"] for c in mine if c.path.endswith("/search"))
            for c in mine:
                hits = c.body.get("hits") if isinstance(c.body, dict) else None
                records = [h["record"] for h in hits] if hits is not None else (
                    [c.body] if c.method == "PATCH" else [])
                assert all(r["user_id"] == user and r["text"] in {SHARED, *acked.values()} | {
                    p["text"] for p in patches} | {f"{tenant}/{user} counter at 0"} for r in records)
            for server in (0, 1):
                page = setup[tenant].call(server, "GET", f"/v1/users/{user}/memories?limit=200").body
                assert {r["id"] for r in page["items"]} == set(texts)
                assert {r["user_id"] for r in page["items"]} == {user}
        assert sorted(memory.users()) == sorted(f"{t}:{u}" for t, u in USERS)
        assert_store_agrees_with_history(memory)
        for client in [*clients.values(), *setup.values()]:
            client.close()
        print(f"two servers: {len(every)} requests in {elapsed:.1f}s")
    for server in (a, b):
        assert '"status": 5' not in server.logged() and "Traceback" not in server.logged()


# -- 2. kill -9 one process under load --------------------------------------------------------------------------
BATCH = 20


def test_kill_9_of_one_server_loses_no_acknowledged_write(postgres_url: str, tmp_path: Path) -> None:
    keys = create_keys(postgres_url, tmp_path)
    users = USERS[:2]
    with servers(postgres_url, tmp_path) as (victim, survivor), checker(postgres_url, tmp_path) as memory:
        urls = [victim.url, survivor.url]
        setup = Client(urls, keys["acme"])
        targets = {user: add(setup, 1, user, f"{user} counter at 0").body["events"][0]["memory_id"]
                   for _, user in users}
        stop_at: list[float] = []
        killed_at: list[float] = []
        clients: list[tuple[str, Client]] = []

        def worker(user: str, t: int) -> Callable[[], None]:
            client = Client(urls, keys["acme"])
            clients.append((user, client))

            def run() -> None:
                i = 0
                while not stop_at or time.monotonic() < stop_at[0]:
                    server = (t + i) % 2  # keeps writing to both, the dead one included
                    if i % 3 == 2:
                        update(client, server, user, targets[user], f"{user} counter {t}.{i}")
                    else:
                        add(client, server, user, f"{user} fact {t}.{i}")
                    i += 1
                    if killed_at and server == 0:
                        time.sleep(0.005)  # refused at once: do not spin on the dead port
            return run

        def batches() -> None:  # dave's batches of 20 facts, through the victim only: its lock is the victim's
            client = Client(urls, keys["acme"])
            clients.append(("dave", client))
            i = 0
            while not killed_at:
                client.call(0, "POST", "/v1/users/dave/memories",
                            {"messages": [f"dave batch {i} fact {k}" for k in range(BATCH)]})
                i += 1

        def acked(server: int, after: float = 0.0) -> int:
            return sum(1 for _, c in clients for x in list(c.calls)
                       if x.server == server and x.status == 200 and x.started > after)

        def conductor() -> None:
            try:
                direct()
            finally:  # whatever happens, the clients stop
                killed_at.append(killed_at[0] if killed_at else time.monotonic())
                stop_at.append(time.monotonic())

        def direct() -> None:
            deadline = time.monotonic() + 30
            while acked(0) < 30 and time.monotonic() < deadline:
                time.sleep(0.02)
            # kill the victim while it holds dave's cross-process write lock (in the middle of a write)
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                (hashed,) = conn.execute("SELECT hashtext('acme:dave')").fetchone()  # type: ignore[misc]
                while time.monotonic() < deadline and not conn.execute(
                        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s "
                        "AND objid::bigint = %s AND objsubid = 2",
                        (LOCK_SCOPES["write"], hashed & 0xFFFFFFFF)).fetchone():
                    pass
                os.kill(victim.proc.pid, signal.SIGKILL)
                killed_at.append(time.monotonic())
            victim.proc.wait(10)
            # the lock died with the victim's connection: the survivor writes for dave at once
            after_kill = add(setup, 1, "dave", "dave after the kill")
            assert after_kill.status == 200 and after_kill.ended - killed_at[0] < 10, after_kill
            while acked(1, killed_at[0]) < 40 and time.monotonic() < deadline:
                time.sleep(0.02)

        run_threads([conductor, batches, *[worker(user, t) for _, user in users for t in range(3)]])

        assert victim.proc.returncode == -signal.SIGKILL
        kill = killed_at[0]
        every = [(user, c) for user, client in clients for c in client.calls]
        before = [c for _, c in every if c.server == 0 and c.ended < kill]
        after = [c for _, c in every if c.server == 0 and c.started > kill]
        assert before and all(c.status == 200 for c in before), [c for c in before if c.status != 200]
        assert after and all(c.status is None for c in after)  # refused: the process is gone
        survived = [c for _, c in every if c.server == 1]
        assert Counter(c.status for c in survived) == Counter({200: len(survived)}), [
            c for c in survived if c.status != 200]
        assert sum(1 for c in survived if c.started > kill) >= 40
        cut_all = [c for _, c in every if c.server == 0 and c.started < kill < c.ended]
        print(f"kill -9: {len(before)} acknowledged by the victim before, {len(cut_all)} cut "
              f"({Counter(c.method for c in cut_all)}), {len(after)} refused after, "
              f"{len(survived)} served by the survivor")

        # every write acknowledged by either process is there (the cut ones may or may not be: not acknowledged)
        for user in {u for _, u in users}:
            internal = f"acme:{user}"
            texts = {r.id: r.text for r in memory.list(user_id=internal, limit=1000).items}
            mine = [c for u, c in every if u == user and c.status == 200]
            for c in mine:
                if c.method == "POST":
                    event = c.body["events"][0]
                    assert event["event"] == "ADD" and texts.get(event["memory_id"]) == event["text"]
            patches = {c.body["version"]: c.body["text"] for c in mine if c.method == "PATCH"}
            events = memory.history(targets[user], user_id=internal)
            recorded = {e.snapshot.version: e.new_text for e in events if e.snapshot}
            assert patches.items() <= recorded.items()
            assert list(recorded) == list(range(1, len(recorded) + 1))
            assert_history_gap_free(memory, internal)
            cut = [c for u, c in every if u == user and c.status is None and c.ended > kill and c.started < kill]
            assert len(recorded) - 1 - len(patches) <= len(cut)  # at most the cut requests were applied
        # dave's batch cut by the kill is all there or not at all (one transaction)
        dave = [c for u, c in every if u == "dave"]
        applied = memory.list(user_id="acme:dave", limit=1000).total - 1  # "dave after the kill"
        acked_batches = sum(c.status == 200 for c in dave)
        assert acked_batches >= 1 and applied in (BATCH * acked_batches, BATCH * (acked_batches + 1)), (
            applied, acked_batches)
        committed = applied > BATCH * acked_batches
        print(f"kill -9 inside dave's lock: the cut batch was {'' if committed else 'not '}committed")
        assert_history_gap_free(memory, "acme:dave")
        # store and history agree, with nothing to repair, and a fresh open has nothing to recover
        assert_store_agrees_with_history(memory)
    with Memory(tmp_path / "after", embedder="fake", database_url=postgres_url, store="pgvector") as fresh:
        assert fresh.recovered.total == 0
        assert fresh.storage.history.intents() == []


# -- 4. remem serve --workers 2 ---------------------------------------------------------------------------------
def worker_pids(log: str) -> set[int]:
    return {int(p) for p in re.findall(r"Started server process \[(\d+)\]", log)}


def test_serve_workers_2_answers_from_both_processes_and_stops_cleanly(postgres_url: str, tmp_path: Path) -> None:
    """Started on an empty database (both workers open it together, each migrating under the migration lock);
    the key is made while they run. SIGINT stops both workers through their shutdown (Memory closed), exit 0."""
    env = deployment_env(postgres_url, tmp_path / "workers-home")
    server = launch(["serve", "--workers", "2"], env, tmp_path / "workers.log", free_port())
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while len(worker_pids(server.logged())) < 2 or server.logged().count("Application startup complete") < 2:
            assert server.proc.poll() is None and time.monotonic() < deadline, server.logged()
            time.sleep(0.1)
        wait_ready(server, deadline)
        pids = worker_pids(server.logged())
        keys = create_keys(postgres_url, tmp_path)
        acked: dict[str, str] = {}

        def send(n: int) -> None:  # a new connection per request: the kernel hands each to either worker
            r = httpx.post(f"{server.url}/v1/users/carol/memories", headers={"X-API-Key": keys["acme"]},
                           json={"messages": [f"carol fact {n}"]}, timeout=60)
            assert r.status_code == 200, r.text
            event = r.json()["events"][0]
            acked[event["memory_id"]] = event["text"]

        served: set[int] = set()
        n = 0
        while served != pids:  # until the access log shows both workers answering
            assert n < 240, f"only {served} of {pids} answered {n} requests:\n{server.logged()}"
            with ThreadPoolExecutor(6) as pool:
                list(pool.map(send, range(n, n + 24), timeout=60))
            n += 24
            time.sleep(0.2)  # the log lines are written after the answers
            lines = [json.loads(x) for x in server.logged().splitlines() if x.startswith('{"event": "request"')]
            served = {x["pid"] for x in lines if x["route"] == "/v1/users/{user_id}/memories" and x["status"] == 200}
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(30) == 0, server.logged()
    finally:
        stop(server)
    log = server.logged()
    assert {int(p) for p in re.findall(r"Finished server process \[(\d+)\]", log)} == pids
    assert log.count("Application shutdown complete") == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with checker(postgres_url, tmp_path) as memory:
        assert {r.id: r.text for r in memory.list(user_id="acme:carol", limit=1000).items} == acked
        assert_store_agrees_with_history(memory)
    assert "carol fact" not in log and "Traceback" not in log


def test_serve_workers_refuses_an_embedded_store(tmp_path: Path) -> None:
    """Several processes need a shared deployment; the embedded store (the default) or an embedded store next
    to a Postgres history is refused before anything starts, as a usage error."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEM_")}
    env.update(REMEM_HOME=str(tmp_path / "home"), REMEM_EMBEDDER="fake")
    for extra in ({}, {"REMEM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}):
        done = subprocess.run([sys.executable, "-m", "remem.cli", "serve", "--workers", "2", "--port",
                               str(free_port())], env={**env, **extra}, capture_output=True, text=True, timeout=60,
                              check=False)
        message = " ".join(done.stderr.split())
        assert done.returncode == 2, done.stderr
        assert "--workers 2 needs a shared deployment" in message and "REMEM_STORE=pgvector" in message
        assert not (tmp_path / "home").exists()  # refused before anything was opened
