"""The stores ``remem bench store`` fills: how each is opened fresh, finished after loading, sized and closed.

- ``edge``: the embedded Qdrant shard in a temporary directory (disk = the directory).
- ``qdrant``: qdrant-client local mode (``:memory:`` or a path), the in-process baseline.
- ``pgvector``: a fresh database on the benchmark's Postgres (:mod:`remem.bench.postgres`); after loading,
  ``ANALYZE`` (what autovacuum does shortly after a bulk load) so the planner knows the table; disk =
  ``pg_total_relation_size`` of its two tables (heap, TOAST and indexes; the WAL is not counted).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..stores import VectorStore
from .postgres import BenchPostgres

Backend = Literal["edge", "qdrant", "pgvector"]
BACKENDS: tuple[Backend, ...] = ("edge", "qdrant", "pgvector")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) if path.exists() else 0  # allocated


@dataclass
class BenchStore:
    backend: Backend
    store: VectorStore
    location: str
    directory: Path
    database: Any = None  # pgvector: its PostgresDatabase
    server: BenchPostgres | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def loaded(self) -> None:
        """After the bulk load: refresh the planner's statistics (pgvector)."""
        if self.database is not None:
            with self.database.transaction() as tx:
                tx.execute("ANALYZE memories")
                tx.execute("ANALYZE memory_terms")

    def disk_bytes(self) -> int | None:
        if self.backend == "edge":
            return dir_bytes(self.directory / "edge")
        if self.backend == "pgvector" and self.database is not None:
            with self.database.read() as tx:
                row = tx.fetchone("SELECT pg_total_relation_size('memories') + pg_total_relation_size('memory_terms')")
            return int(row[0]) if row else None
        if self.location.endswith("on disk"):
            return dir_bytes(self.directory / "qdrant")
        return None  # qdrant :memory:

    def roundtrips_ms(self, n: int = 200) -> list[float] | None:
        """Latencies of ``n`` bare ``SELECT 1`` round trips to the database (pgvector), in ms: the share of a
        search that is inter-process communication and scheduling, not work."""
        if self.database is None:
            return None
        out = []
        with self.database.read() as tx:
            for _ in range(n):
                t0 = time.perf_counter()
                tx.fetchone("SELECT 1")
                out.append((time.perf_counter() - t0) * 1000)
        return out

    def server_mb(self) -> float | None:
        """Resident memory outside this process (the local Postgres server's PSS), if measurable."""
        return self.server.server_pss_mb() if self.server is not None else None

    def close(self) -> None:
        self.store.close()
        if self.database is not None:
            self.database.close()


def open_bench_store(backend: Backend, directory: Path, dimensions: int, *, qdrant_location: str,
                     postgres: BenchPostgres | None, hnsw: bool = False) -> BenchStore:
    if backend == "edge":
        from ..stores.edge import EdgeStore

        return BenchStore(backend, EdgeStore(directory / "edge", dimensions), "embedded, on disk", directory)
    if backend == "pgvector":
        from ..storage.postgres import PostgresDatabase
        from ..stores.pgvector import PgvectorStore

        if postgres is None:
            raise AssertionError("pgvector needs the benchmark's Postgres")
        database = PostgresDatabase(postgres.fresh_database(), pool_size=2)
        where = "local server (pgserver, fsync on)" if postgres.local else "REMEM_DATABASE_URL"
        return BenchStore(backend, PgvectorStore(database, dimensions, hnsw=hnsw), f"Postgres 16, {where}",
                          directory, database=database, server=postgres)
    from ..stores.qdrant import QdrantStore

    # Local mode warns above 20k points: that slowness is what this baseline measures.
    warnings.filterwarnings("ignore", message="Local mode is not recommended", category=UserWarning)
    if qdrant_location == "memory":
        return BenchStore(backend, QdrantStore(":memory:", dimensions, collection="bench"), "local mode, :memory:",
                          directory)
    return BenchStore(backend, QdrantStore(str(directory / "qdrant"), dimensions, collection="bench"),
                      "local mode, on disk", directory)
