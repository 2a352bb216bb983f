"""kill -9 campaign: hundreds of crash trials over remem's write path (see remem.testing.crash).

Three kinds of trial, mixed:
- hooked: one operation (add, update, delete, restore, import, forget_user) killed just before or just after
  one of its steps (store writes, intent begin/commit, the erasure's steps), every step of every operation;
- loop: a writer running random operations (journaled before they start, acknowledged when they return) is
  killed after a random delay;
- erasure: forget_user of a user with 30 memories among others, killed after a random delay inside it.
After each kill the data directory is reopened (recovery runs) and checked: store and history agree
(`remem doctor`), every acknowledged operation is there, an import is all or nothing, no duplicates, an
erasure that started is finished with no byte of the text left in any file, other users untouched.

    python benchmarks/crash.py                  # 300 trials
    python benchmarks/crash.py --trials 60 --seed 3 --json crash.json

Exit status 1 if any trial found a broken promise.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from remem.testing.crash import OPS, Trial, TrialResult, count_hooks, prepare, run_trial


def plan(n: int, counts: dict[str, int], seed: int) -> list[tuple[str, Trial]]:
    rng = random.Random(seed)
    trials: list[tuple[str, Trial]] = []
    for i in range(n):
        kind = ("hooked", "loop", "erasure")[i % 3]
        if kind == "hooked":
            op = OPS[(i // 3) % len(OPS)]
            trials.append((kind, Trial(op=op, kill_at=rng.randint(1, counts[op]), when=rng.choice(("before", "after")),
                                       seed=rng.randint(0, 10**6))))
        elif kind == "loop":
            trials.append((kind, Trial(op="loop", delay=rng.uniform(0.6, 3.0), seed=rng.randint(0, 10**6))))
        else:
            trials.append((kind, Trial(op="forget", delay=rng.uniform(0.3, 1.2), seed=rng.randint(0, 10**6))))
    return trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="remem-crash-"))
    prepare(base / "template")
    counts = count_hooks(base / "template", base / "count")
    rows: dict[str, list[TrialResult]] = defaultdict(list)
    started = time.perf_counter()
    for i, (kind, trial) in enumerate(plan(args.trials, counts, args.seed), start=1):
        result = run_trial(base / "template", base / "work", trial)
        rows[kind].append(result)
        if result.problems:
            print(f"trial {i} ({kind}, {trial.model_dump(exclude_defaults=True)}): {result.problems}", flush=True)
        if i % 25 == 0:
            print(f"… {i}/{args.trials} trials, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print(f"\nsteps per operation (hooked kill points): {counts}\n")
    print("| trials | kind | killed | acknowledged ops checked | in flight at the kill | broken promises |")
    print("|---:|---|---:|---:|---:|---:|")
    total = [r for rs in rows.values() for r in rs]
    for kind, rs in [*rows.items(), ("all", total)]:
        print(f"| {len(rs)} | {kind} | {sum(r.killed for r in rs)} | {sum(r.acked for r in rs)} | "
              f"{sum(r.in_flight is not None for r in rs)} | {sum(bool(r.problems) for r in rs)} |")
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([r.model_dump(mode="json") for r in total], indent=1))
    return 1 if any(r.problems for r in total) else 0


if __name__ == "__main__":
    sys.exit(main())
