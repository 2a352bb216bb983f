"""Memory packed into a token budget: :func:`build_context`, behind :meth:`remem.Memory.context`.

An agent does not want "10 hits"; it wants the best context that fits in N tokens of its prompt. One call:

1. **core facts** — the user's facts in :data:`CORE_CATEGORIES` (``personal_details``, ``preferences``), newest
   first, as many as fit in ``core_share`` of the budget (what the chat agent always shows).
2. **candidates** — one hybrid search (:mod:`remem.retrieval.search`) for about ``max_tokens / tokens_per_hit``
   hits with ``neighbors`` turns either side. A hit's value is its fused score (facts times ``fact_weight``);
   a neighbouring turn is worth ``neighbor_weight ** distance`` times its hit's value and only becomes
   eligible once a turn next to it is in the context (excerpts grow out of hits). A long memory found through
   one of its chunks whose line would take more than half the budget is a candidate as that part
   (``… part …``, the memory's id, date and sources): a pasted document costs a chunk, not the budget.
3. **greedy packing** by marginal value per token: the next block is the eligible candidate with the highest
   ``value / cost ** cost_exponent``, where ``cost`` is what it adds to the text — its line, plus a session
   header when it opens a new session block, minus the gap marker it removes when it joins two runs.
   A candidate whose source ids are all covered already is skipped: **a fact and the turn it came from are
   never both paid for** — whichever is taken first (the denser: usually the fact, shorter and with an
   absolute date) covers the other. A candidate that does not fit is skipped, the next one tried.
4. **rendering** — Markdown: ``## About the user`` (core facts), then ``## Relevant memories`` oldest first:
   a fact is one dated line; the chosen turns of one session form one excerpt under one header (date +
   session), consecutive turns together, skipped stretches marked ``…``.
5. **the hard cap** — the rendered text is counted exactly (:mod:`remem.tokens`); while it exceeds
   ``max_tokens`` (cross-line BPE merges can make the estimate low), the last block packed is dropped.

Every block matches the filters (categories, kinds, time), neighbouring turns included.
Defaults were measured on the dev data only (``remem bench``; README "Memory in a token budget").
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, Protocol

from ..errors import ValidationError
from ..models import Context, ContextItem, MemoryKind, MemoryRecord, SearchHit, as_utc
from ..stores.base import MemoryFilter, VectorStore, time_of
from ..tokens import ENCODING, count_many, count_tokens
from ..validation import check_categories, check_kinds, check_range, check_user_id
from .search import DEFAULT_OPTIONS, SearchOptions

#: Categories whose facts are shown first, without a query (the chat agent's "core memories").
CORE_CATEGORIES: tuple[str, ...] = ("personal_details", "preferences")
#: Largest budget accepted (a prompt block, not a document dump).
MAX_BUDGET = 200_000
CORE_HEADING = "## About the user"
MEMORY_HEADING = "## Relevant memories"
GAP = "- …"


class SearchFn(Protocol):
    """The search :func:`build_context` draws candidates from (``Memory.search`` has this shape)."""

    def __call__(
        self, query: str, *, user_id: str, limit: int, categories: Sequence[str] | None,
        kinds: Sequence[MemoryKind] | None, since: datetime | None, until: datetime | None, options: SearchOptions,
    ) -> list[SearchHit]: ...


@dataclass(frozen=True)
class ContextOptions:
    """Packing knobs; the defaults are the measured best on the dev data (README).

    ``tokens_per_hit`` sets the search depth: ``limit = clamp(max_tokens // tokens_per_hit, 10, 1000)``.
    ``cost_exponent`` 0 packs in rank order, 1 by value per token. ``order`` is how retrieved blocks are shown:
    ``"time"`` (oldest first, a timeline) or ``"relevance"`` (packing order).
    """

    core_share: float = 0.25
    core_limit: int = 8
    core_categories: tuple[str, ...] = CORE_CATEGORIES
    neighbors: int = 1
    neighbor_weight: float = 0.5
    fact_weight: float = 1.0
    cost_exponent: float = 0.5
    tokens_per_hit: int = 25
    order: Literal["time", "relevance"] = "time"
    search: SearchOptions = field(default_factory=lambda: DEFAULT_OPTIONS)

    def with_(self, **changes: object) -> ContextOptions:
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_CONTEXT_OPTIONS = ContextOptions()


# -- rendering ---------------------------------------------------------------------------------------------
def day(value: datetime) -> str:
    """``2023-05-08 (Mon)``: ISO date plus weekday (so "last Friday" in a memory can be resolved)."""
    return value.strftime("%Y-%m-%d (%a)")


def one_line(text: str) -> str:
    """A memory's text on one line (runs of whitespace, newlines included, become one space): a stored text
    cannot open its own heading, list item or dated line in the context block."""
    return " ".join(text.split())


def fact_line(record: MemoryRecord) -> str:
    return f"- {day(time_of(record))}: {one_line(record.text)}"


def turn_line(record: MemoryRecord) -> str:
    """``- Speaker: text`` (the speaker is not repeated when the text already starts with it)."""
    who = one_line(record.speaker or record.role or "user")
    text = one_line(record.text)
    return f"- {text}" if text.startswith(f"{who}:") else f"- {who}: {text}"


def session_header(record: MemoryRecord) -> str:
    where = f" · session {record.session_id}" if record.session_id else ""
    return f"**{day(time_of(record))}{where}**"


@dataclass
class _Unit:
    """One candidate line: a fact, or a turn (grouped by :func:`_block_of` into session blocks)."""

    record: MemoryRecord
    value: float
    line_tokens: int
    anchor: bool  # a search hit itself (eligible at once); else a neighbour, eligible when adjacent
    order: int = 0  # packing order, once taken

    @property
    def is_turn(self) -> bool:
        return self.record.kind == "episode"


def _block_of(r: MemoryRecord) -> str:
    return f"s:{r.session_id}" if r.kind == "episode" and r.session_id is not None and r.seq is not None \
        else f"r:{r.id}"


@dataclass
class _Block:
    """The chosen units of one session (or one lone record), with the token cost of its header."""

    key: str
    units: list[_Unit] = field(default_factory=list)

    def render(self) -> list[str]:
        units = sorted(self.units, key=lambda u: (u.record.seq if u.record.seq is not None else -1, u.record.id))
        if not units[0].is_turn:
            return [fact_line(units[0].record)]
        lines = [session_header(units[0].record)]
        first_day = day(time_of(units[0].record))
        for prev, unit in zip([None, *units[:-1]], units, strict=True):
            if prev is not None and prev.record.seq is not None and unit.record.seq is not None \
                    and unit.record.seq > prev.record.seq + 1:
                lines.append(GAP)
            line, when = turn_line(unit.record), day(time_of(unit.record))
            lines.append(line if when == first_day else f"- [{when}] {line[2:]}")  # a session over several days
        return lines

    def item(self, header_tokens: int) -> ContextItem:
        units = sorted(self.units, key=lambda u: (u.record.seq if u.record.seq is not None else -1, u.record.id))
        records = [u.record for u in units]
        turn = units[0].is_turn
        return ContextItem(
            kind="excerpt" if turn else "fact", text="\n".join(self.render()),
            tokens=sum(u.line_tokens for u in units) + (header_tokens if turn else 0),
            score=max(u.value for u in units), observed_at=time_of(records[0]),
            session_id=records[0].session_id if turn else None, memory_ids=[r.id for r in records],
            source_ids=list(dict.fromkeys(s for r in records for s in r.source_ids)), records=records,
        )


def _core_item(record: MemoryRecord) -> ContextItem:
    text = fact_line(record)
    return ContextItem(kind="core", text=text, tokens=count_tokens(text) + 1, observed_at=time_of(record),
                       memory_ids=[record.id], source_ids=list(record.source_ids), records=[record])


def render(core: Sequence[ContextItem], blocks: Sequence[ContextItem]) -> str:
    """The Markdown of a context: the core section, then the retrieved blocks (one blank line between blocks
    that span several lines)."""
    parts: list[str] = []
    if core:
        parts.append("\n".join([CORE_HEADING, *(c.text for c in core)]))
    if blocks:
        lines = [MEMORY_HEADING]
        for i, b in enumerate(blocks):
            multi = "\n" in b.text
            if i and (multi or "\n" in blocks[i - 1].text):
                lines.append("")
            lines.append(b.text)
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


# -- packing -----------------------------------------------------------------------------------------------
def _matches(record: MemoryRecord, categories: Sequence[str], kinds: Sequence[str] | None,
             since: datetime | None, until: datetime | None) -> bool:
    if kinds is not None and record.kind not in kinds:
        return False
    if categories and not set(categories) & set(record.categories):
        return False
    t = time_of(record)
    return not ((since is not None and t < since) or (until is not None and t > until))


def candidates(hits: Sequence[SearchHit], opts: ContextOptions, keep: Callable[[MemoryRecord], bool], *,
               long_line: int | None = None) -> list[_Unit]:
    """One unit per distinct record of the hits and their neighbour windows, valued as the module docstring
    says; records failing ``keep`` (filters, core facts already shown) are left out. A long memory found
    through one of its chunks (:mod:`remem.chunking`) whose line would cost more than ``long_line`` tokens is
    offered as that chunk instead: ``… part …``, same id, date and sources."""
    by_id: dict[str, _Unit] = {}
    parts: dict[str, str] = {}

    def offer(record: MemoryRecord, value: float, anchor: bool) -> None:
        if not keep(record):
            return
        unit = by_id.get(record.id)
        if unit is None:
            by_id[record.id] = _Unit(record=record, value=value, line_tokens=0, anchor=anchor)
        else:
            unit.value = max(unit.value, value)
            unit.anchor = unit.anchor or anchor

    for hit in hits:
        r = hit.record
        value = hit.score * (opts.fact_weight if r.kind == "fact" else 1.0)
        offer(r, value, True)
        if hit.chunk is not None:
            parts.setdefault(r.id, hit.chunk.text)
        for near in hit.context:
            if r.seq is not None and near.seq is not None:
                offer(near, hit.score * opts.neighbor_weight ** abs(near.seq - r.seq), False)
    units = list(by_id.values())
    lines = [turn_line(u.record) if u.is_turn else fact_line(u.record) for u in units]
    for unit, n in zip(units, count_many(lines), strict=True):
        unit.line_tokens = n + 1  # the newline
        part = parts.get(unit.record.id)
        if long_line is not None and part is not None and unit.line_tokens > long_line:
            unit.record = unit.record.model_copy(update={"text": f"… {part.strip()} …"})
            line = turn_line(unit.record) if unit.is_turn else fact_line(unit.record)
            unit.line_tokens = count_tokens(line) + 1
    return units


def sources_of(record: MemoryRecord) -> set[tuple[str | None, str]]:
    """The messages a record comes from, as (session id, message id): message ids are unique within a session
    only, so a turn of one chat never covers a fact from a same-numbered message of another."""
    return {(record.session_id, s) for s in record.source_ids}


def _covers(covered: set[tuple[str | None, str]], key: tuple[str | None, str]) -> bool:
    """Whether ``key`` is shown already: the same message of the same session, or — when either side does not
    know its session — the same message id."""
    session, source = key
    if key in covered or (None, source) in covered:
        return True
    return session is None and any(s == source for _, s in covered)


@dataclass
class _Packer:
    """Greedy knapsack over units with marginal costs (see the module docstring)."""

    budget: int
    exponent: float
    header_cost: Callable[[MemoryRecord], int]
    gap_cost: int
    spent: int = 0
    taken: list[_Unit] = field(default_factory=list)
    covered: set[tuple[str | None, str]] = field(default_factory=set)  # (session id, source id)
    seqs: dict[str, set[int]] = field(default_factory=dict)  # block -> chosen seqs

    def cost(self, u: _Unit) -> int:
        block = _block_of(u.record)
        if block not in self.seqs:
            return u.line_tokens + self.header_cost(u.record)
        if u.record.seq is None:
            return u.line_tokens
        have = self.seqs[block]
        left, right = u.record.seq - 1 in have, u.record.seq + 1 in have
        return u.line_tokens + (-self.gap_cost if left and right else 0 if left or right else self.gap_cost)

    def priority(self, u: _Unit) -> float:
        return float(u.value / max(1, self.cost(u)) ** self.exponent)

    def redundant(self, u: _Unit) -> bool:
        return bool(u.record.source_ids) and all(_covers(self.covered, key) for key in sources_of(u.record))

    def pack(self, units: Sequence[_Unit]) -> list[_Unit]:
        by_pos = {(_block_of(u.record), u.record.seq): u for u in units if u.record.seq is not None}
        heap: list[tuple[float, int, int, _Unit]] = []
        version: dict[int, int] = {}
        for i, u in enumerate(units):
            version[id(u)] = 0
            if u.anchor:
                heapq.heappush(heap, (-self.priority(u), i, 0, u))
        index = {id(u): i for i, u in enumerate(units)}
        done: set[int] = set()
        while heap:
            _, i, ver, u = heapq.heappop(heap)
            if id(u) in done or ver != version[id(u)]:
                continue
            done.add(id(u))
            if self.redundant(u):
                continue
            cost = self.cost(u)
            if self.spent + cost > self.budget:
                continue
            self.spent += cost
            u.order = len(self.taken)
            self.taken.append(u)
            self.covered |= sources_of(u.record)
            block = _block_of(u.record)
            self.seqs.setdefault(block, set())
            if u.record.seq is None:
                continue
            self.seqs[block].add(u.record.seq)
            for seq in (u.record.seq - 1, u.record.seq + 1):  # their cost changed; neighbours become eligible
                other = by_pos.get((block, seq))
                if other is not None and id(other) not in done:
                    version[id(other)] += 1
                    heapq.heappush(heap, (-self.priority(other), index[id(other)], version[id(other)], other))
        return self.taken


def _blocks(units: Sequence[_Unit], order: str, header_cost: Callable[[MemoryRecord], int]) -> list[ContextItem]:
    blocks: dict[str, _Block] = {}
    for u in units:
        blocks.setdefault(_block_of(u.record), _Block(_block_of(u.record))).units.append(u)
    items = [(b, b.item(header_cost(min(b.units, key=lambda u: u.record.seq or 0).record))) for b in blocks.values()]
    if order == "relevance":
        items.sort(key=lambda bi: min(u.order for u in bi[0].units))
    else:
        items.sort(key=lambda bi: (bi[1].observed_at, bi[1].session_id or "", bi[1].records[0].seq or 0,
                                   bi[1].memory_ids[0]))
    return [item for _, item in items]


def check_budget(max_tokens: object) -> int:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_BUDGET:
        raise ValidationError(f"max_tokens must be an integer between 1 and {MAX_BUDGET}, got {max_tokens!r}",
                              field="max_tokens")
    return max_tokens


def _check_options(opts: ContextOptions) -> None:
    if not 0.0 <= opts.core_share <= 1.0:
        raise ValidationError(f"core_share must be within [0, 1], got {opts.core_share!r}", field="core_share")
    if opts.core_limit < 0 or opts.neighbors < 0 or opts.tokens_per_hit < 1:
        raise ValidationError("core_limit and neighbors must be >= 0 and tokens_per_hit >= 1", field="options")
    if opts.order not in ("time", "relevance"):
        raise ValidationError(f"order must be 'time' or 'relevance', got {opts.order!r}", field="order")


def core_facts(store: VectorStore, user_id: str, opts: ContextOptions, categories: Sequence[str],
               kinds: Sequence[str] | None, since: datetime | None, until: datetime | None) -> list[MemoryRecord]:
    """The user's newest live facts in the core categories that also match the caller's filters."""
    cats = [c for c in opts.core_categories if not categories or c in categories]
    if opts.core_limit == 0 or not cats or (kinds is not None and "fact" not in kinds):
        return []
    profile = getattr(store, "profile", None)
    if callable(profile) and not categories and since is None and until is None:
        # The Markdown store keeps them in the user's profile.md (hand edits included): read them there.
        records: list[MemoryRecord] = profile(user_id, limit=opts.core_limit)
        return records
    flt = MemoryFilter(user_id=user_id, categories=cats, kinds=["fact"], since=since, until=until)
    return store.scroll(flt, offset=0, limit=opts.core_limit, order="desc")


def build_context(
    search: SearchFn,
    store: VectorStore,
    query: str,
    *,
    user_id: str,
    max_tokens: int = 1000,
    categories: Sequence[str] | None = None,
    kinds: Sequence[MemoryKind] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    options: ContextOptions = DEFAULT_CONTEXT_OPTIONS,
) -> Context:
    """The best memory of ``user_id`` for ``query`` that fits in ``max_tokens`` cl100k tokens (module docstring).

    ``search`` supplies the candidates (it validates ``query``); ``store`` the core facts. Raises
    ValidationError for a bad budget, user id, filter or option. An empty store gives an empty context.
    """
    user_id = check_user_id(user_id)
    budget = check_budget(max_tokens)
    _check_options(options)
    cats = check_categories(categories)
    check_kinds(kinds)
    kind_list = list(kinds) if kinds is not None else None
    check_range(since, until)
    since_u, until_u = (as_utc(since) if since else None), (as_utc(until) if until else None)
    limit = budget_limit(budget, options)
    search_opts = options.search.with_(expand_neighbors=options.neighbors)
    hits = search(query, user_id=user_id, limit=limit, categories=cats or None, kinds=kind_list, since=since_u,
                  until=until_u, options=search_opts)

    # Core facts, newest first, within their share (the heading is paid once).
    core: list[ContextItem] = []
    core_budget = int(budget * options.core_share)
    spent = 0
    for record in core_facts(store, user_id, options, cats, kind_list, since_u, until_u):
        item = _core_item(record)
        extra = item.tokens + (0 if core else count_tokens(CORE_HEADING) + 2)
        if spent + extra <= core_budget:
            core.append(item)
            spent += extra
    shown = {i.memory_ids[0] for i in core}

    units = candidates(hits, options, lambda r: r.id not in shown and _matches(r, cats, kind_list, since_u, until_u),
                       long_line=budget // 2)
    covered = {key for i in core for r in i.records for key in sources_of(r)}
    return _fit(query, user_id, budget, core, units, spent, covered, options)


def _fit(query: str, user_id: str, budget: int, core: list[ContextItem], units: Sequence[_Unit], spent: int,
         covered: set[tuple[str | None, str]], opts: ContextOptions) -> Context:
    """Pack ``units`` into what the core facts left, render, and enforce the hard cap on the exact count."""
    header_cache: dict[str, int] = {}

    def header_cost(r: MemoryRecord) -> int:
        if r.kind != "episode":
            return 0
        head = session_header(r)
        if head not in header_cache:
            header_cache[head] = count_tokens(head) + 2  # its newline and the blank line before the block
        return header_cache[head]

    packer = _Packer(budget=budget - spent - count_tokens(MEMORY_HEADING) - 2, exponent=opts.cost_exponent,
                     header_cost=header_cost, gap_cost=count_tokens(GAP) + 1, covered=set(covered))
    taken = packer.pack(units)
    # The hard cap: drop the last-packed block (then core facts, oldest first) until the exact count fits.
    while True:
        blocks = _blocks(taken, opts.order, header_cost)
        text = render(core, blocks)
        tokens = count_tokens(text)
        if tokens <= budget:
            break
        if taken:
            taken = taken[:-1]
        else:
            core = core[:-1]
    return Context(query=query, user_id=user_id, max_tokens=budget, tokens=tokens, tokenizer=ENCODING, text=text,
                   items=[*core, *blocks])


def pack_ranked(
    records: Sequence[MemoryRecord], *, max_tokens: int, user_id: str, query: str = "",
    order: Literal["time", "relevance"] = "time",
) -> Context:
    """Fill a budget with ``records`` in the given (rank) order, skipping any that do not fit, rendered as
    :func:`build_context` renders (no neighbours, no core facts): the "top turns until the budget is full"
    baseline of ``remem bench``. A record whose sources are all shown already is skipped, as in build_context."""
    budget = check_budget(max_tokens)
    hits = [SearchHit(record=r, score=1.0 / (rank + 1)) for rank, r in enumerate(records)]
    opts = DEFAULT_CONTEXT_OPTIONS.with_(neighbors=0, cost_exponent=0.0, core_limit=0, order=order)
    return _fit(query, user_id, budget, [], candidates(hits, opts, lambda r: True), 0, set(), opts)


def budget_limit(max_tokens: int, opts: ContextOptions = DEFAULT_CONTEXT_OPTIONS) -> int:
    """The search depth :func:`build_context` uses for a budget: ``max_tokens // tokens_per_hit`` in [10, 1000]."""
    return min(1000, max(10, max_tokens // opts.tokens_per_hit))
