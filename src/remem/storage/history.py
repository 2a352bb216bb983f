"""The history log and its write intents, in portable SQL over a :class:`~remem.storage.base.Database`.

Every event stores a snapshot of the whole record after the change, so a memory can always be rebuilt from its
history (restore, export, recovery, ``remem doctor``). History is the system of record: when the vector store
and history disagree after a crash, recovery makes the store follow history (see :mod:`remem.writer`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from ..models import EventType, HistoryEvent, MemoryRecord
from .base import Database, Direction, Intent, Row, Tx

_COLUMNS = "id, memory_id, user_id, event, old_text, new_text, actor, reason, created_at, snapshot"
_INSERT = ("INSERT INTO events (memory_id, user_id, event, old_text, new_text, actor, reason, created_at, snapshot)"
           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _event_row(e: HistoryEvent) -> tuple[Any, ...]:
    return (e.memory_id, e.user_id, e.event.value, e.old_text, e.new_text, e.actor, e.reason,
            e.created_at.isoformat(), e.snapshot.model_dump_json() if e.snapshot is not None else None)


def _event(row: Row) -> HistoryEvent:
    (id_, memory_id, user_id, event, old_text, new_text, actor, reason, created_at, snapshot) = row
    return HistoryEvent(
        id=int(id_), memory_id=str(memory_id), user_id=str(user_id), event=EventType(event), old_text=old_text,
        new_text=new_text, actor=str(actor), reason=reason, created_at=datetime.fromisoformat(str(created_at)),
        snapshot=MemoryRecord.model_validate_json(str(snapshot)) if snapshot else None,
    )


class SQLHistory:
    """:class:`~remem.storage.base.History` on SQLite or Postgres (the SQL is the same; see the module doc)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # -- events ------------------------------------------------------------------------------------------
    def record(self, events: Sequence[HistoryEvent], tx: Tx | None = None) -> None:
        if not events:
            return
        if tx is not None:
            tx.executemany(_INSERT, [_event_row(e) for e in events])
            return
        with self.database.transaction() as t:
            t.executemany(_INSERT, [_event_row(e) for e in events])

    def delete_memories(self, memory_ids: Sequence[str], tx: Tx | None = None) -> int:
        if tx is None:
            with self.database.transaction() as t:
                return self.delete_memories(memory_ids, t)
        return sum(tx.execute("DELETE FROM events WHERE memory_id=?", (m,)) for m in memory_ids)

    # -- intents -----------------------------------------------------------------------------------------
    def begin(self, intents: Sequence[Intent]) -> None:
        rows = [(i.id, i.user_id, i.op, i.direction,
                 i.model_dump_json(include={"events", "before", "after", "replace_history"}),
                 i.created_at.isoformat())
                for i in intents]
        with self.database.transaction() as tx:
            tx.executemany("INSERT INTO intents (id, user_id, op, direction, body, created_at)"
                           " VALUES (?, ?, ?, ?, ?, ?)", rows)

    def commit(self, intents: Sequence[Intent]) -> None:
        with self.database.transaction() as tx:
            for intent in intents:
                self.delete_memories(intent.replace_history, tx)
                self.record(intent.events, tx)
                tx.execute("DELETE FROM intents WHERE id=?", (intent.id,))

    def abort(self, intent_ids: Sequence[str]) -> None:
        with self.database.transaction() as tx:
            for intent_id in intent_ids:
                tx.execute("DELETE FROM intents WHERE id=?", (intent_id,))

    def set_direction(self, intent_id: str, direction: Direction) -> None:
        with self.database.transaction() as tx:
            tx.execute("UPDATE intents SET direction=? WHERE id=?", (direction, intent_id))

    def intents(self, user_id: str | None = None) -> list[Intent]:
        sql = "SELECT id, user_id, op, direction, body, created_at FROM intents"
        params: tuple[Any, ...] = ()
        if user_id is not None:
            sql, params = sql + " WHERE user_id=?", (user_id,)
        with self.database.read() as tx:
            rows = tx.fetchall(sql + " ORDER BY created_at, id", params)
        out = []
        for id_, uid, op, direction, body, created_at in rows:
            data = json.loads(body)
            out.append(Intent(id=id_, user_id=uid, op=op, direction=direction, created_at=created_at, **data))
        return out

    def has_intents(self, user_id: str) -> bool:
        with self.database.read() as tx:
            return tx.fetchone("SELECT 1 FROM intents WHERE user_id=? LIMIT 1", (user_id,)) is not None

    # -- reads -------------------------------------------------------------------------------------------
    def for_memory(self, memory_id: str, user_id: str) -> list[HistoryEvent]:
        with self.database.read() as tx:
            rows = tx.fetchall(f"SELECT {_COLUMNS} FROM events WHERE memory_id=? AND user_id=? ORDER BY id",
                               (memory_id, user_id))
        return [_event(r) for r in rows]

    def for_user(self, user_id: str | None) -> list[HistoryEvent]:
        if user_id is None:
            with self.database.read() as tx:
                return [_event(r) for r in tx.fetchall(f"SELECT {_COLUMNS} FROM events ORDER BY id")]
        return list(self.iter_user(user_id))

    def iter_user(self, user_id: str, batch: int = 1000) -> Iterator[HistoryEvent]:
        last = -1
        while True:
            with self.database.read() as tx:
                rows = tx.fetchall(f"SELECT {_COLUMNS} FROM events WHERE user_id=? AND id>? ORDER BY id LIMIT ?",
                                   (user_id, last, batch))
            for r in rows:
                yield _event(r)
            if len(rows) < batch:
                return
            last = int(rows[-1][0])

    def latest(self, user_id: str) -> dict[str, HistoryEvent]:
        out: dict[str, HistoryEvent] = {}
        for event in self.iter_user(user_id):
            if event.snapshot is not None:
                out[event.memory_id] = event
        return out

    def users(self) -> list[str]:
        with self.database.read() as tx:
            return [str(r[0]) for r in tx.fetchall("SELECT DISTINCT user_id FROM events ORDER BY user_id")]

    def count(self, user_id: str | None = None) -> int:
        with self.database.read() as tx:
            if user_id is None:
                row = tx.fetchone("SELECT COUNT(*) FROM events")
            else:
                row = tx.fetchone("SELECT COUNT(*) FROM events WHERE user_id=?", (user_id,))
        return int(row[0]) if row else 0

    def forget_user(self, user_id: str) -> dict[str, int]:
        removed = self.database.erase_user(user_id)
        removed["history_events"] = removed.pop("events", 0)
        removed.pop("intents", None)
        return removed

    def close(self) -> None:
        self.database.close()

