"""``remem graph``: what a user's graph memory holds — the neighbourhood of an entity, or every relation.

No logic: one :class:`remem.graph.Graph` call (``neighbours`` or ``view``), rendered as a rich table or JSON.
The data directory is opened with graph memory on (reading needs no LM and changes nothing).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ..graph import Relation
from ..graph.names import day, labels, sentence
from ..memory.core import Memory
from .app import app, console
from .commands import AsJson, Home, User, emit_json, parse_when, zone_of

GraphTz = Annotated[str | None, typer.Option("--tz", envvar="REMEM_TZ", help="IANA time zone (e.g. Europe/Berlin) "
                                             "of a naive --as-of and of the dates shown (default UTC).")]


def _state(r: Relation, as_of: bool = False) -> Text:
    """holds (now), held then (with --as-of: it held at that time and has ended since), ended, deleted."""
    if r.deleted_at is not None:
        return Text("deleted", style="red")
    if r.is_open:
        return Text("holds", style="green")
    return Text("held then", style="green") if as_of else Text("ended", style="yellow")


@app.command("graph")
def graph(
    entity: Annotated[str | None, typer.Argument(help="An entity name or id, or text naming entities; omit for the "
                                                 "whole graph.", show_default=False)] = None,
    user: User = ...,  # type: ignore[assignment]
    hops: Annotated[int, typer.Option("--hops", help="1: the entity's relations; 2: its neighbours' too.")] = 1,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Only what held then (ISO date or time; a date: "
                                              "at the end of that day).")] = None,
    deleted: Annotated[bool, typer.Option("--deleted", help="Whole graph: include deleted relations.")] = False,
    tz: GraphTz = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """A user's graph memory: entities and time-aware relations (the neighbourhood of ENTITY, or all)."""
    zone_ = zone_of(tz)
    with Memory(home, graph=True) as memory:
        g = memory.graph
        if entity is not None:
            found = g.neighbours(entity, user_id=user, hops=hops, tz=zone_,
                                 as_of=parse_when(as_of, "--as-of", end_of_day=True, tz=zone_))
            if as_json:
                emit_json(found)
                return
            if not found.facts:
                console.print(f"no graph facts of {user} match {entity!r}", highlight=False)
                return
            table = Table("hops", "fact", "sources", "state", title=f"{len(found.facts)} graph facts of {user} "
                          f"near {', '.join(found.label(e) for e in found.matched)}")
            for f in found.facts:
                table.add_row(str(f.hops), Text(f.text + "\n", style="").append(f.relation.id, style="dim"),
                              ", ".join(f.source_ids), _state(f.relation, as_of is not None))
            console.print(table)
            return
        view = g.view(user_id=user, deleted=deleted)
    if as_json:
        emit_json(view)
        return
    if not view.entities:
        console.print(f"no graph memory for {user}", highlight=False)
        return
    names = {e.id: e for e in view.entities}
    shown = labels(view.entities)
    table = Table("fact", "from", "until", "sources", "state",
                  title=f"graph of {user}: {len(view.entities)} entities, {len(view.relations)} relations")
    for r in view.relations:
        text = Text(sentence(r.model_copy(update={"valid_from": None, "valid_to": None, "expired_at": None,
                                                  "deleted_at": None}), names[r.subject_id], names[r.object_id],
                             names=shown))
        text.append(f"\n{r.id}", style="dim")
        table.add_row(text, day(r.valid_from, zone_) if r.valid_from else "-",
                      day(r.valid_to, zone_) if r.valid_to else "-", ", ".join(r.source_ids), _state(r))
    console.print(table)
