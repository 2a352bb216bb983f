"""Numbered schema migrations of the history database, per dialect.

One ordered list per dialect; a migration's number means the same change on both. SQLite tracks the applied
version in ``PRAGMA user_version``, Postgres in ``remem_schema`` (under an advisory lock, so several workers
starting at once migrate once). Numbers only grow: an existing database applies what it has not seen.

1. ``events`` — the history log (every change, with a snapshot of the record after it)
10. ``pending_jobs`` — the LLM pipeline's durable queue
11. ``intents`` — write-ahead records of store writes (crash consistency, :mod:`remem.writer`)
12. ``pending_jobs`` claims — ``claimed_by``/``claimed_until`` (one worker per job across processes)
13. ``api_keys`` — Postgres only (the embedded default keeps keys in their own file, ``keys.sqlite3``)
14. graph memory (:mod:`remem.graph`): ``graph_entities`` (with each name's vector), ``graph_relations``
    (time-aware edges) and ``graph_events`` (their history); created on both dialects whether graph memory
    is on or off, so ``forget_user`` always erases them
15. ``lm_usage`` — LM calls, tokens and seconds per user (summed by ``remem stats``; erased with the user)
16. ``remem_meta`` — facts about the deployment that every process must agree on (the embedder behind the
    vectors; checked on open when the database is shared)
"""

from __future__ import annotations

from .base import Dialect

SQLITE: list[tuple[int, str]] = [
    (1, """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            memory_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            event TEXT NOT NULL,
            old_text TEXT,
            new_text TEXT,
            actor TEXT NOT NULL,
            reason TEXT,
            created_at TEXT NOT NULL,
            snapshot TEXT
        );
        CREATE INDEX events_memory ON events(memory_id, id);
        CREATE INDEX events_user ON events(user_id)
    """),
    (10, """
        CREATE TABLE IF NOT EXISTS pending_jobs (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            status TEXT NOT NULL,
            stage TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            raw_output TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS pending_jobs_status ON pending_jobs(status, created_at);
        CREATE INDEX IF NOT EXISTS pending_jobs_user ON pending_jobs(user_id)
    """),
    (11, """
        CREATE TABLE intents (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            op TEXT NOT NULL,
            direction TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX intents_user ON intents(user_id, created_at)
    """),
    (12, """
        ALTER TABLE pending_jobs ADD COLUMN claimed_by TEXT;
        ALTER TABLE pending_jobs ADD COLUMN claimed_until TEXT
    """),
    (14, """
        CREATE TABLE graph_entities (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            key TEXT NOT NULL,
            type TEXT NOT NULL,
            hint TEXT,
            aliases TEXT NOT NULL,
            vector BLOB,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX graph_entities_user ON graph_entities(user_id, key);
        CREATE TABLE graph_relations (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            relation TEXT NOT NULL,
            object_id TEXT NOT NULL,
            valid_from TEXT,
            valid_to TEXT,
            created_at TEXT NOT NULL,
            expired_at TEXT,
            deleted_at TEXT,
            source_ids TEXT NOT NULL,
            body TEXT NOT NULL
        );
        CREATE INDEX graph_relations_subject ON graph_relations(user_id, subject_id);
        CREATE INDEX graph_relations_object ON graph_relations(user_id, object_id);
        CREATE TABLE graph_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id TEXT NOT NULL,
            target_id TEXT NOT NULL,
            target TEXT NOT NULL,
            event TEXT NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT,
            created_at TEXT NOT NULL,
            snapshot TEXT NOT NULL
        );
        CREATE INDEX graph_events_target ON graph_events(target_id, id);
        CREATE INDEX graph_events_user ON graph_events(user_id, id)
    """),
    (15, """
        CREATE TABLE lm_usage (
            user_id TEXT PRIMARY KEY,
            operations INTEGER NOT NULL DEFAULT 0,
            calls INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            seconds REAL NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL
        )
    """),
    (16, """
        CREATE TABLE remem_meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )
    """),
]

POSTGRES: list[tuple[int, str]] = [
    (1, """
        CREATE TABLE events (
            id BIGSERIAL PRIMARY KEY,
            memory_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            event TEXT NOT NULL,
            old_text TEXT,
            new_text TEXT,
            actor TEXT NOT NULL,
            reason TEXT,
            created_at TEXT NOT NULL,
            snapshot TEXT
        );
        CREATE INDEX events_memory ON events(memory_id, id);
        CREATE INDEX events_user ON events(user_id, id)
    """),
    (10, """
        CREATE TABLE pending_jobs (
            seq BIGSERIAL UNIQUE,
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            status TEXT NOT NULL,
            stage TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            raw_output TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX pending_jobs_status ON pending_jobs(status, created_at);
        CREATE INDEX pending_jobs_user ON pending_jobs(user_id)
    """),
    (11, """
        CREATE TABLE intents (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            op TEXT NOT NULL,
            direction TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX intents_user ON intents(user_id, created_at)
    """),
    (12, """
        ALTER TABLE pending_jobs ADD COLUMN claimed_by TEXT;
        ALTER TABLE pending_jobs ADD COLUMN claimed_until TEXT
    """),
    (13, """
        CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY,
            hash TEXT NOT NULL,
            role TEXT NOT NULL,
            tenant TEXT,
            label TEXT,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        )
    """),
    (14, """
        CREATE TABLE graph_entities (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            key TEXT NOT NULL,
            type TEXT NOT NULL,
            hint TEXT,
            aliases TEXT NOT NULL,
            vector BYTEA,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX graph_entities_user ON graph_entities(user_id, key);
        CREATE TABLE graph_relations (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            relation TEXT NOT NULL,
            object_id TEXT NOT NULL,
            valid_from TEXT,
            valid_to TEXT,
            created_at TEXT NOT NULL,
            expired_at TEXT,
            deleted_at TEXT,
            source_ids TEXT NOT NULL,
            body TEXT NOT NULL
        );
        CREATE INDEX graph_relations_subject ON graph_relations(user_id, subject_id);
        CREATE INDEX graph_relations_object ON graph_relations(user_id, object_id);
        CREATE TABLE graph_events (
            id BIGSERIAL PRIMARY KEY,
            user_id TEXT NOT NULL,
            target_id TEXT NOT NULL,
            target TEXT NOT NULL,
            event TEXT NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT,
            created_at TEXT NOT NULL,
            snapshot TEXT NOT NULL
        );
        CREATE INDEX graph_events_target ON graph_events(target_id, id);
        CREATE INDEX graph_events_user ON graph_events(user_id, id)
    """),
    (15, """
        CREATE TABLE lm_usage (
            user_id TEXT PRIMARY KEY,
            operations BIGINT NOT NULL DEFAULT 0,
            calls BIGINT NOT NULL DEFAULT 0,
            prompt_tokens BIGINT NOT NULL DEFAULT 0,
            completion_tokens BIGINT NOT NULL DEFAULT 0,
            seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL
        )
    """),
    (16, """
        CREATE TABLE remem_meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )
    """),
]

MIGRATIONS: dict[Dialect, list[tuple[int, str]]] = {"sqlite": SQLITE, "postgres": POSTGRES}

#: Tables holding per-user rows, erased by ``forget_user`` (table -> user column). The graph tables are listed
#: here rather than registered with ``Database.add_eraser`` when graph memory is on: their migration always
#: runs, so a Memory opened with graph memory off must erase them too.
USER_TABLES: dict[str, str] = {"events": "user_id", "intents": "user_id", "pending_jobs": "user_id",
                               "graph_relations": "user_id", "graph_entities": "user_id", "graph_events": "user_id",
                               "lm_usage": "user_id"}


def register_migration(version: int, sql: str, dialect: Dialect = "sqlite") -> None:
    """Add a numbered migration (a second registration of a version is ignored)."""
    steps = MIGRATIONS[dialect]
    if any(v == version for v, _ in steps):
        return
    steps.append((version, sql))
    steps.sort(key=lambda step: step[0])


def statements(sql: str) -> list[str]:
    """The statements of a migration (split on ``;``; migrations hold no literal semicolons)."""
    return [s.strip() for s in sql.split(";") if s.strip()]
