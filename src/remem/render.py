"""Rich renderables for remem's models, shared by the command line and the demo.

Pure presentation: each function turns pydantic models into a :mod:`rich` table; no library calls, no logic.
Memory text is user data: these are only used where the user asked to see it (CLI output, the demo).

**Terminal safety.** Stored text, speaker names, categories, actors, reasons and paths are data, never
instructions to the terminal or to rich: every such value goes through :func:`safe` (control characters —
ANSI escape sequences start with ESC — bidi controls, line separators and lone surrogates become visible
escapes such as ``\\x1b``) and is put in a :class:`rich.text.Text` (never parsed as markup, so ``[bold]`` stays
literal), or through :func:`markup_safe` where it is part of a markup string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .models import EventType, HistoryEvent, MemoryRecord, SearchHit, Stats

# C0 controls except tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), the Arabic letter mark,
# LRM/RLM, bidi embeddings/overrides/isolates, line/paragraph separators and lone surrogates.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff"
_UNSAFE_MULTILINE = re.compile(f"[{_UNSAFE}]")
_UNSAFE_LINE = re.compile(f"[{_UNSAFE}\\t\\n]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value: object, *, multiline: bool = False) -> str:
    """``str(value)`` as a terminal may show it: control characters, bidi controls, line separators and lone
    surrogates become visible escapes (``\\x1b``, ``\\u202e``, ``\\ud800``). ``multiline=True`` keeps newlines
    and tabs (a table cell); otherwise the result is one line."""
    text = str(value)
    return (_UNSAFE_MULTILINE if multiline else _UNSAFE_LINE).sub(_escape_char, text)


def markup_safe(value: object) -> str:
    """:func:`safe`, then escaped for rich markup: for user data inside a markup string."""
    return escape(safe(value))


def cell(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """User data as a table cell: :func:`safe` text that rich never parses as markup."""
    return Text(safe(value, multiline=multiline), style=style)


EVENT_STYLE = {
    EventType.ADD: "green",
    EventType.UPDATE: "yellow",
    EventType.DELETE: "red",
    EventType.RESTORE: "cyan",
    EventType.NOOP: "dim",
}


def when(value: datetime | None) -> str:
    """A compact UTC timestamp (minutes), or '-'."""
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")


def record_time(record: MemoryRecord) -> datetime:
    """The time filters use: when the fact was observed/said, else when it was stored."""
    return record.observed_at or record.created_at


def signal(hit: SearchHit, name: str) -> str:
    """'0.612 #1' — a signal's raw score and its rank in that signal; '-' when the signal did not find it."""
    if name not in hit.signals:
        return "-"
    return f"{hit.signals[name]:.3f} #{hit.ranks.get(name, 0)}"


def text_cell(record: MemoryRecord, *, show_id: bool = True) -> Text:
    """The memory text, with its id on a dim second line (one column fewer than an id column)."""
    out = cell(record.text, "strike dim" if record.is_deleted else "", multiline=True)
    if show_id:
        out.append(f"\n{safe(record.id)}", style="dim")
    return out


MAIN_SIGNALS = ("dense", "bm25")


def why(hit: SearchHit) -> str:
    """'dense 0.741 #1, bm25 11.13 #1': every signal that found the hit, main ones first."""
    names = [n for n in MAIN_SIGNALS if n in hit.signals] + sorted(set(hit.signals) - set(MAIN_SIGNALS))
    return ", ".join(f"{n} {hit.signals[n]:.3g} #{hit.ranks.get(n, 0)}" for n in names)


def hits_compact(hits: Sequence[SearchHit], *, title: str) -> Table:
    """Hits as two lines each (text; then score, why, kind, speaker, time): readable at any terminal width."""
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right", style="dim")
    table.add_column()
    table.add_row("", cell(title, "bold"))
    if not hits:
        table.add_row("", Text("no hits", style="dim"))
    for i, hit in enumerate(hits, start=1):
        r = hit.record
        detail = Text(f"score {hit.score:.3f} ← {why(hit)} · {r.kind} · {safe(r.speaker or r.role or '-')} · "
                      f"{when(record_time(r))}", style="dim")
        table.add_row(f"{i}.", Text.assemble(cell(r.text, multiline=True), "\n", detail))
    return table


def hits_table(hits: Sequence[SearchHit], *, title: str | None = None, show_id: bool = True,
               show_speaker: bool = False) -> Table:
    """Search hits, best first: fused score, the dense and BM25 signals (score and rank), kind, time, text."""
    extra = sorted({name for h in hits for name in h.signals} - set(MAIN_SIGNALS))
    table = Table(title=_title(title), title_justify="left", expand=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("dense", justify="right", style="magenta", no_wrap=True)
    table.add_column("bm25", justify="right", style="blue", no_wrap=True)
    for name in extra:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("kind")
    table.add_column("time (UTC)", no_wrap=True)
    if show_speaker:
        table.add_column("speaker")
    table.add_column("text" + (" / id" if show_id else ""), overflow="fold", min_width=24)
    for i, hit in enumerate(hits, start=1):
        r = hit.record
        row: list[str | Text] = [str(i), f"{hit.score:.4f}", signal(hit, "dense"), signal(hit, "bm25"),
                                 *(signal(hit, name) for name in extra), cell(r.kind), when(record_time(r))]
        if show_speaker:
            row.append(cell(r.speaker or r.role or "-"))
        row.append(text_cell(r, show_id=show_id))
        table.add_row(*row)
    return table


def records_table(records: Sequence[MemoryRecord], *, title: str | None = None) -> Table:
    """A page of records: time, kind, categories, speaker, text and id."""
    table = Table(title=_title(title), title_justify="left")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("kind")
    table.add_column("categories")
    table.add_column("speaker")
    table.add_column("text / id", overflow="fold", min_width=24)
    for r in records:
        table.add_row(when(record_time(r)), cell(r.kind), cell(", ".join(r.categories) or "-"), cell(r.speaker or "-"),
                      text_cell(r))
    return table


def record_table(record: MemoryRecord) -> Table:
    """One record, field by field."""
    table = Table(show_header=False, title=cell(f"memory {record.id}"), title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in record.model_dump(mode="json").items():
        if value in (None, [], {}, ""):
            continue
        table.add_row(name, cell(value, multiline=True))
    if record.is_deleted:
        table.add_row("state", Text("deleted (restorable)", style="red"))
    return table


def history_table(events: Sequence[HistoryEvent], *, title: str | None = None) -> Table:
    """A memory's timeline, oldest first: when, what, who, and the text before → after."""
    table = Table(title=_title(title), title_justify="left")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("event")
    table.add_column("actor")
    table.add_column("change (reason)", overflow="fold", min_width=24)
    for e in events:
        change = Text()
        if e.event is EventType.UPDATE and e.old_text != e.new_text:
            change.append(safe(e.old_text or "", multiline=True), style="strike dim")
            change.append("  →  ")
            change.append(safe(e.new_text or "", multiline=True))
        else:
            change.append(safe(e.new_text or e.old_text or "", multiline=True))
        if e.reason:
            change.append(f"\n({safe(e.reason, multiline=True)})", style="dim italic")
        table.add_row(
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"), Text(e.event.value, style=EVENT_STYLE[e.event]),
            cell(e.actor), change,
        )
    return table


def stats_table(stats: Stats) -> Table:
    table = Table(show_header=False, title="remem", title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for name, value in stats.model_dump().items():
        if name == "lm_usage":
            u = stats.lm_usage
            value = (f"{u.calls} calls, {u.prompt_tokens} prompt + {u.completion_tokens} completion tokens, "
                     f"{u.seconds:.1f} s")
        table.add_row(name.replace("_", " "), cell(value))
    return table


def _title(title: str | None) -> Text | None:
    """A table title made of data (user ids, memory ids): plain text, never markup."""
    return None if title is None else cell(title)
