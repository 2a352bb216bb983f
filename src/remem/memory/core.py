"""The :class:`Memory` facade: the library's one entry point.

It composes the parts (:class:`~remem.parts.MemoryParts`: an embedder, a vector store, the history, the pending
queue, per-user locks and the one write path, :class:`~remem.writer.Writer`), validates every input, and
delegates: writes to the writer, ranking to :mod:`remem.retrieval`, the LLM pipeline to :mod:`remem.pipeline`.
The rules that make remem trustworthy live below it and hold for every entry point: every read and write is
scoped to a ``user_id`` given by the host; one serialised write path per user (the duplicate check and the
insert are atomic); every change is a history event, made crash-safe by write intents; an update keeps the
memory id; a delete is a tombstone that :meth:`restore` undoes; :meth:`forget_user` erases for real.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from ..bounds import check_metadata
from ..config import Settings
from ..embedders import Embedder, get_embedder
from ..errors import ConfigurationError, NotFoundError, ValidationError
from ..models import AddResult, ForgetResult, HistoryEvent, MemoryKind, MemoryRecord, Page, SearchHit, Stats
from ..parts import MemoryParts
from ..reads import get_record, list_page
from ..reads import memory_id as canonical_id
from ..storage import Storage, open_storage
from ..storage.usage import usage_totals
from ..stores import MemoryFilter, VectorStore, stores
from ..validation import (
    check_add_args,
    check_add_records_args,
    check_categories,
    check_change_args,
    check_get_args,
    check_import_args,
    check_path,
    check_search_args,
    check_update_args,
    check_user_id,
    to_messages,
)
from ..writer import DoctorReport, RecoveryReport, Writer, check

if TYPE_CHECKING:
    from ..graph import Graph
    from ..models import Context
    from ..retrieval.context import ContextOptions
    from ..retrieval.search import SearchOptions
    from ..validation import MessagesInput

Progress = Callable[[int, int], None]
SearchMode = Literal["hybrid", "dense", "bm25"]

# Aliases: inside the class, ``list`` names the method, not the builtin.
Hits = list[SearchHit]
Events = list[HistoryEvent]
Users = list[str]


class Memory:
    """Long-term, per-user memory.

    ``Memory()`` uses the embedded default: the ``local`` ONNX embedder, the ``edge`` store and SQLite history
    under ``REMEM_HOME`` (``~/.remem``). Pass ``embedder``/``store`` as spec strings (``"fake"``,
    ``"qdrant:http://host:6333"``, ``"pgvector"``) or objects, and ``database_url`` (``postgresql://…``) to keep
    history, queue and keys in Postgres. Opening finishes any write a crashed process left half done.
    """

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        embedder: str | Embedder | None = None,
        store: str | VectorStore | None = None,
        settings: Settings | None = None,
        storage: Storage | None = None,
        lm: Any = None,
        database_url: str | None = None,
        graph: bool | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env(
            home=Path(home) if home is not None else None,
            embedder=embedder if isinstance(embedder, str) else None,
            store=store if isinstance(store, str) else None,
            lm=lm if isinstance(lm, str) else None,
            database_url=database_url,
            graph=graph,
        )
        self.home = Path(self.settings.home).expanduser()
        self.home.mkdir(parents=True, exist_ok=True)
        self.embedder: Embedder = (
            embedder if embedder is not None and not isinstance(embedder, str)
            else get_embedder(self.settings.embedder, dimensions=self.settings.embedder_dimensions)
        )
        self.storage = storage or open_storage(self.settings, self.home)
        try:
            self._check_embedder_matches_database()  # a refused open leaves no marker in the home (next line)
            self._check_store_matches_database()
            self._check_embedder_matches_home()
            self.store: VectorStore = store if store is not None and not isinstance(store, str) else self._open_store()
        except BaseException:
            self.storage.close()
            raise
        self.writer = Writer(store=self.store, history=self.storage.history, embedder=self.embedder,
                             locks=self.storage.locks)
        self.parts = MemoryParts(settings=self.settings, embedder=self.embedder, store=self.store,
                                 history=self.storage.history, queue=self.storage.queue, locks=self.storage.locks,
                                 writer=self.writer)
        self.pipeline: Any = None  # set by remem.pipeline when an LM is configured (infer=True)
        try:
            self.recovered: RecoveryReport = self.writer.recover()
            if lm is not None or self.settings.lm:
                from ..pipeline.ingest import Pipeline

                Pipeline(self, lm if lm is not None else self.settings.lm)  # sets self.pipeline
        except BaseException:
            self.close()  # release the store's lock: the caller gets the error, not a locked directory
            raise

    # -- plumbing ------------------------------------------------------------------------------------------
    def _open_store(self) -> VectorStore:
        spec = self.settings.store
        if spec == "qdrant" and self.settings.qdrant_url:
            spec = f"qdrant:{self.settings.qdrant_url}"
        return stores.create(spec, dimensions=self.embedder.dimensions, home=self.home,
                             collection=self.settings.collection, api_key=self.settings.qdrant_api_key,
                             database=self.storage.database)

    def _check_embedder_matches_database(self) -> None:
        """A shared database (Postgres: many processes, maybe many machines) records the embedder that built its
        vectors; a process with another embedder is refused, as a data directory refuses one."""
        if self.storage.database.dialect != "postgres":
            return
        current = json.dumps({"embedder": self.embedder.name, "dimensions": self.embedder.dimensions})
        with self.storage.database.transaction() as tx:
            tx.execute("INSERT INTO remem_meta (key, value) VALUES ('embedder', ?) ON CONFLICT (key) DO NOTHING",
                       (current,))
            row = tx.fetchone("SELECT value FROM remem_meta WHERE key='embedder'")
        stored = json.loads(str(row[0])) if row else {}
        if stored.get("embedder") != self.embedder.name:
            raise ConfigurationError(
                f"the database {self.storage.database.url} holds vectors of embedder {stored.get('embedder')!r}, "
                f"not {self.embedder.name!r}: use that embedder (REMEM_EMBEDDER), or export and import into a new "
                "database", stored=stored)

    def _check_store_matches_database(self) -> None:
        """History in a shared database describes one set of vectors: every process must use the same store.
        The first open records where the vectors live (the database itself for pgvector, the Qdrant URL, or the
        embedded store's directory on this host); an open with another location is refused, so two processes
        cannot each keep their own vectors under one history."""
        if self.storage.database.dialect != "postgres":
            return
        import socket

        spec = self.settings.store
        url = self.settings.qdrant_url or ""
        if spec.partition(":")[0] == "pgvector":  # options (fts, hnsw) are per process: the rows are the same
            where = "pgvector"
        elif spec == "qdrant" and url.startswith(("http://", "https://")):
            where = f"qdrant {url.rstrip('/')}/{self.settings.collection}"
        else:
            where = f"{spec} {socket.gethostname()}:{self.home.resolve()}"
        with self.storage.database.transaction() as tx:
            tx.execute("INSERT INTO remem_meta (key, value) VALUES ('store', ?) ON CONFLICT (key) DO NOTHING",
                       (where,))
            row = tx.fetchone("SELECT value FROM remem_meta WHERE key='store'")
        if row is not None and str(row[0]) != where:
            raise ConfigurationError(
                f"the database {self.storage.database.url} keeps the history of the vectors in {row[0]!r}, not "
                f"{where!r}: every process on one database must use the same vector store (REMEM_STORE=pgvector, "
                "or one Qdrant server); an embedded store belongs to one process on one host", stored=str(row[0]))

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

    @property
    def log(self) -> Any:
        """The history (:class:`remem.storage.base.History`); kept under its old name."""
        return self.storage.history

    def _text(self, text: object, what: str = "memory text") -> str:
        return self.parts.text(text, what)

    @property
    def graph(self) -> Graph:
        """Graph memory: entities and time-aware relations (:mod:`remem.graph`); ConfigurationError when off."""
        from ..graph import graph_of

        return graph_of(self)

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
        background: bool = False,
    ) -> AddResult:
        """Store memories for ``user_id``.

        ``infer=False`` (raw mode): each message becomes one memory — a plain string is a ``fact``, a message is
        an ``episode`` with its speaker, timestamp and id as source. Exact duplicates (same normalised text, same
        user, live) are not stored twice: they yield a NOOP event naming the existing memory.
        ``infer=True`` runs the LLM pipeline (extraction + maintenance); it needs an LM (see ``remem.pipeline``).
        ``background=True`` (with ``infer=True``) returns once the turns are queued and stored as episodes
        (``pending=True``, ``job_id``); a worker extracts and maintains the facts (``remem.pipeline.worker``).
        All input is validated before anything is written (:class:`~remem.errors.ValidationError`).
        """
        user_id = check_user_id(user_id)
        cats = check_categories(categories)
        is_plain_text = isinstance(messages, str)
        msgs = to_messages(messages)
        check_add_args(msgs, max_chars=self.settings.max_text_chars, metadata=metadata, session_id=session_id,
                       infer=infer, actor=actor, progress=progress)
        meta = check_metadata(metadata) if metadata is not None else {}
        if background and not infer:
            raise ValidationError("background=True applies to infer=True (a raw add is already immediate)",
                                  field="background")
        if infer:
            if self.pipeline is None:
                raise ConfigurationError("add(infer=True) needs a language model: see remem.pipeline / --lm")
            result: AddResult = self.pipeline.add(
                msgs, user_id=user_id, metadata=meta, categories=cats, session_id=session_id, actor=actor,
                background=background,
            )
            return result
        kind: MemoryKind = "fact" if is_plain_text else "episode"
        records = [
            MemoryRecord(
                user_id=user_id, text=m.content.strip(), kind=kind, categories=cats, observed_at=m.timestamp,
                source_ids=[m.id] if m.id else [], role=None if is_plain_text else m.role, speaker=m.name,
                session_id=session_id, metadata=dict(meta),
            )
            for m in msgs
        ]
        return self.add_records(records, actor=actor, progress=progress)

    def add_records(
        self, records: Sequence[MemoryRecord], *, actor: str = "api", progress: Progress | None = None,
        dedupe: bool = True, batch_size: int | None = None,
    ) -> AddResult:
        """Insert prepared records (same user checks and dedupe as :meth:`add`), in batches.

        Every record is validated (user id, text, unique new id) before anything is written, and its content
        hash is recomputed from its text. Events come back in input order, one per record (ADD or NOOP naming
        the existing memory). An id that already exists, for any user, is refused: an insert never overwrites.
        """
        check_add_records_args(records, max_chars=self.settings.max_text_chars, actor=actor, progress=progress,
                               dedupe=dedupe, batch_size=batch_size if batch_size is not None else 256)
        for r in records:
            check_user_id(r.user_id)
        del batch_size  # the writer's batch size applies (kept for compatibility)
        events = self.writer.insert(list(records), actor=actor, dedupe="any" if dedupe else "none",
                                    progress=progress)
        return AddResult(events=events)

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

        ``source_ids`` are appended to the memory's sources (the pipeline cites the turns behind an update). A
        new text that another live memory of the user already holds is refused (:class:`ValidationError` with
        ``duplicate_of``): exact duplicates are never live twice, so a deleted memory stays restorable."""
        user_id = check_user_id(user_id)
        check_update_args(max_chars=self.settings.max_text_chars, text=text, categories=categories,
                          metadata=metadata, observed_at=observed_at, actor=actor, reason=reason,
                          source_ids=source_ids)
        return self.writer.update(
            user_id, canonical_id(memory_id),
            text=self._text(text) if text is not None else None,
            categories=check_categories(categories) if categories is not None else None,
            metadata=check_metadata(metadata) if metadata is not None else None,
            observed_at=observed_at, source_ids=source_ids, actor=actor, reason=reason, refuse_duplicate="any",
        )

    def delete(self, memory_id: str, *, user_id: str, actor: str = "api", reason: str | None = None) -> MemoryRecord:
        """Soft delete: hidden from search and list, kept with its history, undone by :meth:`restore`."""
        check_change_args(actor=actor, reason=reason)
        return self.writer.delete(check_user_id(user_id), canonical_id(memory_id), actor=actor, reason=reason)

    def restore(self, memory_id: str, *, user_id: str, actor: str = "api", reason: str | None = None) -> MemoryRecord:
        """Undo a soft delete. Restoring text a live memory already holds is refused (it would duplicate it)."""
        check_change_args(actor=actor, reason=reason)
        return self.writer.restore(check_user_id(user_id), canonical_id(memory_id), actor=actor, reason=reason)

    def forget_user(self, user_id: str) -> ForgetResult:
        """Erase a user everywhere: vector store points (live and deleted), history, queued turns, and the
        store's files. An erasure that a crash interrupts is finished on the next open (or ``remem doctor``).

        SQLite runs with ``secure_delete`` and the WAL is checkpointed, so the text leaves the database files.
        The embedded store rewrites its shard without the user's points (segments *and* write-ahead log), so the
        text leaves its files too; this copies the remaining points (~8k/s) while other users keep working. On a
        Qdrant server the points are deleted through the API; the server's own retention (WAL, snapshots) is the
        operator's, as is Postgres' (WAL archives, backups: see the README).
        """
        memories, removed = self.writer.forget_user(check_user_id(user_id))
        events = removed.pop("history_events", 0)
        return ForgetResult(user_id=user_id, memories=memories, history_events=events, other=removed)

    # -- reads ---------------------------------------------------------------------------------------------
    def get(self, memory_id: str, *, user_id: str, include_deleted: bool = False) -> MemoryRecord:
        check_get_args(include_deleted=include_deleted)
        return get_record(self.store, memory_id, user_id, include_deleted=include_deleted)

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
        session_id: str | None = None,
    ) -> Page:
        """A page of a user's memories, newest first by default (``deleted=True``: the trash; None: all).

        ``session_id`` keeps only the memories of that conversation (chat histories built on episodes)."""
        return list_page(self.store, user_id=user_id, offset=offset, limit=limit, categories=categories,
                         kinds=kinds, since=since, until=until, deleted=deleted, order=order, session_id=session_id)

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
        graph: bool = False,
    ) -> Hits:
        """The user's memories most relevant to ``query`` (pipeline: :mod:`remem.retrieval.search`).

        ``hybrid`` (default) fuses dense cosine and BM25 rankings with reciprocal-rank fusion; ``dense`` and
        ``bm25`` use one signal. ``threshold`` is a minimum cosine similarity between query and memory.
        ``since``/``until`` filter on ``observed_at`` (else ``created_at``); without them a time expression in
        the query ("last week", "in May 2023", resolved against ``reference_time``, default now) boosts
        memories of that time (``time_expressions="filter"``: restricts to it; ``"off"``: ignored).
        ``expand_neighbors=n`` (default 1) attaches the n turns before and after each episode hit as
        ``hit.context``; ``dedupe`` (default on) drops near-duplicate hits; ``recency`` (default 0) boosts
        newer memories. ``options`` (a :class:`remem.retrieval.SearchOptions`) sets every knob at once;
        explicit arguments override it. ``graph=True`` fuses graph facts with the hits (:mod:`remem.graph.fusion`).
        """
        from ..retrieval.search import DEFAULT_OPTIONS, search_memories

        check_search_args(limit=limit, threshold=threshold, since=since, until=until, options=options, mode=mode,
                          expand_neighbors=expand_neighbors, dedupe=dedupe, recency=recency,
                          time_expressions=time_expressions, reference_time=reference_time)
        opts = options if options is not None else DEFAULT_OPTIONS
        changes = {k: v for k, v in {
            "mode": mode, "expand_neighbors": expand_neighbors, "dedupe": dedupe, "recency": recency,
            "time_expressions": time_expressions, "reference_time": reference_time,
        }.items() if v is not None and not (k == "mode" and options is not None and v == "hybrid")}
        hits = search_memories(
            self.parts, query, user_id=user_id, limit=limit, categories=categories, kinds=kinds, since=since,
            until=until, threshold=threshold, options=opts.with_(**changes) if changes else opts,
        )
        if graph:
            from ..graph.fusion import fuse_graph

            return fuse_graph(self.parts, hits, query, user_id=user_id, limit=limit, since=since, until=until,
                              options=opts.with_(**changes) if changes else opts, kinds=kinds, categories=categories)
        return hits

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
        mid = canonical_id(memory_id)
        events = self.storage.history.for_memory(mid, user_id)
        if not events:
            raise NotFoundError(f"no history for memory {mid} of user {user_id}", memory_id=mid)
        return events

    def users(self) -> Users:
        """Every user id with recorded memories or a graph (admin), sorted."""
        from ..graph.transfer import graph_users

        return sorted({*self.storage.history.users(), *graph_users(self.parts)})

    def stats(self) -> Stats:
        live = self.store.count(MemoryFilter(user_id=None, all_users=True, deleted=False))
        deleted = self.store.count(MemoryFilter(user_id=None, all_users=True, deleted=True))
        return Stats(
            users=len(self.users()), memories=live, deleted=deleted, history_events=self.storage.history.count(),
            store=self.store.name, embedder=self.embedder.name, data_dir=str(self.home),
            lm_usage=usage_totals(self.storage.database),
        )

    # -- maintenance ---------------------------------------------------------------------------------------
    def doctor(self, *, repair: bool = False, user_id: str | None = None) -> DoctorReport:
        """Compare the store with history (the system of record) for every user (or one); with ``repair``,
        finish interrupted changes and make the store follow history (see :mod:`remem.writer.doctor`)."""
        users = [check_user_id(user_id)] if user_id is not None else None
        return check(self.writer, users=users, repair=repair)

    def recover(self) -> RecoveryReport:
        """Finish every change a crashed process left half done (also done when a Memory opens)."""
        return self.writer.recover()

    # -- transfer ------------------------------------------------------------------------------------------
    def export(self, path: str | Path, *, user_id: str | None = None) -> int:
        """Write memories (live and deleted) and their history as JSONL; ``user_id=None`` exports everyone."""
        from ..transfer import export_jsonl

        path = check_path(path)
        return export_jsonl(self.parts, Path(path), user_id=None if user_id is None else check_user_id(user_id))

    def import_(
        self, path: str | Path, *, overwrite: bool = False, progress: Progress | None = None
    ) -> dict[str, int]:
        """Load an export file. The whole file is validated first: a bad line means nothing is written."""
        from ..transfer import import_jsonl

        path = check_import_args(path, overwrite=overwrite, progress=progress)
        return import_jsonl(self.parts, Path(path), overwrite=overwrite, progress=progress)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def close(self) -> None:
        if self.pipeline is not None and hasattr(self.pipeline, "close"):
            self.pipeline.close()
        try:
            self.store.close()
        finally:
            self.storage.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

