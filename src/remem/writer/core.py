"""The :class:`Writer`: inserts, updates, deletes, restores, imports and erasure, crash-safe (see the package doc)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from ..bounds import check_metadata
from ..chunking import chunk_ids, chunks_of
from ..dedupe import adds_nothing
from ..embedders import Embedder
from ..errors import NotFoundError, RememError, StoreError, ValidationError
from ..models import EventType, HistoryEvent, MemoryEvent, MemoryRecord, as_utc, content_hash, utcnow
from ..storage.base import History, Intent, Locks
from ..stores.base import MemoryFilter, StoreQuery, VectorStore
from .types import Change, DedupeMode, RecoveryReport

Progress = Callable[[int, int], None]
ANYONE = MemoryFilter(user_id=None, all_users=True, deleted=None)


def shares_transactions(store: VectorStore, history: History) -> bool:
    """Whether the store writes inside the history database's transactions (pgvector on the same database)."""
    database = getattr(store, "database", None)
    return database is not None and database is history.database


class Writer:
    """The serialised, crash-safe write path over a vector store, the history and an embedder."""

    def __init__(self, *, store: VectorStore, history: History, embedder: Embedder, locks: Locks,
                 batch_size: int = 256) -> None:
        self.store, self.history, self.embedder, self.locks = store, history, embedder, locks
        self.batch_size = batch_size
        self.atomic = shares_transactions(store, history)
        #: Whether long memories get index chunks (remem.chunking): a store may index whole texts itself.
        self.chunked = bool(getattr(store, "indexes_chunks", True))
        # A store people edit outside remem (the Markdown store) is bound to this writer: it turns those edits
        # into history events through apply(), and catches up when a user's lock is first taken (below).
        bind = getattr(store, "bind_writer", None)
        self._catch_up: Callable[[str], object] | None = bind(self) if callable(bind) else None

    # -- locking ---------------------------------------------------------------------------------------------
    @contextmanager
    def user_lock(self, user_id: str) -> Iterator[None]:
        """Hold the user's write lock (re-entrant). The outermost acquisition first finishes any change of this
        user that a crashed process left half done, so every write starts from a store that agrees with history."""
        outer = not self.locks.held(user_id)
        with self.locks.hold(user_id):
            if outer and self.history.has_intents(user_id):
                self._settle(user_id, RecoveryReport())
            if outer and self._catch_up is not None:
                self._catch_up(user_id)
            yield

    @contextmanager
    def users_lock(self, user_ids: Sequence[str]) -> Iterator[None]:
        """Hold several users' locks, taken in sorted order (two multi-user writes cannot deadlock)."""
        with ExitStack() as stack:
            for user_id in sorted(set(user_ids)):
                stack.enter_context(self.user_lock(user_id))
            yield

    # -- the primitive ---------------------------------------------------------------------------------------
    def apply(self, changes: Sequence[Change], events: Sequence[HistoryEvent], *,
              vectors: Mapping[str, np.ndarray] | None = None, replace_history: Sequence[str] = (),
              progress: Progress | None = None) -> None:
        """Make the store hold each change's ``after`` and record ``events``, crash-safely. The caller holds the
        write lock of every user involved. ``vectors`` may give the dense vector of new texts (else embedded
        here, in batches); ``replace_history`` drops the earlier events of those memory ids in the same commit.
        Raises what the store or embedder raised, after undoing the store writes (nothing recorded)."""
        for change in changes:
            if not self.locks.held(change.user_id):
                raise RememError(f"internal: write of user {change.user_id} without its lock")
        if self.atomic:
            with self.history.database.transaction():
                self.history.delete_memories(list(replace_history))
                self.history.record(events)
                self._converge(changes, vectors or {}, progress)
            return
        intents = self._intents(changes, events, replace_history)
        self.history.begin(intents)
        try:
            self._converge(changes, vectors or {}, progress)
        except BaseException as exc:
            self._undo(changes, intents, exc)
            raise
        self.history.commit(intents)

    @staticmethod
    def _intents(changes: Sequence[Change], events: Sequence[HistoryEvent],
                 replace_history: Sequence[str]) -> list[Intent]:
        now = utcnow()
        by_user: dict[str, Intent] = {}
        owner: dict[str, str] = {}
        for c in changes:
            intent = by_user.setdefault(c.user_id, Intent(id=str(uuid.uuid4()), user_id=c.user_id, created_at=now))
            intent.before[c.memory_id] = c.before
            intent.after[c.memory_id] = c.after
            owner[c.memory_id] = c.user_id
        for e in events:
            intent = by_user.setdefault(e.user_id, Intent(id=str(uuid.uuid4()), user_id=e.user_id, created_at=now))
            intent.events.append(e)
        for memory_id in replace_history:
            user = owner.get(memory_id)
            if user is not None:
                by_user[user].replace_history.append(memory_id)
        return list(by_user.values())

    def _undo(self, changes: Sequence[Change], intents: list[Intent], cause: BaseException) -> None:
        """Put the store back to ``before`` after a failed write; drop the intents (or mark them ``back``)."""
        try:
            undo = [Change(c.user_id, c.memory_id, None, c.before) for c in changes]
            self._converge(undo, {}, None, known=False)
            self.history.abort([i.id for i in intents])
        except Exception as undo_exc:  # noqa: BLE001 - any failure: recovery finishes the undo later
            try:
                for intent in intents:
                    self.history.set_direction(intent.id, "back")
            except Exception:  # noqa: BLE001, S110 - the intents stay "forward": recovery then completes the write
                pass
            cause.add_note(f"remem: undoing the partial store write failed too ({undo_exc}); it is finished on "
                           "the next open or by `remem doctor --repair`")

    def _converge(self, changes: Sequence[Change], vectors: Mapping[str, np.ndarray], progress: Progress | None,
                  *, known: bool = True) -> None:
        """Write the store so each ``change.after`` holds. ``known``: ``change.before`` is what the store holds;
        else the store is read first (recovery, undo). Writes only what differs; embeds texts it must. A long
        memory's index chunks (:mod:`remem.chunking`) are written in the same store call as the memory."""
        deletes: defaultdict[str, list[str]] = defaultdict(list)
        embeds: list[MemoryRecord] = []
        payloads: list[MemoryRecord] = []
        current: dict[str, MemoryRecord] = {}
        if not known:
            by_user: defaultdict[str, list[str]] = defaultdict(list)
            for c in changes:
                by_user[c.user_id].append(c.memory_id)
            for user_id, ids in by_user.items():
                for start in range(0, len(ids), 1000):
                    found = self.store.get(ids[start:start + 1000], MemoryFilter(user_id=user_id, deleted=None))
                    current.update((r.id, r) for r in found)
        for c in changes:
            now = c.before if known else current.get(c.memory_id)
            if c.after is None:
                if now is not None or not known:
                    deletes[c.user_id].extend([c.memory_id, *self._chunk_ids(now)])
                continue
            stale = set(self._chunk_ids(now)) - set(self._chunk_ids(c.after))
            deletes[c.user_id].extend(sorted(stale))
            if now is None or now.text != c.after.text or c.memory_id in vectors:
                embeds.append(c.after)
            elif now != c.after:
                payloads.append(c.after)
                payloads.extend(self._chunks(c.after))
        for user_id, ids in deletes.items():
            if ids:
                self.store.delete(ids, MemoryFilter(user_id=user_id, deleted=None, chunks=True))
        if payloads:
            self.store.set_payload(payloads)
        done = 0
        for start in range(0, len(embeds), self.batch_size):
            chunk = embeds[start:start + self.batch_size]
            records = [r for rec in chunk for r in (rec, *self._chunks(rec))]
            missing = [r.text for r in records if r.id not in vectors]
            fresh = iter(self.embedder.embed(missing)) if missing else iter(())
            matrix = np.stack([vectors[r.id] if r.id in vectors else next(fresh) for r in records])
            self.store.upsert(records, matrix)
            done += len(chunk)
            if progress is not None:
                progress(done, len(embeds))

    def _chunks(self, record: MemoryRecord) -> list[MemoryRecord]:
        return chunks_of(record) if self.chunked else []

    def _chunk_ids(self, record: MemoryRecord | None) -> list[str]:
        return chunk_ids(record) if self.chunked else []

    # -- recovery --------------------------------------------------------------------------------------------
    def recover(self) -> RecoveryReport:
        """Finish every change a crashed process left half done (all users); called when a Memory opens."""
        report = RecoveryReport()
        for user_id in sorted({i.user_id for i in self.history.intents()}):
            with self.locks.hold(user_id):
                self._settle(user_id, report)
        return report

    def _settle(self, user_id: str, report: RecoveryReport) -> None:
        intents = self.history.intents(user_id)
        if not intents:
            return
        report.users.append(user_id)
        if any(i.op == "forget" for i in intents):
            self._erase(user_id, compact=True)
            report.erasures_finished += 1
            return
        for intent in intents:
            forward = intent.direction == "forward"
            target = intent.after if forward else intent.before
            changes = [Change(user_id, mid, None, rec) for mid, rec in target.items()]
            self._converge(changes, {}, None, known=False)
            if forward:
                self.history.commit([intent])
                report.rolled_forward += 1
            else:
                self.history.abort([intent.id])
                report.rolled_back += 1

    # -- inserts ---------------------------------------------------------------------------------------------
    def insert(self, records: Sequence[MemoryRecord], *, actor: str = "api", dedupe: DedupeMode = "any",
               near_duplicate: float | None = None, progress: Progress | None = None) -> list[MemoryEvent]:
        """Insert new records (validated by the caller), one :class:`MemoryEvent` per record in input order:
        ADD, or NOOP naming the live memory it duplicates. The duplicate check and the insert are atomic per
        user (under the user's lock). ``near_duplicate``: also a NOOP when a live memory of the same kind, to which
        the text adds no word (:mod:`remem.dedupe`), has
        dense cosine ≥ this value. An id that already exists (for any user) is refused: an insert never
        overwrites."""
        checked = [r if r.hash == content_hash(r.text) else r.model_copy(update={"hash": content_hash(r.text)})
                   for r in records]
        if len({r.id for r in checked}) != len(checked):
            raise ValidationError("the same memory id appears twice in one add")
        total = len(checked)
        vectors: dict[str, np.ndarray] = {}
        # Embedding runs in batches (bounded memory) and outside the users' locks; the decisions and the write
        # run under the locks, all records of the call in one apply: an insert is all or nothing.
        for start in range(0, total, self.batch_size):
            batch = checked[start:start + self.batch_size]
            taken = self.store.get([r.id for r in batch], ANYONE)
            if taken:
                raise ValidationError(f"memory id {taken[0].id} already exists", memory_id=taken[0].id)
            matrix = self.embedder.embed([r.text for r in batch])
            vectors.update((r.id, matrix[i]) for i, r in enumerate(batch))
            if progress is not None:
                progress(min(start + self.batch_size, total), total)
        slots: list[MemoryEvent | None] = [None] * total
        by_user: defaultdict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(checked):
            by_user[r.user_id].append(i)
        with self.users_lock(list(by_user)):
            changes: list[Change] = []
            events: list[HistoryEvent] = []
            for user_id, indexes in by_user.items():
                fresh = self._decide(user_id, [checked[i] for i in indexes], indexes, slots, vectors,
                                     dedupe=dedupe, near_duplicate=near_duplicate)
                changes.extend(Change(user_id, r.id, None, r) for r in fresh)
                events.extend(HistoryEvent(memory_id=r.id, user_id=user_id, event=EventType.ADD, new_text=r.text,
                                           actor=actor, created_at=r.created_at, snapshot=r) for r in fresh)
            if changes:
                self.apply(changes, events, vectors={c.memory_id: vectors[c.memory_id] for c in changes})
        return [e for e in slots if e is not None]

    def _decide(self, user_id: str, records: list[MemoryRecord], indexes: list[int],
                slots: list[MemoryEvent | None], vectors: dict[str, np.ndarray], *, dedupe: DedupeMode,
                near_duplicate: float | None) -> list[MemoryRecord]:
        """ADD or NOOP for each of one user's records (under the user's lock); returns the records to add,
        numbered. A record is a NOOP when it repeats a live memory, or one earlier in the same call."""
        twins = self._twins(user_id, records, dedupe)
        fresh: list[MemoryRecord] = []
        seen: dict[tuple[str, str], str] = {}
        for i, r in zip(indexes, records, strict=True):
            key = (r.hash, r.kind if dedupe == "kind" else "")
            twin = seen.get(key) or twins.get(key) if dedupe != "none" else None
            if twin is None and near_duplicate is not None:
                twin = self._near_twin(user_id, r, vectors[r.id], near_duplicate) or \
                    _near_in(r, vectors, fresh, near_duplicate)
            if twin is not None:
                slots[i] = MemoryEvent(event=EventType.NOOP, memory_id=twin, text=r.text,
                                       reason="duplicate of an existing memory")
                continue
            seen[key] = r.id
            fresh.append(r)
            slots[i] = MemoryEvent(event=EventType.ADD, memory_id=r.id, text=r.text)
        return self._number_turns(user_id, fresh) if fresh else []

    def _twins(self, user_id: str, records: list[MemoryRecord], dedupe: DedupeMode) -> dict[tuple[str, str], str]:
        """Live memories of the user with the same normalised text: (hash, kind or "") -> memory id."""
        if dedupe == "none" or not records:
            return {}
        hashes = sorted({r.hash for r in records})
        twins: dict[tuple[str, str], str] = {}
        for start in range(0, len(hashes), 200):  # a live text has at most one copy per kind: 4 kinds per hash
            group = hashes[start:start + 200]
            for r in self.store.scroll(MemoryFilter(user_id=user_id, hashes=group), offset=0,
                                       limit=4 * len(group) + 16, order="asc"):
                twins.setdefault((r.hash, r.kind if dedupe == "kind" else ""), r.id)
        return twins

    def _near_twin(self, user_id: str, record: MemoryRecord, vector: np.ndarray, threshold: float) -> str | None:
        hits = self.store.query(StoreQuery(filter=MemoryFilter(user_id=user_id, kinds=[record.kind]), limit=5,
                                           dense=vector))
        return next((h.record.id for h in hits if h.score >= threshold and adds_nothing(record.text, h.record.text)),
                    None)

    def _number_turns(self, user_id: str, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """Give episodes of a session without a ``seq`` the next numbers of that session (arrival order), so
        search can expand a hit to its neighbouring turns. Called under the user's lock."""
        next_seq: dict[str, int] = {}
        out: list[MemoryRecord] = []
        for r in records:
            if r.kind != "episode" or r.session_id is None or r.seq is not None:
                out.append(r)
                continue
            if r.session_id not in next_seq:
                next_seq[r.session_id] = self.store.count(
                    MemoryFilter(user_id=user_id, session_id=r.session_id, kinds=["episode"], deleted=None))
            out.append(r.model_copy(update={"seq": next_seq[r.session_id]}))
            next_seq[r.session_id] += 1
        return out

    # -- one-record changes ----------------------------------------------------------------------------------
    def require(self, user_id: str, memory_id: str, *, deleted: bool | None = False) -> MemoryRecord:
        found = self.store.get([memory_id], MemoryFilter(user_id=user_id, deleted=deleted))
        if not found:
            state = {False: "live ", True: "deleted ", None: ""}[deleted]
            raise NotFoundError(f"no {state}memory {memory_id} for user {user_id}", memory_id=memory_id)
        return found[0]

    def update(self, user_id: str, memory_id: str, *, text: str | None = None, categories: list[str] | None = None,
               metadata: dict[str, Any] | None = None, observed_at: Any = None, source_ids: Sequence[str] | None = None,
               actor: str = "api", reason: str | None = None, expected_text: str | None = None,
               refuse_duplicate: DedupeMode = "none") -> MemoryRecord:
        """Change a live memory in place: same id, version + 1, old text kept in history. ``expected_text``:
        refuse (:class:`ValidationError`) if the memory no longer says this (it changed since the caller read it);
        ``refuse_duplicate``: refuse a new text another live memory already holds (checked under the lock)."""
        vector = self.embedder.embed([text])[0] if text is not None else None
        with self.user_lock(user_id):
            old = self.require(user_id, memory_id)
            if expected_text is not None and old.text != expected_text:
                raise ValidationError(f"memory {memory_id} changed since it was read", memory_id=memory_id)
            changes: dict[str, Any] = {"updated_at": utcnow(), "version": old.version + 1}
            if text is not None:
                changes.update(text=text, hash=content_hash(text))
            if categories is not None:
                changes["categories"] = categories
            if metadata is not None:
                changes["metadata"] = check_metadata({**old.metadata, **metadata})  # the merge obeys the limits
            if observed_at is not None:
                changes["observed_at"] = as_utc(observed_at)
            if source_ids:
                changes["source_ids"] = list(dict.fromkeys([*old.source_ids, *source_ids]))
            new = old.model_copy(update=changes)
            if refuse_duplicate != "none" and new.hash != old.hash:
                twin = self._twins(user_id, [new], refuse_duplicate).get(
                    (new.hash, new.kind if refuse_duplicate == "kind" else ""))
                if twin is not None and twin != old.id:
                    raise ValidationError(f"memory {twin} already says this", duplicate_of=twin)
            event = HistoryEvent(memory_id=old.id, user_id=user_id, event=EventType.UPDATE, old_text=old.text,
                                 new_text=new.text, actor=actor, reason=reason, created_at=new.updated_at,
                                 snapshot=new)
            vectors = {old.id: vector} if vector is not None and new.text != old.text else {}
            self.apply([Change(user_id, old.id, old, new)], [event], vectors=vectors)
        return new

    def delete(self, user_id: str, memory_id: str, *, actor: str = "api", reason: str | None = None) -> MemoryRecord:
        """Soft delete (a restorable tombstone)."""
        with self.user_lock(user_id):
            old = self.require(user_id, memory_id)
            now = utcnow()
            new = old.model_copy(update={"deleted_at": now, "updated_at": now})
            event = HistoryEvent(memory_id=old.id, user_id=user_id, event=EventType.DELETE, old_text=old.text,
                                 actor=actor, reason=reason, created_at=now, snapshot=new)
            self.apply([Change(user_id, old.id, old, new)], [event])
        return new

    def restore(self, user_id: str, memory_id: str, *, actor: str = "api", reason: str | None = None) -> MemoryRecord:
        """Undo a soft delete; refused if a live memory already holds the same text."""
        with self.user_lock(user_id):
            old = self.require(user_id, memory_id, deleted=True)
            twin = self._twins(user_id, [old], "any").get((old.hash, ""))
            if twin is not None:
                raise ValidationError(f"cannot restore {memory_id}: live memory {twin} has the same text",
                                      duplicate_of=twin)
            now = utcnow()
            new = old.model_copy(update={"deleted_at": None, "updated_at": now})
            event = HistoryEvent(memory_id=old.id, user_id=user_id, event=EventType.RESTORE, new_text=new.text,
                                 actor=actor, reason=reason, created_at=now, snapshot=new)
            self.apply([Change(user_id, old.id, old, new)], [event])
        return new

    # -- erasure ---------------------------------------------------------------------------------------------
    def forget_user(self, user_id: str) -> tuple[int, dict[str, int]]:
        """Erase a user from the store (compacting its files) and from every table of the history database.
        A ``forget`` intent is written first, so an interrupted erasure is finished by recovery. Returns
        (memories removed from the store, rows removed per table)."""
        with self.locks.hold(user_id):
            if self.atomic:
                with self.history.database.transaction():
                    memories = self.store.delete_user(user_id)
                    return memories, self.history.forget_user(user_id)
            self.history.begin([Intent(id=str(uuid.uuid4()), user_id=user_id, op="forget", created_at=utcnow())])
            return self._erase(user_id, compact=False)

    def _erase(self, user_id: str, *, compact: bool) -> tuple[int, dict[str, int]]:
        try:
            memories = self.store.delete_user(user_id, compact=compact)
        except StoreError as exc:
            exc.context.setdefault("hint", "the erasure is finished on the next open or by `remem doctor --repair`")
            raise
        return memories, self.history.forget_user(user_id)


def _near_in(record: MemoryRecord, vectors: Mapping[str, np.ndarray], fresh: Sequence[MemoryRecord],
             threshold: float) -> str | None:
    """The first record added earlier in the same call, of the same kind, with cosine ≥ ``threshold``."""
    v = vectors[record.id]
    norm = float(np.linalg.norm(v)) or 1.0
    for other in fresh:
        if other.kind == record.kind:
            w = vectors[other.id]
            if float(np.dot(v, w)) / (norm * (float(np.linalg.norm(w)) or 1.0)) >= threshold and \
                    adds_nothing(record.text, other.text):
                return other.id
    return None
