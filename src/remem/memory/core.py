"""The :class:`Memory` facade: the library's one entry point.

It composes an embedder, a vector store and the history log, and owns the rules that make remem trustworthy:
every read and write is scoped to a ``user_id`` given by the host; every change is a history event; an update
keeps the memory id; a delete is a tombstone that :meth:`restore` undoes; :meth:`forget_user` erases for real.

Writes for one user are serialised by a per-user lock (history and store change together); reads take no lock.
The history event is written in the same SQLite transaction that wraps the store write: if the store write
fails, the event is rolled back, so history never records a change that did not happen.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from ..config import Settings
from ..embedders import Embedder, get_embedder
from ..errors import ConfigurationError, NotFoundError, ValidationError
from ..history import History
from ..models import (
    AddResult,
    EventType,
    ForgetResult,
    HistoryEvent,
    MemoryEvent,
    MemoryKind,
    MemoryRecord,
    Page,
    SearchHit,
    Stats,
    as_utc,
    content_hash,
    utcnow,
)
from ..stores import MemoryFilter, VectorStore, stores
from ..validation import (
    MessagesInput,
    check_categories,
    check_kinds,
    check_limit,
    check_range,
    check_text,
    check_user_id,
    to_messages,
)

if TYPE_CHECKING:
    from ..models import Context
    from ..retrieval.context import ContextOptions
    from ..retrieval.search import SearchOptions

Progress = Callable[[int, int], None]
SearchMode = Literal["hybrid", "dense", "bm25"]

#: How many candidates each signal contributes before fusion, relative to ``limit``.
CANDIDATE_FACTOR = 3
MIN_CANDIDATES = 30

# Aliases: inside the class, ``list`` names the method, not the builtin.
Hits = list[SearchHit]
Events = list[HistoryEvent]
Users = list[str]


class Memory:
    """Long-term, per-user memory.

    ``Memory()`` uses the embedded default: the ``local`` ONNX embedder and the ``edge`` store under
    ``REMEM_HOME`` (``~/.remem``). Pass ``embedder``/``store`` as spec strings (``"fake"``,
    ``"qdrant:http://host:6333"``, ``"qdrant::memory:"``) or as objects.
    """

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        embedder: str | Embedder | None = None,
        store: str | VectorStore | None = None,
        settings: Settings | None = None,
        history: History | None = None,
        lm: Any = None,
    ) -> None:
        self.settings = settings or Settings.from_env(
            home=Path(home) if home is not None else None,
            embedder=embedder if isinstance(embedder, str) else None,
            store=store if isinstance(store, str) else None,
            lm=lm if isinstance(lm, str) else None,
        )
        self.home = Path(self.settings.home).expanduser()
        self.home.mkdir(parents=True, exist_ok=True)
        self.embedder: Embedder = (
            embedder
            if embedder is not None and not isinstance(embedder, str)
            else get_embedder(self.settings.embedder, dimensions=self.settings.embedder_dimensions)
        )
        self._check_embedder_matches_home()
        if store is not None and not isinstance(store, str):
            self.store: VectorStore = store
        else:
            spec = self.settings.store
            if spec == "qdrant" and self.settings.qdrant_url:
                spec = f"qdrant:{self.settings.qdrant_url}"
            self.store = stores.create(
                spec,
                dimensions=self.embedder.dimensions,
                home=self.home,
                collection=self.settings.collection,
                api_key=self.settings.qdrant_api_key,
            )
        try:
            self.log = history or History(self.home / "history.sqlite3")
        except BaseException:
            self.store.close()  # release the store's directory lock: the caller gets the error, not a lock
            raise
        self._locks: defaultdict[str, threading.RLock] = defaultdict(threading.RLock)
        self._locks_guard = threading.Lock()
        self.pipeline: Any = None  # set by remem.pipeline when an LM is configured (infer=True)
        from ..pipeline.queue import register_queue  # no DSPy import: the queue shares history's database

        register_queue(self.log)  # so forget_user purges queued turns even without an LM
        if lm is not None or self.settings.lm:
            from ..pipeline.ingest import Pipeline

            try:
                Pipeline(self, lm if lm is not None else self.settings.lm)  # sets self.pipeline
            except BaseException:
                self.close()  # release the store's lock: the caller gets the error, not a locked directory
                raise

    # -- plumbing ------------------------------------------------------------------------------------------
    def _check_embedder_matches_home(self) -> None:
        """Refuse to mix vectors of two models in one data directory (search would silently degrade)."""
        meta_path = self.home / "remem.json"
        current = {"embedder": self.embedder.name, "dimensions": self.embedder.dimensions}
        if meta_path.exists():
            try:
                stored = json.loads(meta_path.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"cannot read {meta_path}: {exc}", path=str(meta_path)) from exc
            if not isinstance(stored, dict):
                raise ConfigurationError(f"{meta_path} is not a JSON object", path=str(meta_path))
            if stored.get("embedder") != current["embedder"]:
                raise ConfigurationError(
                    f"{self.home} was built with embedder {stored.get('embedder')!r}, not {current['embedder']!r};"
                    " use that embedder, or export and import into a new REMEM_HOME",
                    stored=stored,
                )
        else:
            meta_path.write_text(json.dumps(current))

    @contextmanager
    def user_lock(self, user_id: str) -> Iterator[None]:
        """Serialise writes of one user (used by the pipeline too)."""
        with self._locks_guard:
            lock = self._locks[user_id]
        with lock:
            yield

    def _text(self, text: object, what: str = "memory text") -> str:
        return check_text(text, self.settings.max_text_chars, what)

    def _live(self, user_id: str, **kw: Any) -> MemoryFilter:
        return MemoryFilter(user_id=user_id, **kw)

    @staticmethod
    def _memory_id(memory_id: object) -> str:
        """A memory id in canonical form (the stores return UUIDs lower-case); ValidationError if not a UUID."""
        if not isinstance(memory_id, str) or not memory_id:
            raise ValidationError(f"invalid memory id {memory_id!r}")
        try:
            return str(uuid.UUID(memory_id))
        except ValueError:
            raise ValidationError(f"invalid memory id {memory_id!r}: not a UUID", memory_id=memory_id) from None

    def _require(self, memory_id: str, user_id: str, *, deleted: bool | None = False) -> MemoryRecord:
        memory_id = self._memory_id(memory_id)
        found = self.store.get([memory_id], MemoryFilter(user_id=user_id, deleted=deleted))
        if not found:
            state = {False: "live ", True: "deleted ", None: ""}[deleted]
            raise NotFoundError(f"no {state}memory {memory_id} for user {user_id}", memory_id=memory_id)
        return found[0]

    def _commit(self, records: Sequence[MemoryRecord], events: Sequence[HistoryEvent], *, embed: bool) -> None:
        """Write records to the store and their events to history, atomically from history's point of view."""
        vectors = self.embedder.embed([r.text for r in records]) if embed else None
        with self.log.transaction() as conn:
            self.log.record(events, conn)
            if vectors is not None:
                self.store.upsert(records, vectors)
            else:
                self.store.set_payload(records)

    def find_duplicate(self, user_id: str, text: str) -> MemoryRecord | None:
        """A live memory of this user with the same normalised text, if any."""
        found = self.store.scroll(self._live(user_id, hash=content_hash(text)), offset=0, limit=1)
        return found[0] if found else None

    # -- writes --------------------------------------------------------------------------------------------
    def add(
        self,
        messages: MessagesInput,
        *,
        user_id: str,
        metadata: dict[str, Any] | None = None,
        categories: Sequence[str] | None = None,
        session_id: str | None = None,
        infer: bool = False,
        actor: str = "api",
        progress: Progress | None = None,
    ) -> AddResult:
        """Store memories for ``user_id``.

        ``infer=False`` (raw mode): each message becomes one memory — a plain string is a ``fact``, a message is
        an ``episode`` with its speaker, timestamp and id as source. Exact duplicates (same normalised text, same
        user, live) are not stored twice: they yield a NOOP event naming the existing memory.
        ``infer=True`` runs the LLM pipeline (extraction + maintenance); it needs an LM (see ``remem.pipeline``).
        All input is validated before anything is written.
        """
        user_id = check_user_id(user_id)
        cats = check_categories(categories)
        is_plain_text = isinstance(messages, str)
        msgs = to_messages(messages)
        for i, m in enumerate(msgs):
            self._text(m.content, f"message {i} content")
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("metadata must be a JSON object")
        try:
            json.dumps(metadata or {})
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"metadata is not JSON-serialisable: {exc}") from exc
        if infer:
            if self.pipeline is None:
                raise ConfigurationError("add(infer=True) needs a language model: see remem.pipeline / --lm")
            result: AddResult = self.pipeline.add(
                msgs, user_id=user_id, metadata=metadata, categories=cats, session_id=session_id, actor=actor
            )
            return result
        kind: MemoryKind = "fact" if is_plain_text else "episode"
        records = [
            MemoryRecord(
                user_id=user_id,
                text=m.content.strip(),
                kind=kind,
                categories=cats,
                observed_at=m.timestamp,
                source_ids=[m.id] if m.id else [],
                role=None if is_plain_text else m.role,
                speaker=m.name,
                session_id=session_id,
                metadata=dict(metadata or {}),
            )
            for m in msgs
        ]
        return self.add_records(records, actor=actor, progress=progress)

    def add_records(
        self, records: Sequence[MemoryRecord], *, actor: str = "api", progress: Progress | None = None,
        dedupe: bool = True, batch_size: int = 256,
    ) -> AddResult:
        """Insert prepared records (same user checks and dedupe as :meth:`add`), in batches.

        Every record is validated (user id, text, unique new id) before anything is written, and its content
        hash is recomputed from its text. Events come back in input order, one per record (ADD or NOOP naming
        the existing memory). An id that already exists, for any user, is refused: an insert never overwrites.
        """
        checked: list[MemoryRecord] = []
        for i, r in enumerate(records):
            check_user_id(r.user_id)
            self._text(r.text, f"record {i} text")
            digest = content_hash(r.text)
            checked.append(r if r.hash == digest else r.model_copy(update={"hash": digest}))
        if len({r.id for r in checked}) != len(checked):
            raise ValidationError("the same memory id appears twice in one add")
        anyone = MemoryFilter(user_id=None, all_users=True, deleted=None)
        result = AddResult()
        total = len(checked)
        for start in range(0, total, batch_size):
            batch = checked[start : start + batch_size]
            taken = self.store.get([r.id for r in batch], anyone)
            if taken:
                raise ValidationError(f"memory id {taken[0].id} already exists", memory_id=taken[0].id)
            slots: list[MemoryEvent | None] = [None] * len(batch)
            by_user: defaultdict[str, list[int]] = defaultdict(list)
            for i, r in enumerate(batch):
                by_user[r.user_id].append(i)
            for user_id, indexes in by_user.items():
                with self.user_lock(user_id):
                    fresh: list[MemoryRecord] = []
                    seen: dict[str, str] = {}
                    for i in indexes:
                        r = batch[i]
                        if dedupe:
                            twin = seen.get(r.hash)
                            if twin is None:
                                found = self.find_duplicate(user_id, r.text)
                                twin = found.id if found is not None else None
                            if twin is not None:
                                slots[i] = MemoryEvent(event=EventType.NOOP, memory_id=twin, text=r.text,
                                                       reason="duplicate of an existing memory")
                                continue
                        seen[r.hash] = r.id
                        fresh.append(r)
                        slots[i] = MemoryEvent(event=EventType.ADD, memory_id=r.id, text=r.text)
                    fresh = self._number_turns(user_id, fresh)
                    events = [
                        HistoryEvent(memory_id=r.id, user_id=user_id, event=EventType.ADD, new_text=r.text,
                                     actor=actor, created_at=r.created_at, snapshot=r)
                        for r in fresh
                    ]
                    if fresh:
                        self._commit(fresh, events, embed=True)
            result.events.extend(e for e in slots if e is not None)
            if progress is not None:
                progress(min(start + batch_size, total), total)
        return result

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
                    MemoryFilter(user_id=user_id, session_id=r.session_id, kinds=["episode"], deleted=None)
                )
            out.append(r.model_copy(update={"seq": next_seq[r.session_id]}))
            next_seq[r.session_id] += 1
        return out

    def update(
        self,
        memory_id: str,
        text: str | None = None,
        *,
        user_id: str,
        categories: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        observed_at: datetime | None = None,
        actor: str = "api",
        reason: str | None = None,
        source_ids: Sequence[str] | None = None,
    ) -> MemoryRecord:
        """Change a memory in place: same id, new text re-embedded, version + 1, old text kept in history.

        ``source_ids`` are appended to the memory's sources (the pipeline cites the turns behind an update)."""
        user_id = check_user_id(user_id)
        new_text = self._text(text) if text is not None else None
        cats = check_categories(categories) if categories is not None else None
        with self.user_lock(user_id):
            old = self._require(memory_id, user_id)
            changes: dict[str, Any] = {"updated_at": utcnow(), "version": old.version + 1}
            if new_text is not None:
                changes.update(text=new_text, hash=content_hash(new_text))
            if cats is not None:
                changes["categories"] = cats
            if metadata is not None:
                changes["metadata"] = {**old.metadata, **metadata}
            if observed_at is not None:
                changes["observed_at"] = as_utc(observed_at)
            if source_ids:
                changes["source_ids"] = list(dict.fromkeys([*old.source_ids, *source_ids]))
            new = old.model_copy(update=changes)
            event = HistoryEvent(memory_id=old.id, user_id=user_id, event=EventType.UPDATE, old_text=old.text,
                                 new_text=new.text, actor=actor, reason=reason, created_at=new.updated_at,
                                 snapshot=new)
            self._commit([new], [event], embed=new_text is not None and new_text != old.text)
        return new

    def delete(self, memory_id: str, *, user_id: str, actor: str = "api", reason: str | None = None) -> MemoryRecord:
        """Soft delete: hidden from search and list, kept with its history, undone by :meth:`restore`."""
        user_id = check_user_id(user_id)
        with self.user_lock(user_id):
            old = self._require(memory_id, user_id)
            now = utcnow()
            new = old.model_copy(update={"deleted_at": now, "updated_at": now})
            event = HistoryEvent(memory_id=old.id, user_id=user_id, event=EventType.DELETE, old_text=old.text,
                                 actor=actor, reason=reason, created_at=now, snapshot=new)
            self._commit([new], [event], embed=False)
        return new

    def restore(self, memory_id: str, *, user_id: str, actor: str = "api", reason: str | None = None) -> MemoryRecord:
        """Undo a soft delete. Restoring text a live memory already holds is refused (it would duplicate it)."""
        user_id = check_user_id(user_id)
        with self.user_lock(user_id):
            old = self._require(memory_id, user_id, deleted=True)
            twin = self.find_duplicate(user_id, old.text)
            if twin is not None:
                raise ValidationError(
                    f"cannot restore {memory_id}: live memory {twin.id} has the same text", duplicate_of=twin.id
                )
            now = utcnow()
            new = old.model_copy(update={"deleted_at": None, "updated_at": now})
            event = HistoryEvent(memory_id=old.id, user_id=user_id, event=EventType.RESTORE, new_text=new.text,
                                 actor=actor, reason=reason, created_at=now, snapshot=new)
            self._commit([new], [event], embed=False)
        return new

    def forget_user(self, user_id: str) -> ForgetResult:
        """Erase a user everywhere: vector store points (live and deleted), history, and registered extras.

        SQLite runs with ``secure_delete`` and the WAL is checkpointed, so the text leaves the database files.
        The embedded store rewrites its shard without the user's points (segments *and* write-ahead log), so the
        text leaves its files too; this copies the remaining points (~8k/s, ~4 s at 30k). On a Qdrant server the
        points are deleted through the API; the server's own retention (WAL, snapshots) is the operator's.
        """
        user_id = check_user_id(user_id)
        with self.user_lock(user_id):
            memories = self.store.delete_user(user_id)
            removed = self.log.forget_user(user_id)
        events = removed.pop("history_events", 0)
        return ForgetResult(user_id=user_id, memories=memories, history_events=events, other=removed)

    # -- reads ---------------------------------------------------------------------------------------------
    def get(self, memory_id: str, *, user_id: str, include_deleted: bool = False) -> MemoryRecord:
        return self._require(memory_id, check_user_id(user_id), deleted=None if include_deleted else False)

    def list(
        self,
        *,
        user_id: str,
        offset: int = 0,
        limit: int = 50,
        categories: Sequence[str] | None = None,
        kinds: Sequence[MemoryKind] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        deleted: bool | None = False,
        order: Literal["asc", "desc"] = "desc",
    ) -> Page:
        """A page of a user's memories, newest first by default (``deleted=True``: the trash; None: all)."""
        user_id = check_user_id(user_id)
        check_limit(limit)
        if not isinstance(offset, int) or offset < 0:
            raise ValidationError(f"offset must be a non-negative integer, got {offset!r}")
        check_range(since, until)
        flt = MemoryFilter(
            user_id=user_id, categories=check_categories(categories) or None, kinds=check_kinds(kinds),
            since=as_utc(since) if since else None, until=as_utc(until) if until else None, deleted=deleted,
        )
        total = self.store.count(flt)
        items = self.store.scroll(flt, offset=offset, limit=limit, order=order)
        next_offset = offset + len(items) if offset + len(items) < total else None
        return Page(items=items, next_offset=next_offset, total=total)

    def search(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 10,
        categories: Sequence[str] | None = None,
        kinds: Sequence[MemoryKind] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        threshold: float | None = None,
        mode: SearchMode = "hybrid",
        expand_neighbors: int | None = None,
        dedupe: bool | None = None,
        recency: float | None = None,
        time_expressions: Literal["boost", "filter", "off"] | None = None,
        reference_time: datetime | None = None,
        options: SearchOptions | None = None,
    ) -> Hits:
        """The user's memories most relevant to ``query`` (pipeline: :mod:`remem.retrieval.search`).

        ``hybrid`` (default) fuses dense cosine and BM25 rankings with reciprocal-rank fusion; ``dense`` and
        ``bm25`` use one signal. ``threshold`` is a minimum cosine similarity between query and memory.
        ``since``/``until`` filter on ``observed_at`` (else ``created_at``); without them a time expression in
        the query ("last week", "in May 2023", resolved against ``reference_time``, default now) boosts
        memories of that time (``time_expressions="filter"``: restricts to it; ``"off"``: ignored).
        ``expand_neighbors=n`` (default 1) attaches the n turns before and after each episode hit as
        ``hit.context``; ``dedupe`` (default on) drops near-duplicate hits; ``recency`` (default 0) boosts
        newer memories. ``options`` (a
        :class:`remem.retrieval.SearchOptions`) sets every knob at once; explicit arguments override it.
        """
        from ..retrieval.search import DEFAULT_OPTIONS, search_memories

        opts = options if options is not None else DEFAULT_OPTIONS
        changes = {k: v for k, v in {
            "mode": mode, "expand_neighbors": expand_neighbors, "dedupe": dedupe, "recency": recency,
            "time_expressions": time_expressions, "reference_time": reference_time,
        }.items() if v is not None and not (k == "mode" and options is not None and v == "hybrid")}
        return search_memories(
            self, query, user_id=user_id, limit=limit, categories=categories, kinds=kinds, since=since,
            until=until, threshold=threshold, options=opts.with_(**changes) if changes else opts,
        )

    def context(
        self, query: str, *, user_id: str, max_tokens: int = 1000, categories: Sequence[str] | None = None,
        kinds: Sequence[MemoryKind] | None = None, since: datetime | None = None, until: datetime | None = None,
        reference_time: datetime | None = None, options: ContextOptions | None = None,
    ) -> Context:
        """The user's best memory for ``query`` within ``max_tokens`` cl100k tokens, as a prompt-ready block
        (core facts, then facts and dated excerpts of turns): :func:`remem.retrieval.context.build_context`."""
        from ..retrieval.context import DEFAULT_CONTEXT_OPTIONS, build_context

        opts = options if options is not None else DEFAULT_CONTEXT_OPTIONS
        if reference_time is not None:
            opts = opts.with_(search=opts.search.with_(reference_time=reference_time))
        return build_context(self.search, self.store, query, user_id=user_id, max_tokens=max_tokens,
                             categories=categories, kinds=kinds, since=since, until=until, options=opts)

    def history(self, memory_id: str, *, user_id: str) -> Events:
        """Every recorded change of one memory, oldest first (NotFoundError if the user has no such memory)."""
        user_id = check_user_id(user_id)
        memory_id = self._memory_id(memory_id)
        events = self.log.for_memory(memory_id, user_id)
        if not events:
            raise NotFoundError(f"no history for memory {memory_id} of user {user_id}", memory_id=memory_id)
        return events

    def users(self) -> Users:
        """Every user id with recorded memories (admin)."""
        return self.log.users()

    def stats(self) -> Stats:
        live = self.store.count(MemoryFilter(user_id=None, all_users=True, deleted=False))
        deleted = self.store.count(MemoryFilter(user_id=None, all_users=True, deleted=True))
        return Stats(
            users=len(self.users()), memories=live, deleted=deleted, history_events=self.log.count(),
            store=self.store.name, embedder=self.embedder.name, data_dir=str(self.home),
        )

    # -- transfer ------------------------------------------------------------------------------------------
    def export(self, path: str | Path, *, user_id: str | None = None) -> int:
        """Write memories (live and deleted) and their history as JSONL; ``user_id=None`` exports everyone."""
        from ..transfer import export_jsonl

        return export_jsonl(self, Path(path), user_id=None if user_id is None else check_user_id(user_id))

    def import_(
        self, path: str | Path, *, overwrite: bool = False, progress: Progress | None = None
    ) -> dict[str, int]:
        """Load an export file. The whole file is validated first: a bad line means nothing is written."""
        from ..transfer import import_jsonl

        return import_jsonl(self, Path(path), overwrite=overwrite, progress=progress)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def close(self) -> None:
        if self.pipeline is not None and hasattr(self.pipeline, "close"):
            self.pipeline.close()
        self.store.close()
        self.log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
