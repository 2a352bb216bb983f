"""A person editing a Markdown file while the agent writes it: a race campaign over real threads and files.

Each run opens a fresh Markdown store, and while an agent thread adds ``--adds`` memories to ``food.md`` a person
thread saves the file ``--saves`` times (a random pause of 0-15 ms between saves). Scenarios:

- ``editor``: re-read the file, append a line to the buffer, save by rename (the tester's md3.py);
- ``in-place``: the same, saved by writing the file in place (truncate, write);
- ``append``: ``open(path, "a")`` appends;
- ``mixed``: append, edit the text of one of the person's lines, delete one, or ``>>``, saved by rename or in place.

After the run the user is synced and checked: every agent memory live exactly once; for each of the person's
lines, one live memory holding a text the person gave it (none if they deleted it); no duplicate; no agent add
failed. A save made from a buffer read before remem's write must not remove remem's lines nor bring back or
duplicate the person's (remem.markdown.versions).

    python benchmarks/markdown_races.py                      # 20 runs of each scenario
    python benchmarks/markdown_races.py --runs 50 --scenario editor

Exit status 1 if any run broke a promise. Prints one row per scenario: runs, runs with a problem, and counts.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from remem import Memory
from remem.markdown.ops import markdown_store, sync

SCENARIOS = ("editor", "in-place", "append", "mixed")
LINE = re.compile(r"^- (hand \d+ pears(?: edited)*) <!--")


@dataclass
class Outcome:
    agent_missing: int = 0
    hand_wrong: int = 0
    hand_resurrected: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.agent_missing or self.hand_wrong or self.hand_resurrected or self.duplicates or self.errors)


def _save(path: Path, text: str, how: str) -> None:
    if how == "rename":
        tmp = path.with_name(".food.md.swp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    else:
        path.write_text(text, encoding="utf-8")


def run(scenario: str, home: Path, adds: int, saves: int, seed: int) -> Outcome:
    rng, out = random.Random(seed), Outcome()
    with Memory(home, embedder="fake", store="markdown") as m:
        m.add("seed memory", user_id="alice", categories=["food"])
        path = markdown_store(m).user_path("alice") / "food.md"

        def agent() -> None:
            for i in range(adds):
                try:
                    m.add(f"agent memory number {i} about apples", user_id="alice", categories=["food"])
                except Exception as exc:  # noqa: BLE001 - counted: the campaign reports every failure
                    out.errors.append(f"{type(exc).__name__}: {exc}"[:200])

        thread = threading.Thread(target=agent, daemon=True)
        thread.start()
        given: dict[str, set[str]] = {}
        deleted: set[str] = set()
        for k in range(saves):
            op, how = "append", {"editor": "rename", "in-place": "in place"}.get(scenario, "rename")
            if scenario == "mixed":
                op = rng.choice(("append", "append", "edit", "delete", "echo"))
                how = rng.choice(("rename", "in place"))
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            lines = text.split("\n")
            mine = [i for i, line in enumerate(lines) if LINE.match(line)]
            if op in ("edit", "delete") and not mine:
                op = "append"
            if scenario == "append" or op == "echo":
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(f"- hand {k} pears\n")
                given.setdefault(str(k), set()).add(f"hand {k} pears")
            elif op == "append":
                _save(path, text + f"- hand {k} pears\n", how)
                given.setdefault(str(k), set()).add(f"hand {k} pears")
            else:
                i = rng.choice(mine)
                match = LINE.match(lines[i])
                assert match is not None
                old = match.group(1)
                number = old.split()[1]
                if op == "edit":
                    lines[i] = lines[i].replace(old, old + " edited", 1)
                    given.setdefault(number, set()).add(old + " edited")
                else:
                    del lines[i]
                    deleted.add(number)
                _save(path, "\n".join(lines), how)
            time.sleep(rng.uniform(0, 0.015))
        thread.join(timeout=300)
        sync(m, "alice")
        live = Counter(r.text for r in m.list(user_id="alice", limit=1000).items)
        out.duplicates = sum(c - 1 for c in live.values() if c > 1)
        out.agent_missing = sum(1 for i in range(adds) if f"agent memory number {i} about apples" not in live)
        by_number: dict[str, list[str]] = {}
        for text in live:
            if text.startswith("hand "):
                by_number.setdefault(text.split()[1], []).append(text)
        for number, texts in given.items():
            got = by_number.get(number, [])
            if number in deleted and got:
                out.hand_resurrected += 1
            elif number not in deleted and (len(got) != 1 or got[0] not in texts):
                out.hand_wrong += 1
            else:
                continue
            stories = [f"{r.text!r}{' (deleted)' if r.is_deleted else ''}: "
                       + ", ".join(f"{e.event.value} {e.reason or ''}" for e in m.history(r.id, user_id="alice"))
                       for r in m.list(user_id="alice", limit=1000, deleted=None).items
                       if r.text.startswith(f"hand {number} ")]
            out.details.append(f"hand {number}: gave {sorted(texts)}{' then deleted' if number in deleted else ''}; "
                               f"live {got}; " + "; ".join(stories))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--adds", type=int, default=120)
    parser.add_argument("--saves", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--explain", action="store_true", help="print what went wrong with each line")
    args = parser.parse_args(argv)
    broken = False
    print(f"{'scenario':<10} {'runs':>5} {'bad runs':>9} {'agent lost':>11} {'hand wrong':>11} "
          f"{'resurrected':>12} {'duplicates':>11} {'errors':>7} {'s/run':>6}")
    for scenario in args.scenario or SCENARIOS:
        totals, bad, started = Outcome(), 0, time.monotonic()
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="remem-md-race-") as tmp:
                o = run(scenario, Path(tmp) / "home", args.adds, args.saves, args.seed * 1000 + i)
            bad += not o.ok
            totals.agent_missing += o.agent_missing
            totals.hand_wrong += o.hand_wrong
            totals.hand_resurrected += o.hand_resurrected
            totals.duplicates += o.duplicates
            totals.errors += o.errors
            if args.explain:
                for line in o.details:
                    print(f"  run {i}: {line}")
        broken |= bad > 0
        print(f"{scenario:<10} {args.runs:>5} {bad:>9} {totals.agent_missing:>11} {totals.hand_wrong:>11} "
              f"{totals.hand_resurrected:>12} {totals.duplicates:>11} {len(totals.errors):>7} "
              f"{(time.monotonic() - started) / args.runs:>6.1f}")
        for error in totals.errors[:3]:
            print(f"  {error}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
