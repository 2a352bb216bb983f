"""The Markdown section of ``remem demo --store markdown``: the files, and one hand edit picked up.

It lists the showcase user's files, prints ``profile.md`` (remem's comments dimmed), edits one line the way a
person would (a plain file write, no remem call), then searches: the edit is found, its history has an
``UPDATE`` by actor ``file`` with the old text, and ``remem doctor`` finds store and history in agreement.
"""

from __future__ import annotations

from typing import Any, Protocol

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import render
from ..models import EventType
from .fmt import PROFILE_FILE
from .ops import markdown_store
from .store import MarkdownStore

EDIT_FACT = "diet"
EDIT_FROM, EDIT_TO = "Alice is vegetarian.", "Alice has been vegan since April 2024."
EDIT_QUERY = "Is Alice vegan?"


class DemoLike(Protocol):
    m: Any
    out: Console
    fact_ids: dict[tuple[str, str], str]

    def section(self, title: str) -> None: ...

    def check(self, name: str, ok: bool, detail: str) -> None: ...


def _show_file(out: Console, text: str, title: str) -> None:
    out.print(Text(title, style="bold"))
    for line in text.rstrip("\n").split("\n"):
        start = line.rfind("<!--")
        shown = Text("  ")
        if start >= 0:
            shown.append(line[:start]).append(line[start:], style="dim")
        else:
            shown.append(line)
        out.print(shown, highlight=False, soft_wrap=True)


def show_markdown(demo: DemoLike, user_id: str) -> None:
    """Run the section on ``demo``'s Memory (which must use the Markdown store)."""
    store: MarkdownStore = markdown_store(demo.m)
    folder = store.user_path(user_id)
    demo.section(f"Markdown memory: {user_id}'s memories are files in {folder}")
    demo.out.print("[dim]one file per category; profile.md: the core facts the chat agent reads; trash.md: deleted "
                   "memories; remem's fields (id, kind, times, sources) in a comment at the end of each line[/]")
    table = Table("file", "memories", "bytes")
    for path in sorted(folder.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        table.add_row(path.name, str(sum(line.startswith("- ") for line in text.split("\n"))), str(len(text)))
    demo.out.print(table)
    profile = folder / PROFILE_FILE
    _show_file(demo.out, profile.read_text(encoding="utf-8"), f"{profile}:")

    memory_id = demo.fact_ids[(user_id, EDIT_FACT)]
    demo.section("A hand edit: a person changes one line of profile.md in an editor")
    original = profile.read_text(encoding="utf-8")
    lines = original.split("\n")
    number = next(i for i, line in enumerate(lines) if memory_id in line)
    before = lines[number]
    lines[number] = before.replace(EDIT_FROM, EDIT_TO, 1)
    profile.write_text("\n".join(lines), encoding="utf-8")  # what an editor does: no remem call
    for sign, line, style in (("-", before, "red"), ("+", lines[number], "green")):
        demo.out.print(Text(f"{sign} profile.md:{number + 1}: {line[2:line.rfind('<!--')].strip()}", style=style),
                       highlight=False)
    hits = demo.m.search(EDIT_QUERY, user_id=user_id, limit=3)
    demo.out.print(render.hits_compact(hits, title=f"“{EDIT_QUERY}” right after the edit"))
    events = demo.m.history(memory_id, user_id=user_id)
    demo.out.print(render.history_table(events, title=f"history of {memory_id}"))
    last = events[-1]
    found = bool(hits) and hits[0].record.id == memory_id and hits[0].record.text == EDIT_TO
    recorded = (last.event is EventType.UPDATE and last.actor == "file" and last.old_text == EDIT_FROM
                and last.new_text == EDIT_TO)
    agree = demo.m.doctor(user_id=user_id).ok
    demo.check("hand edit", found and recorded and agree,
               "the next search finds the edited line; history: UPDATE by actor 'file' with the old text; "
               "doctor: store and history agree")
