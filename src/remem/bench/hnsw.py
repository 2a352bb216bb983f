"""``remem bench store --hnsw-recall``: what an HNSW index gives per-user dense search on pgvector 0.6.

On a filled pgvector store it builds the HNSW index (cosine, pgvector defaults m = 16, ef_construction = 64)
and, for the benchmark's queries, compares the top ``limit`` of one user found through the index (the index's
``ef_search`` candidates, then the user filter) with the exact top ``limit`` of the store's per-user scan; it
also reports whether Postgres itself picks the index for ``WHERE user_id = ? ORDER BY embedding <=> q LIMIT k``
and that plan's recall (custom plans, as a first execution gets). pgvector 0.6 filters the ``hnsw.ef_search``
candidates the index returns *after* the scan (no iterative scans before 0.8), so recall falls with the user's
share of the table. The same comparison without a user filter (against an exact scan of every row) shows the
index itself is sound. Before the build, a random :data:`TENANT_SHARES` of the rows is moved to one big tenant
each (the synthetic users are all the same size): Postgres picks the index for such a tenant, and the table
shows what that plan returns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from ..stores.base import MemoryFilter, StoreQuery
from ..stores.pgvector import HNSW_INDEX
from .store_backends import BenchStore


class HnswPoint(BaseModel):
    ef_search: int
    planner_uses_index: bool = Field(description="whether Postgres picks the HNSW index for the per-user query")
    planner_recall: float = Field(description="recall of the per-user query as Postgres plans it")
    recall: float = Field(description="mean share of the exact per-user top-k found through the index "
                                      "(index scan, then the user filter)")
    returned: float = Field(description="mean rows the index path returned (of k)")
    p50_ms: float
    unfiltered_recall: float = Field(description="recall@k without a user filter, vs an exact scan of all rows")


#: Shares of the table given to one tenant each before the index is built (content-independent choice).
TENANT_SHARES = (0.01, 0.05)


class TenantPoint(BaseModel):
    share: float
    rows: int
    ef_search: int
    planner_uses_index: bool
    recall: float = Field(description="recall@k of the per-user query as Postgres plans it")


class HnswResult(BaseModel):
    size: int
    users: int
    limit: int
    queries: int
    build_seconds: float
    index_mb: float
    exact_p50_ms: float
    points: list[HnswPoint]
    tenants: list[TenantPoint] = Field(default_factory=list)


def _recall(got: Sequence[float], truth: Sequence[float]) -> float:
    """Share of the exact top-k found, by similarity: a result counts if it is at least as similar as the
    exact k-th (the templated corpus repeats texts, so equal vectors tie and ids alone would under-count)."""
    if not truth:
        return 1.0
    cut = min(truth) - 1e-6
    return min(sum(1 for s in got if s >= cut), len(truth)) / len(truth)


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


def measure_hnsw_recall(bench: BenchStore, queries: Sequence[tuple[str, np.ndarray]], *, size: int, users: int,
                        limit: int = 10, efs: Sequence[int] = (40, 1000), unfiltered: int = 10) -> HnswResult:
    """Build the index on ``bench`` (a pgvector store), then measure; ``queries`` are (user, query vector)."""
    db = bench.database
    tenants = []
    for share in TENANT_SHARES:
        name, rows = f"hnsw-tenant-{share:g}", max(int(size * share), limit)
        with db.transaction() as tx:
            tx.execute("UPDATE memories SET user_id = ? WHERE id IN (SELECT id FROM memories WHERE user_id NOT LIKE "
                       "'hnsw-tenant-%' ORDER BY md5(id::text) LIMIT ?)", (name, rows))
        tenants.append((name, share, rows))
    started = time.perf_counter()
    with db.transaction() as tx:
        tx.execute("SET LOCAL maintenance_work_mem = '2GB'")
        tx.execute(f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON memories USING hnsw (embedding vector_cosine_ops)")
    build = time.perf_counter() - started
    with db.read() as tx:
        row = tx.fetchone(f"SELECT pg_relation_size('{HNSW_INDEX}')")
        tx.execute("ANALYZE memories")
    exact: list[list[float]] = []
    exact_ms: list[float] = []
    for user, vector in queries:
        t0 = time.perf_counter()
        hits = bench.store.query(StoreQuery(filter=MemoryFilter(user_id=user, deleted=None), limit=limit, dense=vector))
        exact_ms.append((time.perf_counter() - t0) * 1000)
        exact.append([h.score for h in hits])
    similarity = "1 - (embedding <=> ?::vector)"
    everyone: list[list[float]] = []
    with db.read() as tx:  # exact over every row: no index can serve this ORDER BY expression
        for _, vector in queries[:unfiltered]:
            everyone.append([float(r[0]) for r in tx.fetchall(
                f"SELECT {similarity} AS s FROM memories ORDER BY s DESC LIMIT ?", (_literal(vector), limit))])
    natural_sql = (f"SELECT {similarity} FROM memories WHERE user_id = ? ORDER BY embedding <=> ?::vector "
                   "LIMIT ?")
    forced_sql = (f"SELECT {similarity} FROM (SELECT embedding, user_id FROM memories "
                  "ORDER BY embedding <=> ?::vector LIMIT ?) c WHERE c.user_id = ? LIMIT ?")
    open_sql = f"SELECT {similarity} FROM memories ORDER BY embedding <=> ?::vector LIMIT ?"
    points: list[HnswPoint] = []
    for ef in efs:
        natural, forced, returned, latencies, open_recalls = [], [], [], [], []
        with db.transaction() as tx:
            tx.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
            tx.execute("SET LOCAL plan_cache_mode = force_custom_plan")  # what a first execution gets
            literal = _literal(queries[0][1])
            plan = " ".join(str(r[0]) for r in tx.fetchall("EXPLAIN " + natural_sql,
                                                           (literal, queries[0][0], literal, limit)))
            for (user, vector), truth in zip(queries, exact, strict=True):
                literal = _literal(vector)
                got = [float(r[0]) for r in tx.fetchall(natural_sql, (literal, user, literal, limit))]
                natural.append(_recall(got, truth))
                t0 = time.perf_counter()
                got = [float(r[0]) for r in tx.fetchall(forced_sql, (literal, literal, int(ef), user, limit))]
                latencies.append((time.perf_counter() - t0) * 1000)
                returned.append(len(got))
                forced.append(_recall(got, truth))
            for (_, vector), truth in zip(queries, everyone, strict=False):
                literal = _literal(vector)
                got = [float(r[0]) for r in tx.fetchall(open_sql, (literal, literal, limit))]
                open_recalls.append(_recall(got, truth))
        points.append(HnswPoint(ef_search=ef, planner_uses_index=HNSW_INDEX in plan,
                                planner_recall=float(np.mean(natural)), recall=float(np.mean(forced)),
                                returned=float(np.mean(returned)), p50_ms=float(np.percentile(latencies, 50)),
                                unfiltered_recall=float(np.mean(open_recalls)) if open_recalls else float("nan")))
    tenant_points = [_tenant(bench, name, share, rows, queries[:30], ef, limit, natural_sql)
                     for name, share, rows in tenants for ef in efs]
    return HnswResult(size=size, users=users, limit=limit, queries=len(queries), build_seconds=build,
                      index_mb=(int(row[0]) if row else 0) / 2**20, exact_p50_ms=float(np.percentile(exact_ms, 50)),
                      points=points, tenants=tenant_points)


def _tenant(bench: BenchStore, name: str, share: float, rows: int, queries: Sequence[tuple[str, np.ndarray]],
            ef: int, limit: int, sql: str) -> TenantPoint:
    """Recall of ``sql`` (the per-user query with the index's ORDER BY) for the big tenant ``name``."""
    recalls = []
    with bench.database.transaction() as tx:
        tx.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
        tx.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        literal = _literal(queries[0][1])
        plan = " ".join(str(r[0]) for r in tx.fetchall("EXPLAIN " + sql, (literal, name, literal, limit)))
        for _, vector in queries:
            truth = [h.score for h in bench.store.query(StoreQuery(filter=MemoryFilter(user_id=name, deleted=None),
                                                                   limit=limit, dense=vector))]
            literal = _literal(vector)
            recalls.append(_recall([float(r[0]) for r in tx.fetchall(sql, (literal, name, literal, limit))], truth))
    return TenantPoint(share=share, rows=rows, ef_search=ef, planner_uses_index=HNSW_INDEX in plan,
                       recall=float(np.mean(recalls)))
