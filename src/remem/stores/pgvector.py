"""The ``pgvector`` store: memories, vectors and the keyword index in the Postgres database of the history.

``REMEM_STORE=pgvector`` with ``REMEM_DATABASE_URL``. The store writes through the
:class:`~remem.storage.postgres.PostgresDatabase` it is given (``database`` attribute), inside
``database.transaction()``: the writer (:func:`remem.writer.shares_transactions`) then records a change's history
event and makes the store write **in one transaction** — a memory change and its event commit together or not
at all, with no intents and no recovery step (no other store offers this).

Schema (component ``pgvector`` of ``remem_schema``, numbered migrations, see :data:`STEPS`):

- ``memories`` — one row per record: the filter columns (``user_id``, ``kind``, ``categories``, ``hash``,
  ``session_id``, ``seq``, ``t`` = observed_at else created_at, ``created_at``, ``deleted``), the whole record as
  JSON, the dense vector ``vector(d)`` (the dimension is fixed at creation and checked on open) and a
  ``tsvector`` of the text. B-tree indexes ``(user_id, t, id)``, ``(user_id, hash)``,
  ``(user_id, session_id, seq)``.
- ``memory_terms`` — the BM25 inverted index: one row per (user, term, memory) with the document weight of
  :func:`~remem.stores.bm25.sparse_document` (Qdrant's own BM25 document weights, the vectors the Qdrant stores
  index); primary key ``(user_id, term, memory_id)``, so a query reads only the postings of its terms.

**Dense search is an exact scan of the user's rows** (through the ``user_id`` b-tree; cosine similarity
``1 - (embedding <=> q)``; recall 1.0, like the edge store's tenant scan). pgvector 0.6 has no iterative index
scans: an HNSW index over every user returns its ``hnsw.ef_search`` (≤ 1000) nearest rows *before* the user
filter is applied, so a user holding a small share of the table gets few or none of their neighbours back —
measured by ``remem bench store --hnsw-recall`` (README, "pgvector"). ``hnsw=True`` builds an HNSW index
(``vector_cosine_ops``) that serves only queries without a user filter (the admin path); per-user queries never
use it (their ``ORDER BY`` is not the index's expression).

**Keyword signal** (``keyword``): ``bm25`` (default) scores ``Σ idf(term) · weight(term, memory)`` over the
query's terms from :func:`~remem.stores.bm25.sparse_query`, with ``idf = ln((N - n + 0.5) / (n + 0.5) + 1)``
computed at query time over **the user's own memories** (N rows, n containing the term). Qdrant computes the
same formula over the whole collection; per-user statistics keep one tenant's data out of another's ranking and
cost one index range per query term. With one user in the store, scores equal the Qdrant stores' exactly.
``fts`` ranks with Postgres full-text search (``ts_rank`` of the ``english`` configuration, the query's lexemes
OR-ed). Which one ranks better was measured on the LoCoMo dev data (README). Both are maintained on write, so
the choice is made per query.

Erasure: ``delete_user`` deletes the user's rows in the caller's transaction. Postgres keeps dead row versions
until VACUUM, and the text stays in the WAL, base backups and replicas for as long as they are kept: see the
README, "Erasure", for what an operator runs to finish (``compact`` changes nothing here).
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ConfigurationError, StoreError
from ..models import MemoryRecord
from .base import MemoryFilter, ScoredRecord, StoreQuery, time_of, top_k
from .bm25 import LEGACY_SIGNATURE, signature, sparse_document, sparse_query

if TYPE_CHECKING:
    from ..storage.base import Tx
    from ..storage.postgres import PostgresDatabase

Keyword = Literal["bm25", "fts"]
KEYWORDS: tuple[Keyword, ...] = ("bm25", "fts")
#: The text search configuration of the ``fts`` signal (stemming and stop words, like Qdrant's English BM25).
TS_CONFIG = "english"
COMPONENT = "pgvector"
HNSW_INDEX = "memories_embedding_hnsw"


def migrations(dimensions: int) -> list[tuple[int, str]]:
    """The numbered schema steps of the store (``vector(dimensions)`` is fixed by the first one).

    Rows stay whole in the heap page up to 4 kB (``toast_tuple_target``) and a vector of up to 1024 dimensions
    is never moved out of line (``STORAGE PLAIN``): the per-user scan reads each candidate's vector from the
    row itself instead of a TOAST lookup per row (pgvector's default, ``EXTERNAL``, moved the 1.5 kB of a 384-d
    vector out of every row of 2.3 kB). Long texts still go to TOAST, compressed.
    """
    plain = "ALTER TABLE memories ALTER COLUMN embedding SET STORAGE PLAIN;" if dimensions <= 1024 else ""
    return [
        (1, f"""
            CREATE EXTENSION IF NOT EXISTS vector;
            CREATE TABLE memories (
                id UUID PRIMARY KEY,
                user_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                categories TEXT[] NOT NULL,
                hash TEXT NOT NULL,
                session_id TEXT,
                seq BIGINT,
                t TIMESTAMPTZ NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                deleted BOOLEAN NOT NULL,
                record TEXT NOT NULL,
                embedding vector({int(dimensions)}) NOT NULL,
                tsv TSVECTOR NOT NULL
            );
            ALTER TABLE memories SET (toast_tuple_target = 4096);
            {plain}
            CREATE INDEX memories_user_time ON memories (user_id, t, id);
            CREATE INDEX memories_user_hash ON memories (user_id, hash);
            CREATE INDEX memories_user_session ON memories (user_id, session_id, seq);
            CREATE TABLE memory_terms (
                user_id TEXT NOT NULL,
                term INTEGER NOT NULL,
                memory_id UUID NOT NULL,
                weight REAL NOT NULL,
                PRIMARY KEY (user_id, term, memory_id)
            );
            CREATE INDEX memory_terms_memory ON memory_terms (memory_id)
        """),
        (2, "CREATE TABLE pgvector_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"),
    ]


class _Vector:
    """A dense vector parameter, sent to Postgres in pgvector's binary format (``?::vector`` in the SQL)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def _vector_dumper() -> type:
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class VectorDumper(Dumper):
        """pgvector's binary input: uint16 dimensions, uint16 unused, float32 values, big-endian. ``oid`` 0:
        the server takes the type from the ``::vector`` cast, so no per-database type lookup is needed."""

        format = Format.BINARY
        oid = 0

        def dump(self, obj: Any) -> bytes:
            values = np.asarray(obj.array, dtype=">f4").ravel()
            return struct.pack(">HH", values.size, 0) + values.tobytes()

    return VectorDumper


def _term(index: int) -> int:
    """A sparse index (uint32) as the signed 32-bit ``INTEGER`` it is stored as (a bijection on uint32)."""
    return (int(index) + 2**31) % 2**32 - 2**31


def where(flt: MemoryFilter, alias: str = "m") -> tuple[str, list[Any]]:
    """The SQL condition (``?`` placeholders) and parameters of a :class:`MemoryFilter` on ``memories``."""
    a = alias
    clauses: list[str] = []
    params: list[Any] = []

    def add(sql: str, *values: Any) -> None:
        clauses.append(sql)
        params.extend(values)

    if flt.user_id is not None:
        add(f"{a}.user_id = ?", flt.user_id)
    if flt.categories:
        add(f"{a}.categories && ?::text[]", list(flt.categories))
    if flt.kinds:
        add(f"{a}.kind = ANY(?::text[])", list(flt.kinds))
    if flt.session_id is not None:
        add(f"{a}.session_id = ?", flt.session_id)
    if flt.seq_min is not None:
        add(f"{a}.seq >= ?", flt.seq_min)
    if flt.seq_max is not None:
        add(f"{a}.seq <= ?", flt.seq_max)
    if flt.hash is not None:
        add(f"{a}.hash = ?", flt.hash)
    if flt.hashes is not None:
        add(f"{a}.hash = ANY(?::text[])", list(flt.hashes))
    if flt.since is not None:
        add(f"{a}.t >= ?", flt.since)
    if flt.until is not None:
        add(f"{a}.t <= ?", flt.until)
    if flt.deleted is not None:
        add(f"{a}.deleted = ?", flt.deleted)
    if flt.ids is not None:
        add(f"{a}.id = ANY(?::uuid[])", list(flt.ids))
    if flt.windows:
        ors = []
        for session_id, lo, hi in flt.windows:
            ors.append(f"({a}.session_id = ? AND {a}.seq BETWEEN ? AND ?)")
            params.extend([session_id, lo, hi])
        clauses.append("(" + " OR ".join(ors) + ")")
    return (" AND ".join(clauses) or "TRUE"), params


_UPSERT = f"""
    INSERT INTO memories (id, user_id, kind, categories, hash, session_id, seq, t, created_at, deleted, record,
                          embedding, tsv)
    VALUES (?::uuid, ?, ?, ?::text[], ?, ?, ?, ?, ?, ?, ?, ?::vector, to_tsvector('{TS_CONFIG}', ?))
    ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id, kind = EXCLUDED.kind,
        categories = EXCLUDED.categories, hash = EXCLUDED.hash, session_id = EXCLUDED.session_id,
        seq = EXCLUDED.seq, t = EXCLUDED.t, created_at = EXCLUDED.created_at, deleted = EXCLUDED.deleted,
        record = EXCLUDED.record, embedding = EXCLUDED.embedding, tsv = EXCLUDED.tsv
"""
_SET_PAYLOAD = """
    UPDATE memories SET user_id = ?, kind = ?, categories = ?::text[], hash = ?, session_id = ?, seq = ?, t = ?,
        created_at = ?, deleted = ?, record = ? WHERE id = ?::uuid
"""
_TERMS = """
    INSERT INTO memory_terms (user_id, term, memory_id, weight)
    SELECT * FROM unnest(?::text[], ?::int[], ?::uuid[], ?::real[])
"""


def _payload_row(record: MemoryRecord) -> list[Any]:
    return [record.user_id, record.kind, list(record.categories), record.hash, record.session_id, record.seq,
            time_of(record), record.created_at, record.deleted_at is not None, record.model_dump_json()]


class PgvectorStore:
    """:class:`~remem.stores.base.VectorStore` in Postgres with pgvector (see the module docstring)."""

    name = "pgvector"

    def __init__(self, database: PostgresDatabase, dimensions: int, *, keyword: Keyword = "bm25",
                 hnsw: bool = False) -> None:
        if getattr(database, "dialect", None) != "postgres":
            raise ConfigurationError("REMEM_STORE=pgvector keeps the vectors in Postgres: set REMEM_DATABASE_URL "
                                     "(postgresql://…)")
        if keyword not in KEYWORDS:
            raise ConfigurationError(f"unknown pgvector keyword signal {keyword!r} (use bm25 or fts)")
        self.database = database
        self.dimensions = dimensions
        self.keyword: Keyword = keyword
        self.hnsw = hnsw
        self._dumper = _vector_dumper()
        self._adapted: weakref.WeakSet[Any] = weakref.WeakSet()
        database.migrate(component=COMPONENT, steps=migrations(dimensions))
        self._check_dimensions()
        self._check_keyword_index()
        if hnsw:
            with self.database.transaction() as tx:
                tx.execute(f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON memories "
                           "USING hnsw (embedding vector_cosine_ops)")

    def _check_dimensions(self) -> None:
        with self.database.read() as tx:
            row = tx.fetchone("SELECT atttypmod FROM pg_attribute WHERE attrelid = 'memories'::regclass "
                              "AND attname = 'embedding'")
        stored = int(row[0]) if row else -1
        if stored != self.dimensions:
            raise StoreError(
                f"the pgvector store in {self.database.url} holds {stored}-d vectors but the embedder makes "
                f"{self.dimensions}-d ones; use the embedder it was built with, or export, then import into "
                "another database", stored=stored, embedder=self.dimensions)

    def _check_keyword_index(self) -> None:
        """Rebuild the BM25 postings if another analysis built them (an older remem's; see
        :mod:`remem.stores.bm25`), as the edge store re-indexes its sparse vectors. One process does it, under a
        transaction-scoped advisory lock; the others wait and find the new signature."""
        current = signature()
        with self._tx(write=True) as tx:
            tx.execute("SELECT pg_advisory_xact_lock(hashtext('remem.pgvector.bm25'))")
            row = tx.fetchone("SELECT value FROM pgvector_meta WHERE key = 'bm25'")
            stored = str(row[0]) if row else (LEGACY_SIGNATURE if tx.fetchone("SELECT 1 FROM memories LIMIT 1")
                                               else current)
            if stored != current:
                tx.execute("DELETE FROM memory_terms")
                rows = tx.fetchall("SELECT id::text, user_id, record::json->>'text' FROM memories")
                users: list[str] = []
                terms: list[int] = []
                owners: list[str] = []
                weights: list[float] = []
                for memory_id, user_id, text in rows:
                    indices, values = sparse_document(str(text or ""))
                    users.extend([user_id] * len(indices))
                    terms.extend(_term(i) for i in indices)
                    owners.extend([memory_id] * len(indices))
                    weights.extend(values)
                if terms:
                    tx.execute(_TERMS, (users, terms, owners, weights))
            tx.execute("INSERT INTO pgvector_meta (key, value) VALUES ('bm25', ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (current,))

    # -- connections ---------------------------------------------------------------------------------------
    @contextmanager
    def _tx(self, write: bool) -> Iterator[Tx]:
        """A write transaction (joining the caller's, e.g. the writer's) or a read, with the vector adapter."""
        with (self.database.transaction() if write else self.database.read()) as tx, \
                self.database.session() as conn:
            if conn not in self._adapted:
                conn.adapters.register_dumper(_Vector, self._dumper)
                self._adapted.add(conn)
            yield tx

    # -- writes --------------------------------------------------------------------------------------------
    def upsert(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> None:
        if not records:
            return
        if len(records) != len(vectors):
            raise StoreError(f"upsert: {len(records)} records but {len(vectors)} vectors")
        latest = {r.id: (r, v) for r, v in zip(records, vectors, strict=True)}  # a repeated id: the last wins
        rows: list[list[Any]] = []
        users: list[str] = []
        terms: list[int] = []
        owners: list[str] = []
        weights: list[float] = []
        for record, vector in latest.values():
            rows.append([record.id, *_payload_row(record), _Vector(vector), record.text])
            indices, values = sparse_document(record.text)
            users.extend([record.user_id] * len(indices))
            terms.extend(_term(i) for i in indices)
            owners.extend([record.id] * len(indices))
            weights.extend(values)
        with self._tx(write=True) as tx:
            tx.execute("DELETE FROM memory_terms WHERE memory_id = ANY(?::uuid[])", (list(latest),))
            tx.executemany(_UPSERT, rows)
            if terms:
                tx.execute(_TERMS, (users, terms, owners, weights))

    def set_payload(self, records: Sequence[MemoryRecord]) -> None:
        """Replace the payload columns, keeping the dense vector, the tsvector and the BM25 postings (as the
        Qdrant stores keep a point's vectors)."""
        if records:
            with self._tx(write=True) as tx:
                tx.executemany(_SET_PAYLOAD, [[*_payload_row(r), r.id] for r in records])

    def delete(self, ids: Sequence[str], flt: MemoryFilter) -> None:
        if not ids:
            return
        scoped = MemoryFilter(**{**flt.__dict__, "ids": list(ids), "deleted": None})
        cond, params = where(scoped)
        with self._tx(write=True) as tx:
            tx.execute(f"WITH gone AS (DELETE FROM memories m WHERE {cond} RETURNING m.id) "
                       "DELETE FROM memory_terms WHERE memory_id IN (SELECT id FROM gone)", params)

    def delete_user(self, user_id: str, *, compact: bool = False) -> int:
        """Delete the user's rows (in the caller's transaction, if any); returns how many memories. ``compact``
        has nothing more to do: the dead row versions go at the next (auto)VACUUM; see the README for WAL,
        backups and ``VACUUM FULL``."""
        with self._tx(write=True) as tx:
            tx.execute("DELETE FROM memory_terms WHERE user_id = ?", (user_id,))
            return tx.execute("DELETE FROM memories WHERE user_id = ?", (user_id,))

    # -- reads ---------------------------------------------------------------------------------------------
    def get(self, ids: Sequence[str], flt: MemoryFilter) -> list[MemoryRecord]:
        if not ids:
            return []
        cond, params = where(MemoryFilter(**{**flt.__dict__, "ids": list(ids)}))
        with self._tx(write=False) as tx:
            rows = tx.fetchall(f"SELECT m.id, m.record FROM memories m WHERE {cond}", params)
        by_id = {str(row[0]): MemoryRecord.model_validate_json(row[1]) for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def query(self, q: StoreQuery) -> list[ScoredRecord]:
        """Top ``q.limit`` for one signal; ties at 5 decimals ordered by id (:func:`~remem.stores.base.top_k`)."""
        if q.dense is not None:
            sql, params = self._dense_sql(q)
        elif q.text is not None:
            found = self._keyword_sql(q)
            if found is None:
                return []
            sql, params = found
        else:
            raise StoreError("StoreQuery needs dense or text")
        records: dict[str, str] = {}
        with self._tx(write=False) as tx:
            if q.dense is not None and self.hnsw and q.filter.user_id is None:
                tx.execute("SET hnsw.ef_search = 1000")  # the session's; only HNSW scans read it

            def fetch(n: int) -> list[tuple[str, float]]:
                rows = tx.fetchall(sql, [*params, n])
                records.update((str(r[0]), r[2]) for r in rows)
                return [(str(r[0]), float(r[1])) for r in rows]

            best = top_k(fetch, q.limit)
        return [ScoredRecord(MemoryRecord.model_validate_json(records[i]), score) for i, score in best]

    def _dense_sql(self, q: StoreQuery) -> tuple[str, list[Any]]:
        cond, params = where(q.filter)
        vector = _Vector(np.asarray(q.dense, dtype=np.float32))
        if self.hnsw and q.filter.user_id is None:  # the HNSW index's own ORDER BY (approximate)
            sql = (f"SELECT m.id, 1 - (m.embedding <=> ?::vector), m.record FROM memories m WHERE {cond} "
                   "ORDER BY m.embedding <=> ?::vector LIMIT ?")
            return sql, [vector, *params, vector]
        sql = (f"SELECT m.id, 1 - (m.embedding <=> ?::vector) AS score, m.record FROM memories m WHERE {cond} "
               "ORDER BY score DESC, m.id LIMIT ?")
        return sql, [vector, *params]

    def _keyword_sql(self, q: StoreQuery) -> tuple[str, list[Any]] | None:
        cond, params = where(q.filter)
        text = q.text or ""
        if self.keyword == "fts":
            query = (f"(SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery "
                     f"FROM unnest(to_tsvector('{TS_CONFIG}', ?::text)))")
            sql = (f"SELECT m.id, ts_rank(m.tsv, tq.q) AS score, m.record FROM memories m, {query} AS tq(q) "
                   f"WHERE m.tsv @@ tq.q AND {cond} ORDER BY score DESC, m.id LIMIT ?")
            return sql, [text, *params]
        indices, values = sparse_query(text)
        if not indices:
            return None
        terms = [_term(i) for i in indices]
        user = q.filter.user_id
        scope, scope_params = ("p.user_id = ? AND ", [user]) if user is not None else ("", [])
        corpus, corpus_params = ("WHERE user_id = ?", [user]) if user is not None else ("", [])
        sql = f"""
            WITH q(term, qw) AS (SELECT * FROM unnest(?::int[], ?::real[])),
            corpus AS MATERIALIZED (SELECT count(*)::float8 AS n FROM memories {corpus}),
            df AS MATERIALIZED (SELECT p.term, count(*)::float8 AS n FROM memory_terms p
                                WHERE {scope}p.term = ANY(?::int[]) GROUP BY p.term),
            w AS MATERIALIZED (SELECT df.term, q.qw * ln((corpus.n - df.n + 0.5) / (df.n + 0.5) + 1) AS w
                               FROM df JOIN q ON q.term = df.term CROSS JOIN corpus)
            SELECT m.id, sum(p.weight * w.w) AS score, m.record FROM memory_terms p
            JOIN w ON w.term = p.term JOIN memories m ON m.id = p.memory_id
            WHERE {scope}{cond} GROUP BY m.id ORDER BY score DESC, m.id LIMIT ?
        """
        return sql, [terms, list(values), *corpus_params, *scope_params, terms, *scope_params, *params]

    def scroll(
        self, flt: MemoryFilter, *, offset: int, limit: int, order: Literal["asc", "desc"] = "desc"
    ) -> list[MemoryRecord]:
        """A page ordered by time, then id (``desc``: the exact reverse of ``asc``) — the order
        :func:`~remem.stores.base.page_by_time` gives the Qdrant stores, here straight from the index."""
        if limit <= 0:
            return []
        cond, params = where(flt)
        direction = "DESC" if order == "desc" else "ASC"
        with self._tx(write=False) as tx:
            rows = tx.fetchall(f"SELECT m.record FROM memories m WHERE {cond} "
                               f"ORDER BY m.t {direction}, m.id {direction} OFFSET ? LIMIT ?",
                               [*params, offset, limit])
        return [MemoryRecord.model_validate_json(r[0]) for r in rows]

    def count(self, flt: MemoryFilter) -> int:
        cond, params = where(flt)
        with self._tx(write=False) as tx:
            row = tx.fetchone(f"SELECT count(*) FROM memories m WHERE {cond}", params)
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Nothing to release: the database belongs to the caller (``Memory.storage``)."""
