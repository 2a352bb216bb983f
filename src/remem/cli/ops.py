"""Operations commands: ``remem doctor`` (store vs history check and repair). No logic: see
:meth:`remem.Memory.doctor` and :mod:`remem.writer.doctor`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .app import app, console
from .commands import AsJson, Home, emit_json, open_memory


@app.command()
def doctor(
    repair: Annotated[bool, typer.Option("--repair", help="Finish interrupted changes and make the store follow "
                                         "history (adopting store-only memories).")] = False,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Check one user only.")] = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Check that the vector store and the history agree (history is the system of record); exit 1 if not.

    Opening the data directory already finishes changes a crashed process left half done; `doctor` also
    compares every memory with its last history snapshot and, with --repair, fixes what differs."""
    with open_memory(home) as memory:
        report = memory.doctor(repair=repair, user_id=user)
        recovered = memory.recovered
    if as_json:
        emit_json(report)
    else:
        if recovered.total:
            console.print(f"on open: finished {recovered.rolled_forward} interrupted writes, rolled back "
                          f"{recovered.rolled_back}, finished {recovered.erasures_finished} erasures")
        table = Table("user", "memories", "missing in store", "differ", "store only")
        for p in report.problems:
            table.add_row(escape(p.user_id), str(p.memories), str(len(p.missing)), str(len(p.differs)),
                          str(len(p.orphans)))
        if report.problems:
            console.print(table)
        state = "repaired" if report.repaired and report.problems else ("ok" if report.ok else "DISAGREE")
        console.print(f"{report.users_checked} users, {report.memories_checked} memories checked; "
                      f"{report.pending_intents} unfinished changes; store and history: {state}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
