"""``remem demo``: the embedded default, end to end, on a conversation that ships with the package.

It ingests ``remem/data/demo_conversation.json`` (three invented users, dated sessions, a changed preference)
in raw mode (no LLM: each message becomes an ``episode`` memory with its speaker, timestamp and turn id; a few
host-noted ``fact`` memories ride along), then shows, with rich: what was stored, searches with *why* each hit
was found (fused score, dense and BM25 signals), time, kind and category filters, an update kept in history,
a delete and its restore, and a user-isolation check computed from actual results.

Re-running is idempotent: the demo first erases its own users (``demo-*`` ids, via ``forget_user``) and
ingests again, so every run shows the same story. Nothing outside those user ids is touched.

Callable from Python: ``run_demo(home=…)`` returns a :class:`DemoReport` whose ``checks`` say what held.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from importlib import resources
from itertools import groupby
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table

from . import render
from .errors import NotFoundError
from .memory.core import Memory
from .models import EventType, MemoryKind, MemoryRecord, Message, SearchHit, as_utc

# -- the conversation file -----------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemoTurn(_Strict):
    id: str
    role: Literal["user", "assistant"]
    content: str
    categories: list[str] = Field(default_factory=list)


class DemoSession(_Strict):
    id: str
    started_at: datetime
    turns: list[DemoTurn]


class DemoFact(_Strict):
    key: str
    text: str
    observed_at: datetime
    source_ids: list[str]
    categories: list[str] = Field(default_factory=list)


class DemoUser(_Strict):
    user_id: str
    name: str
    sessions: list[DemoSession]
    facts: list[DemoFact] = Field(default_factory=list)


class FilteredQuery(_Strict):
    query: str
    since: datetime | None = None
    until: datetime | None = None
    kinds: list[MemoryKind] | None = None
    categories: list[str] | None = None


class UpdateStep(_Strict):
    fact: str
    text: str
    observed_at: datetime
    reason: str
    query: str


class DeleteStep(_Strict):
    source_id: str
    reason: str
    query: str


class Showcase(_Strict):
    user_id: str
    queries: list[str]
    time_filter: FilteredQuery
    kind_filter: FilteredQuery
    category_filter: FilteredQuery
    update: UpdateStep
    delete: DeleteStep


class DemoConversation(_Strict):
    format: Literal["remem-demo"]
    version: Literal[1]
    description: str
    users: list[DemoUser]
    showcase: Showcase


def load_conversation(path: str | Path | None = None) -> DemoConversation:
    """The packaged demo conversation (or another file in the same format)."""
    if path is None:
        raw = resources.files("remem").joinpath("data/demo_conversation.json").read_text(encoding="utf-8")
    else:
        raw = Path(path).read_text(encoding="utf-8")
    return DemoConversation.model_validate_json(raw)


# -- the report ----------------------------------------------------------------------------------------------


class DemoCheck(_Strict):
    name: str
    ok: bool
    detail: str


class UserIngest(_Strict):
    user_id: str
    sessions: int
    messages: int
    added: int
    duplicates: int
    facts: int
    first: datetime
    last: datetime


class DemoReport(_Strict):
    home: str
    reset_memories: int
    ingested: list[UserIngest]
    checks: list[DemoCheck]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


# -- the demo ------------------------------------------------------------------------------------------------


class _Demo:
    def __init__(self, memory: Memory, convo: DemoConversation, console: Console) -> None:
        self.m = memory
        self.c = convo
        self.out = console
        self.checks: list[DemoCheck] = []
        self.fact_ids: dict[tuple[str, str], str] = {}
        self.turn_ids: dict[str, str] = {}

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(DemoCheck(name=name, ok=ok, detail=detail))
        mark = "[bold green]✓[/]" if ok else "[bold red]✗[/]"
        self.out.print(f"{mark} {name}: {detail}", highlight=False, soft_wrap=True)

    def section(self, title: str) -> None:
        self.out.print()
        self.out.print(Rule(f"[bold]{title}", align="left"))

    def show_hits(self, hits: Sequence[SearchHit], title: str) -> None:
        self.out.print(render.hits_compact(hits, title=title))

    # 1. ingest
    def reset(self) -> int:
        removed = 0
        for user in self.c.users:
            removed += self.m.forget_user(user.user_id).memories
        return removed

    def ingest(self) -> list[UserIngest]:
        rows: list[UserIngest] = []
        for user in self.c.users:
            added = dupes = messages = 0
            times: list[datetime] = []
            for session in user.sessions:
                stamped = [(turn, session.started_at + timedelta(minutes=i)) for i, turn in enumerate(session.turns)]
                times += [t for _, t in stamped]
                messages += len(stamped)
                # One add() per run of turns sharing categories (categories apply to a whole add call).
                for cats, group in groupby(stamped, key=lambda item: tuple(item[0].categories)):
                    batch = list(group)
                    msgs = [Message(role=t.role, content=t.content, id=t.id, timestamp=at,
                                    name=user.name if t.role == "user" else "Assistant") for t, at in batch]
                    result = self.m.add(msgs, user_id=user.user_id, categories=list(cats), session_id=session.id,
                                        actor="demo")
                    for turn_event, (turn, _) in zip(result.events, batch, strict=True):
                        self.turn_ids[turn.id] = turn_event.memory_id or ""
                    added += len(result.added)
                    dupes += len(result.events) - len(result.added)
            facts = [MemoryRecord(user_id=user.user_id, text=f.text, kind="fact", categories=f.categories,
                                  observed_at=f.observed_at, source_ids=f.source_ids, speaker=user.name)
                     for f in user.facts]
            if facts:
                result = self.m.add_records(facts, actor="demo")
                for fact, event in zip(user.facts, result.events, strict=True):
                    self.fact_ids[(user.user_id, fact.key)] = event.memory_id or ""
                added += len(result.added)
            rows.append(UserIngest(user_id=user.user_id, sessions=len(user.sessions), messages=messages,
                                   added=added, duplicates=dupes, facts=len(facts), first=min(times),
                                   last=max(times)))
        return rows

    def show_ingest(self, rows: Sequence[UserIngest]) -> None:
        table = Table(title="ingested (raw mode: one episode per message, plus host-noted facts; dupes = exact "
                      "repeats, stored once)", title_justify="left")
        for col in ("user", "sessions", "turns", "added", "dupes", "facts", "span"):
            table.add_column(col, justify="left" if col in ("user", "span") else "right", no_wrap=True,
                             min_width=18 if col == "span" else None)
        for r in rows:
            table.add_row(r.user_id, str(r.sessions), str(r.messages), str(r.added), str(r.duplicates),
                          str(r.facts), f"{r.first:%Y-%m-%d} → {r.last:%m-%d}")
        self.out.print(table)
        dupes = sum(r.duplicates for r in rows)
        self.check("dedupe", dupes >= 1, f"{dupes} repeated message(s) stored once (NOOP events, not new memories)")

    # 2. searches with why
    def searches(self) -> None:
        s = self.c.showcase
        self.section(f"Search as {s.user_id}: hybrid = dense (cosine) + BM25, fused by reciprocal rank")
        self.out.print("[dim]score = reciprocal-rank fusion of the signals that found the memory "
                       "(Σ weight/(k + rank)); dense = cosine similarity, bm25 = keyword score, #n = rank in that "
                       "signal[/]")
        for q in s.queries:
            self.show_hits(self.m.search(q, user_id=s.user_id, limit=3), f"“{q}”")

    def filters(self) -> None:
        s = self.c.showcase
        tf = s.time_filter
        self.section(f"Time filter: only what was said between {tf.since:%Y-%m-%d} and {tf.until:%Y-%m-%d}")
        since = as_utc(tf.since) if tf.since else None
        until = as_utc(tf.until) + timedelta(days=1, microseconds=-1) if tf.until else None  # the whole day
        hits = self.m.search(tf.query, user_id=s.user_id, limit=5, since=since, until=until)
        self.show_hits(hits, f"“{tf.query}” since {tf.since:%Y-%m-%d} until {tf.until:%Y-%m-%d}")
        inside = all(since is not None and until is not None
                     and since <= render.record_time(h.record) <= until for h in hits)
        self.check("time filter", bool(hits) and inside, f"{len(hits)} hits, all observed inside the window")
        kf = s.kind_filter
        self.section("Kind filter: only distilled facts (not raw conversation turns)")
        hits = self.m.search(kf.query, user_id=s.user_id, limit=5, kinds=kf.kinds)
        self.show_hits(hits, f"“{kf.query}” kinds={kf.kinds}")
        self.check("kind filter", bool(hits) and all(h.record.kind in (kf.kinds or []) for h in hits),
                   f"{len(hits)} hits, all of kind {kf.kinds}")
        cf = s.category_filter
        self.section(f"Category filter: {cf.categories}")
        hits = self.m.search(cf.query, user_id=s.user_id, limit=5, categories=cf.categories)
        self.show_hits(hits, f"“{cf.query}” categories={cf.categories}")
        wanted = set(cf.categories or [])
        self.check("category filter", bool(hits) and all(wanted & set(h.record.categories) for h in hits),
                   f"{len(hits)} hits, all in {sorted(wanted)}")

    # 3. update, delete, restore: every change in history
    def update(self) -> None:
        s = self.c.showcase
        u = s.update
        memory_id = self.fact_ids[(s.user_id, u.fact)]
        before = self.m.get(memory_id, user_id=s.user_id)
        self.section("A changed preference is an UPDATE: same id, new text, the old text kept in history")
        after = self.m.update(memory_id, u.text, user_id=s.user_id, observed_at=u.observed_at, actor="demo",
                              reason=u.reason)
        events = self.m.history(memory_id, user_id=s.user_id)
        self.out.print(render.history_table(events, title=f"history of {memory_id}"))
        self.show_hits(self.m.search(u.query, user_id=s.user_id, limit=3), f"“{u.query}” after the update")
        kinds = [e.event for e in events]
        self.check("update keeps id and history",
                   after.id == before.id and after.version == before.version + 1
                   and kinds == [EventType.ADD, EventType.UPDATE] and events[-1].old_text == before.text,
                   f"id unchanged, version {before.version} → {after.version}, history {[k.value for k in kinds]}")

    def delete_restore(self) -> None:
        s = self.c.showcase
        d = s.delete
        memory_id = self.turn_ids[d.source_id]
        self.section("Delete is a restorable tombstone")

        def found() -> bool:
            return any(h.record.id == memory_id for h in self.m.search(d.query, user_id=s.user_id, limit=5))

        present = found()
        self.m.delete(memory_id, user_id=s.user_id, actor="demo", reason=d.reason)
        gone = not found()
        self.m.restore(memory_id, user_id=s.user_id, actor="demo", reason="demo: undo")
        back = found()
        events = self.m.history(memory_id, user_id=s.user_id)
        self.out.print(render.history_table(events, title=f"history of {memory_id}"))
        self.check("delete + restore", present and gone and back,
                   f"“{d.query}”: found before, hidden after delete, found again after restore")

    # 4. isolation
    def isolation(self) -> None:
        s = self.c.showcase
        self.section(f"Isolation: the same questions asked as the other users never reach {s.user_id}")
        target: set[str] = set()
        offset: int | None = 0
        while offset is not None:
            page = self.m.list(user_id=s.user_id, offset=offset, limit=100, deleted=None)
            target.update(r.id for r in page.items)
            offset = page.next_offset
        queries = [*s.queries, s.update.query, s.delete.query, s.time_filter.query]
        table = Table(title=f"the same {len(queries)} queries as other users", title_justify="left")
        for col in ("user", "hits", f"{s.user_id}'s memories among them", "top hit for the first query"):
            table.add_column(col)
        leaked = total = 0
        for user in self.c.users:
            if user.user_id == s.user_id:
                continue
            hits = [h for q in queries for h in self.m.search(q, user_id=user.user_id, limit=5)]
            seen = [r for h in hits for r in (h.record, *h.context)]  # neighbour context counts too
            bad = [r for r in seen if r.id in target or r.user_id != user.user_id]
            leaked += len(bad)
            total += len(hits)
            first = self.m.search(queries[0], user_id=user.user_id, limit=1)
            table.add_row(user.user_id, str(len(hits)), str(len(bad)), first[0].record.text if first else "-")
        self.out.print(table)
        some = next(iter(sorted(target)))
        other = next(u.user_id for u in self.c.users if u.user_id != s.user_id)
        try:
            self.m.get(some, user_id=other)
            direct = False
        except NotFoundError:
            direct = True
        self.check("isolation", leaked == 0 and total > 0 and direct,
                   f"{total} hits for other users, {leaked} of {s.user_id}'s {len(target)} memories among them; "
                   f"get({s.user_id}'s id) as {other} → not found")


def run_demo(home: str | Path | None = None, *, console: Console | None = None,
             conversation: str | Path | None = None, embedder: str | None = None,
             store: str | None = None) -> DemoReport:
    """Run the demo on :class:`Memory` defaults (edge store + local ONNX embedder) under ``home``/REMEM_HOME.

    The demo's own users are erased first (so re-runs show the same story); ``embedder`` overrides
    ``REMEM_EMBEDDER``, ``store`` ``REMEM_STORE`` (``markdown`` adds a section: the files and a hand edit).
    """
    out = console or Console()
    started = time.perf_counter()
    convo = load_conversation(conversation)
    kwargs: dict[str, Any] = {"embedder": embedder} if embedder else {}
    if store:
        kwargs["store"] = store
    with Memory(home, **kwargs) as memory:
        demo = _Demo(memory, convo, out)
        out.print(Panel.fit(
            f"[bold]remem demo[/] — store [cyan]{memory.store.name}[/], embedder [cyan]{memory.embedder.name}[/]"
            f"\ndata in [cyan]{memory.home}[/] (offline: no server, no API key)",
        ))
        removed = demo.reset()
        if removed:
            out.print(f"[dim]reset: erased {removed} memories of the demo users from a previous run "
                      "(forget_user)[/]")
        rows = demo.ingest()
        demo.show_ingest(rows)
        demo.searches()
        demo.filters()
        demo.update()
        demo.delete_restore()
        demo.isolation()
        if memory.store.name == "markdown":
            from .markdown.demo import show_markdown

            show_markdown(demo, convo.showcase.user_id)
        seconds = time.perf_counter() - started
        report = DemoReport(home=str(memory.home), reset_memories=removed, ingested=rows, checks=demo.checks,
                            seconds=seconds)
    out.print()
    ok = sum(c.ok for c in report.checks)
    style = "bold green" if report.ok else "bold red"
    out.print(f"[{style}]{ok}/{len(report.checks)} checks passed[/] in {report.seconds:.1f} s. "
              f"Try: [cyan]remem search -u {convo.showcase.user_id} \"tea\" --home {report.home}[/]", highlight=False)
    return report
