"""Crash trials: a child process writes memories and is killed with ``SIGKILL`` at a chosen or random moment;
the parent reopens the data directory (recovery runs) and checks what remem promises:

- store and history agree (``Memory.doctor()`` finds nothing, no intent is left);
- every operation the child acknowledged is there, exactly (an operation in flight may have happened or not,
  but never half: an import is all or nothing, a batch of adds has no duplicates);
- an erasure that started is finished: the user is gone from store and history, and no byte of their text is
  left in any file of the data directory;
- other users are untouched.

Two ways to pick the moment. *Hooked* (deterministic, used by the test suite): the N-th call to one of the
write path's steps (store writes, intent begin/commit, the erasure's steps) kills the process just before or
just after it runs. *Timed* (``benchmarks/crash.py``): the child runs random operations in a loop, logging each
before it starts and acknowledging it when it returns, and a timer kills it at a random moment.

Run the child as ``python -m remem.testing.crash child HOME TRIAL_JSON`` (what :func:`run_trial` does).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

Op = Literal["add", "bulk", "update", "delete", "restore", "import", "forget", "loop"]
OPS: tuple[Op, ...] = ("add", "bulk", "update", "delete", "restore", "import", "forget")
#: ``bulk``: one add of this many texts for user bella (more than the writer's embedding batch of 256).
BULK = 600
#: The write-path steps a hooked trial can die at (object attribute paths on a Memory).
HOOKS = ("store.upsert", "store.set_payload", "store.delete", "store.delete_user", "store._create_shard",
         "storage.history.begin", "storage.history.commit", "storage.history.forget_user")
MARKER = "zebrafish"  # in every text of the user a trial erases: its bytes must leave the files


class Trial(BaseModel):
    """One crash trial: ``op`` (or ``loop`` for timed trials), where to die, and a seed."""

    op: Op
    kill_at: int | None = None  # hooked: die at this call (1-based) of any hook …
    when: Literal["before", "after"] = "after"  # … just before or just after it runs
    hook: str | None = None  # only count this hook (None: all of HOOKS)
    delay: float | None = None  # timed: die after this many seconds
    seed: int = 0


class TrialResult(BaseModel):
    trial: Trial
    killed: bool
    acked: int = Field(description="operations the child acknowledged (checked after the crash)")
    in_flight: str | None = None
    problems: list[str] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


# -- the data a trial starts from ------------------------------------------------------------------------------
def prepare(home: Path) -> None:
    """A template data directory: alice (40 facts, one deleted), bob (20), erin (30, with the marker, to be
    erased), and an export file of 300 memories of a new user ivan (to import)."""
    from ..memory.core import Memory

    with Memory(home, embedder="fake") as m:
        ids = [e.memory_id for e in m.add([f"alice fact number {i}" for i in range(40)], user_id="alice").events]
        m.delete(str(ids[-1]), user_id="alice")
        m.add([f"bob fact number {i}" for i in range(20)], user_id="bob")
        m.add([f"{MARKER} erin secret number {i}" for i in range(30)], user_id="erin")
        with Memory(home.parent / "ivan-src", embedder="fake") as src:
            src.add([f"ivan imported memory {i}" for i in range(300)], user_id="ivan")
            src.export(home / "ivan.jsonl")
    shutil.rmtree(home.parent / "ivan-src")


# -- the child -------------------------------------------------------------------------------------------------
def _install_hooks(memory: Any, trial: Trial) -> list[int]:
    count = [0]

    def kill() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(owner: Any, name: str, label: str) -> None:
        real = getattr(owner, name)

        def hooked(*args: Any, **kwargs: Any) -> Any:
            if trial.hook is None or trial.hook == label:
                count[0] += 1
                if count[0] == trial.kill_at and trial.when == "before":
                    kill()
                result = real(*args, **kwargs)
                if count[0] == trial.kill_at and trial.when == "after":
                    kill()
                return result
            return real(*args, **kwargs)

        setattr(owner, name, hooked)

    for label in HOOKS:
        path = label.split(".")
        owner = memory
        for part in path[:-1]:
            owner = getattr(owner, part)
        if hasattr(owner, path[-1]):
            wrap(owner, path[-1], label)
    return count


class _Journal:
    """Append-only, fsynced: ``start`` before an operation, ``ack`` when it returned."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, **entry: Any) -> None:
        os.write(self._fd, (json.dumps(entry) + "\n").encode())
        os.fsync(self._fd)


def _plan(memory: Any, op: str, rng: random.Random, n: int) -> dict[str, Any]:
    """What an operation will do (journaled before it starts, so the check knows what may be half done)."""
    if op == "add":
        return {"texts": [f"alice new fact {n}.{i}" for i in range(3)]}
    if op == "bulk":
        return {"texts": [f"bella bulk fact {n}.{i}" for i in range(BULK)]}
    if op in ("update", "delete"):
        live = memory.list(user_id="alice", limit=1000).items
        return {"id": rng.choice(live).id, "text": f"alice updated fact {n}"} if live else {}
    if op == "restore":
        trash = memory.list(user_id="alice", deleted=True, limit=1000).items
        return {"id": rng.choice(trash).id} if trash else {}
    return {}


def _execute(memory: Any, op: str, plan: dict[str, Any], home: Path) -> dict[str, Any]:
    """Run one planned operation; returns what the journal acknowledges."""
    if op == "add":
        return {"ids": [e.memory_id for e in memory.add(plan["texts"], user_id="alice").events]}
    if op == "bulk":
        return {"added": len(memory.add(plan["texts"], user_id="bella").added)}
    if op == "update" and plan:
        return {"version": memory.update(plan["id"], plan["text"], user_id="alice").version}
    if op == "delete" and plan:
        memory.delete(plan["id"], user_id="alice")
    elif op == "restore" and plan:
        memory.restore(plan["id"], user_id="alice")
    elif op == "import":
        memory.import_(home / "ivan.jsonl")
    elif op == "forget":
        memory.forget_user("erin")
    return {}


def child(home: Path, trial: Trial) -> None:
    from ..memory.core import Memory

    journal = _Journal(home / "journal.jsonl")
    memory = Memory(home, embedder="fake")
    rng = random.Random(trial.seed)
    count = _install_hooks(memory, trial) if trial.kill_at is not None else [0]
    if trial.delay is not None:
        threading.Timer(trial.delay, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
    ops = [trial.op] if trial.op != "loop" else None
    n = 0
    while True:
        op = ops[n] if ops is not None else rng.choice(("add", "add", "bulk", "update", "delete", "restore",
                                                        "import", "forget"))
        plan = _plan(memory, op, rng, n)
        journal.write(kind="start", op=op, n=n, **plan)
        done = _execute(memory, op, plan, home)
        journal.write(kind="ack", op=op, n=n, **plan, **done)
        n += 1
        if ops is not None and n >= len(ops):
            break
    journal.write(kind="hooks", count=count[0])
    os._exit(0)  # no close(): what was acknowledged must survive as it is


# -- the parent ------------------------------------------------------------------------------------------------
def run_trial(template: Path, work: Path, trial: Trial, *, timeout: float = 180.0) -> TrialResult:
    """Copy the template, run the child, then reopen and check (see the module docstring)."""
    home = work / "home"
    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(template, home)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "remem.testing.crash", "child", str(home), trial.model_dump_json()],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    killed = proc.returncode == -signal.SIGKILL
    result = TrialResult(trial=trial, killed=killed, acked=0)
    if proc.returncode not in (0, -signal.SIGKILL):
        result.problems.append(f"child failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
        return result
    entries = [json.loads(line) for line in (home / "journal.jsonl").read_text().splitlines() if line.strip()]
    acks = [e for e in entries if e["kind"] == "ack"]
    starts = [e for e in entries if e["kind"] == "start"]
    result.acked = len(acks)
    flight = starts[-1] if len(starts) > len(acks) else None
    result.in_flight = flight["op"] if flight else None
    result.problems.extend(check_home(home, acks, flight))
    result.seconds = time.perf_counter() - started
    return result


def check_home(home: Path, acks: list[dict[str, Any]], flight: dict[str, Any] | None) -> list[str]:
    """Reopen ``home`` and list every broken promise (empty: all kept)."""
    from ..memory.core import Memory

    problems: list[str] = []
    with Memory(home, embedder="fake") as m:
        report = m.doctor()
        if not report.ok:
            problems.append(f"store and history disagree: {report.model_dump_json(exclude_defaults=True)[:600]}")
        problems.extend(_check_acks(m, acks, flight))
        problems.extend(_check_all_or_nothing(m))
        erin_gone = m.list(user_id="erin", deleted=None).total == 0
        erin_history = m.log.count("erin")
        forgot = any(a["op"] == "forget" for a in acks)
        if forgot and not erin_gone:
            problems.append("an acknowledged forget_user left erin's memories")
        if erin_gone != (erin_history == 0):
            problems.append(f"erasure half done: store empty={erin_gone}, history events={erin_history}")
        if not erin_gone and m.list(user_id="erin").total != 30:
            problems.append("erin's memories changed although no erasure happened")
        if m.list(user_id="bob").total != 20:
            problems.append("bob's memories changed")
    if erin_gone:
        leaked = _files_with(home, MARKER.encode())
        if leaked:
            problems.append(f"erased text still in files: {leaked[:5]}")
    return problems


def _check_acks(m: Any, acks: list[dict[str, Any]], flight: dict[str, Any] | None) -> list[str]:
    """Every acknowledged change of alice's memories is there; the one in flight may or may not be."""
    problems: list[str] = []
    final: dict[str, tuple[str | None, bool]] = {}  # id -> (text or None if unknown, deleted)
    for a in acks:
        if a["op"] == "add":
            for mid, text in zip(a["ids"], a["texts"], strict=True):
                if mid is not None:
                    final.setdefault(mid, (text, False))
        elif a["op"] == "update" and a.get("id"):
            final[a["id"]] = (a["text"], final.get(a["id"], (None, False))[1])
        elif a["op"] in ("delete", "restore") and a.get("id"):
            final[a["id"]] = (final.get(a["id"], (None, False))[0], a["op"] == "delete")
    maybe = flight.get("id") if flight else None
    for mid, (text, deleted) in final.items():
        try:
            record = m.get(mid, user_id="alice", include_deleted=True)
        except Exception as exc:  # noqa: BLE001 - reported as a lost write
            problems.append(f"acknowledged memory {mid} lost ({type(exc).__name__})")
            continue
        texts = {text, flight.get("text")} if mid == maybe and flight else {text}
        if text is not None and record.text not in texts:
            problems.append(f"acknowledged text of {mid} lost: {record.text!r} not in {sorted(map(str, texts))}")
        if record.is_deleted != deleted and mid != maybe:
            problems.append(f"acknowledged state of {mid} lost (deleted={record.is_deleted})")
    if any(a["op"] == "import" for a in acks) and m.list(user_id="ivan").total != 300:
        problems.append("an acknowledged import is incomplete")
    bulks = sum(1 for a in acks if a["op"] == "bulk")
    if m.list(user_id="bella").total < BULK * bulks:
        problems.append("an acknowledged add of many texts is incomplete")
    return problems


def _check_all_or_nothing(m: Any) -> list[str]:
    problems: list[str] = []
    ivan = m.list(user_id="ivan", deleted=None).total
    if ivan not in (0, 300):
        problems.append(f"an import was applied in part ({ivan} of 300 memories)")
    bella = m.list(user_id="bella", deleted=None).total
    if bella % BULK:
        problems.append(f"an add of {BULK} texts was applied in part ({bella % BULK} of {BULK} memories)")
    texts = [r.text for r in m.list(user_id="alice", deleted=None, limit=1000).items]
    dupes = sorted({t for t in texts if texts.count(t) > 1})
    if dupes:
        problems.append(f"duplicate memories after the crash: {dupes[:3]}")
    return problems


def _files_with(home: Path, needle: bytes) -> list[str]:
    found = []
    for path in home.rglob("*"):
        if path.is_file() and path.name != "journal.jsonl":
            try:
                if needle in path.read_bytes():
                    found.append(str(path.relative_to(home)))
            except OSError:
                continue
    return found


def count_hooks(template: Path, work: Path) -> dict[str, int]:
    """How many hooked steps each operation runs (a trial without a kill), so kill points fall inside it."""
    counts: dict[str, int] = {}
    for op in OPS:
        run_trial(template, work, Trial(op=op, kill_at=10**9))
        lines = (work / "home" / "journal.jsonl").read_text().splitlines()
        counts[op] = next(json.loads(x)["count"] for x in lines if json.loads(x)["kind"] == "hooks")
    return counts


def hooked_trials(n: int, counts: dict[str, int], seed: int = 0) -> list[Trial]:
    """``n`` deterministic trials over the operations, each killed at one of its own steps (the first is the
    handed reproduction: killed right after the first ``store.upsert`` of an add returns)."""
    rng = random.Random(seed)
    trials = [Trial(op="add", kill_at=1, when="after", hook="store.upsert")]
    while len(trials) < n:
        op = OPS[len(trials) % len(OPS)]
        trials.append(Trial(op=op, kill_at=rng.randint(1, max(1, counts[op])), when=rng.choice(("before", "after")),
                            seed=rng.randint(0, 10**6)))
    return trials


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "child":
        child(Path(argv[1]), Trial.model_validate_json(argv[2]))
        return
    raise SystemExit("usage: python -m remem.testing.crash child HOME TRIAL_JSON")


Progress = Callable[[int, int], None]

if __name__ == "__main__":
    main(sys.argv[1:])
