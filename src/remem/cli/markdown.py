"""Markdown memory commands: ``remem grep`` and ``remem sync``. No logic: see :mod:`remem.markdown`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from .app import app, console
from .commands import AsJson, Home, User, emit_json, open_memory


@app.command()
def grep(
    pattern: Annotated[str, typer.Argument(help="A regular expression (Python re), or a plain string with -F.")],
    user: User = ...,  # type: ignore[assignment]
    ignore_case: Annotated[bool, typer.Option("--ignore-case", "-i", help="Match regardless of case.")] = False,
    fixed: Annotated[bool, typer.Option("--fixed-strings", "-F", help="PATTERN is a plain string.")] = False,
    deleted: Annotated[bool, typer.Option("--deleted", help="Search the trash too.")] = False,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """A user's memories whose text matches PATTERN: file:line (Markdown store), the text, the memory id."""
    from ..markdown.grep import grep as grep_memories

    with open_memory(home) as memory:
        hits = grep_memories(memory, user, pattern, ignore_case=ignore_case, fixed=fixed, deleted=deleted)
    if as_json:
        emit_json(hits)
        return
    for hit in hits:
        where = f"{hit.file}:{hit.line}: " if hit.file else ""
        text = Text(hit.record.text.replace("\n", " ⏎ "))
        offsets = _flat_offsets(hit.record.text)
        for start, end in hit.spans:
            text.stylize("bold red", offsets[start], offsets[end])
        console.print(Text(where, style="magenta") + text + Text(f"  {hit.record.id}", style="dim"),
                      highlight=False, soft_wrap=True)
    if not hits:
        raise typer.Exit(1)  # like grep: 1 when nothing matched


def _flat_offsets(text: str) -> list[int]:
    """Character offsets of ``text`` once each newline is shown as ' ⏎ ' (two more characters)."""
    out: list[int] = []
    shift = 0
    for ch in text:
        out.append(len(out) + shift)
        if ch == "\n":
            shift += 2
    out.append(len(text) + shift)
    return out


@app.command()
def sync(
    user: Annotated[str | None, typer.Option("--user", "-u", help="One user (default: every user with files).")]
    = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Apply hand edits of the Markdown files now (REMEM_STORE=markdown); exit 1 if a file cannot be read.

    Reads and writes do this on their own; `sync` shows what was applied and every file:line left as it is."""
    from ..markdown.ops import sync as sync_files

    with open_memory(home) as memory:
        reports = sync_files(memory, user)
    if as_json:
        emit_json(reports)
    else:
        for report in reports:
            for e in report.events:
                console.print(f"{escape(report.user_id)}: {e.event.value} {e.memory_id} ({escape(e.reason or '')})",
                              highlight=False)
            for p in report.problems:
                console.print(f"[bold red]{escape(str(p))}[/]", highlight=False, soft_wrap=True)
        events = sum(len(r.events) for r in reports)
        problems = sum(len(r.problems) for r in reports)
        console.print(f"{len(reports)} users synced: {events} changes applied, {problems} problems", highlight=False)
    if any(r.problems for r in reports):
        raise typer.Exit(1)
