"""``remem bench store``: insert throughput, filtered search latency, memory and disk of the store backends,
side by side in one run.

For each size (default 10k and 100k memories over 1,000 users; up to 1,000,000 over 10,000 users with
``--sizes``/``--users``) and each backend — ``edge`` (embedded Qdrant, the default), ``qdrant`` (qdrant-client
local mode, the in-process baseline) and ``pgvector`` (Postgres; :mod:`remem.bench.postgres` gives the server) —
it measures:

- **insert**: records/s of ``store.upsert`` with precomputed vectors, in batches (BM25 sparse vectors and
  payloads are built inside, as in production; pgvector: one transaction per batch, then ``ANALYZE``).
  Embedding throughput is reported separately.
- **search**: per-query latency (p50/p95/p99) of ``Memory.search`` for one user (the tenant filter),
  ``hybrid`` (the default path: dense + BM25 fused) and ``dense`` only, **query embedding included** with the
  configured embedder; ``no-embed`` = hybrid with the query vectors computed beforehand.
- **RSS**: growth of this process's resident memory from before the store was opened to after the searches,
  plus (pgvector on the local server) the proportional set size of the Postgres processes; **disk**: the store's
  files (edge), its tables with indexes (pgvector).
- **agreement**: mean top-k overlap of each backend's hybrid hits with edge's for the same queries (qdrant: 1.00,
  the same contract; pgvector: dense is identical, its BM25 IDF is per user — see :mod:`remem.stores.pgvector`).

Corpus vectors are cached in ``<cache_dir>/corpus-v<gen>-seed<seed>-<embedder>.npy`` (the corpus is
prefix-stable, so one cache serves every smaller size). qdrant local mode filters in Python and is slow at
100k (~seconds per query), so it runs ``slow_queries`` queries instead of ``queries``; the table says how many.
With ``hnsw_recall``, each pgvector size also builds an HNSW index and measures per-user recall through it
(:mod:`remem.bench.hnsw`). Presentation (table, markdown, plot): :mod:`remem.bench.store_report`.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..embedders import Embedder, get_embedder
from ..errors import RememError
from ..memory.core import Memory, SearchMode
from ..models import MemoryRecord, utcnow
from . import synthetic
from .hnsw import HnswResult, measure_hnsw_recall
from .postgres import BenchPostgres, bench_postgres
from .store_backends import Backend, BenchStore, open_bench_store

#: Goals for filtered hybrid search p95 at 1,000,000 memories, query embedding included (issue 9).
TARGETS_P95_MS: dict[str, float] = {"edge": 10.0, "pgvector": 25.0}


class BenchmarkError(RememError):
    """A benchmark run produced inconsistent results."""

    code = "benchmark_error"


class StoreBenchConfig(BaseModel):
    sizes: list[int] = Field(default_factory=lambda: [10_000, 100_000])
    users: int = 1000
    queries: int = 200
    slow_queries: int = 20
    backends: list[Backend] = Field(default_factory=lambda: list[Backend](["edge", "qdrant", "pgvector"]))
    embedder: str = "local"
    out: Path = Path("results")
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "remem-bench")
    qdrant_location: Literal["memory", "path"] = "memory"
    limit: int = 10
    batch_size: int = 256
    embed_sample: int = 2000
    seed: int = 0
    hnsw_recall: bool = False
    hnsw_ef: list[int] = Field(default_factory=lambda: [40, 1000])


class EmbeddingResult(BaseModel):
    embedder: str
    dimensions: int
    sample: int
    texts_per_s: float
    query_p50_ms: float
    query_p95_ms: float
    corpus_rows: int
    corpus_cached_rows: int
    corpus_embedded_rows: int
    corpus_embed_seconds: float


class BackendRow(BaseModel):
    backend: Backend
    location: str
    size: int
    users: int
    insert_per_s: float
    insert_seconds: float
    queries: int
    hybrid_p50_ms: float
    hybrid_p95_ms: float
    hybrid_p99_ms: float
    store_p50_ms: float = Field(description="hybrid search with the query vector precomputed (no embedding)")
    store_p95_ms: float
    dense_p50_ms: float
    dense_p95_ms: float
    rss_mb: float = Field(description="this process's RSS growth while the store was open and searched")
    server_mb: float | None = Field(default=None, description="PSS of the local Postgres server's processes")
    disk_mb: float | None = None
    agreement: float | None = None
    roundtrip_p50_ms: float | None = Field(default=None, description="bare SELECT 1 round trip (pgvector)")
    roundtrip_p95_ms: float | None = None


class Target(BaseModel):
    backend: Backend
    size: int
    goal_p95_ms: float
    hybrid_p95_ms: float
    met: bool


class StoreBenchReport(BaseModel):
    config: StoreBenchConfig
    embedding: EmbeddingResult
    rows: list[BackendRow]
    hnsw: list[HnswResult] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)
    started_at: datetime
    seconds: float
    machine: str


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def _settled_rss_mb() -> float:
    """RSS after returning freed memory to the OS (garbage collection, then glibc's ``malloc_trim``), so the
    growth measured from here is the store's, not what an earlier backend's run left to the allocator."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the baseline is merely less exact
        pass
    return _rss_mb()


def corpus_vectors(texts: Sequence[str], embedder: Embedder, cache_dir: Path, seed: int,
                   console: Console) -> tuple[np.ndarray, int, int, float]:
    """Vectors for ``texts`` (the synthetic corpus prefix), from the cache where possible.

    Only distinct texts are embedded (the templated corpus repeats itself: 168k distinct texts in 1M); a text
    already in the cached prefix reuses its vector. Returns (vectors, rows from cache, rows computed now,
    seconds spent embedding).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", embedder.name)
    path = cache_dir / f"corpus-v{synthetic.GENERATOR_VERSION}-seed{seed}-{tag}.npy"
    cached = np.load(path, mmap_mode="r") if path.exists() else np.zeros((0, embedder.dimensions), dtype=np.float32)
    if cached.ndim != 2 or cached.shape[1] != embedder.dimensions:
        cached = np.zeros((0, embedder.dimensions), dtype=np.float32)
    n = len(texts)
    have = min(len(cached), n)
    if have == n:
        return np.asarray(cached[:n]), n, 0, 0.0
    known = {t: i for i, t in reversed(list(enumerate(texts[:have])))}
    fresh = [t for t in dict.fromkeys(texts[have:]) if t not in known]
    started = time.perf_counter()
    computed: dict[str, np.ndarray] = {}
    with _progress(console) as bar:
        task = bar.add_task(f"embedding {len(fresh):,} distinct corpus texts ({embedder.name}, cached to "
                            f"{path.name})", total=len(fresh))
        for start in range(0, len(fresh), 512):
            chunk = fresh[start : start + 512]
            computed.update(zip(chunk, embedder.embed(chunk), strict=True))
            bar.update(task, advance=len(chunk))
    seconds = time.perf_counter() - started
    rest = np.stack([computed[t] if t in computed else cached[known[t]] for t in texts[have:]])
    vectors = np.concatenate([np.asarray(cached[:have]), rest]).astype(np.float32)
    tmp = path.with_name(path.stem + ".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors, have, n - have, seconds


def measure_embedding(embedder: Embedder, texts: Sequence[str], queries: Sequence[str]) -> tuple[float, float, float]:
    """(batch texts/s, single-query p50 ms, p95 ms) of the embedder itself."""
    embedder.embed(list(texts[:8]))  # warm-up (model load)
    started = time.perf_counter()
    for start in range(0, len(texts), 256):
        embedder.embed(list(texts[start : start + 256]))
    rate = len(texts) / max(time.perf_counter() - started, 1e-9)
    single: list[float] = []
    for q in queries:
        t0 = time.perf_counter()
        embedder.embed([q])
        single.append((time.perf_counter() - t0) * 1000)
    return rate, _pct(single, 50), _pct(single, 95)


class _PrecomputedQueries:
    """The real embedder's query vectors, computed up front: isolates the store + fusion share of latency."""

    def __init__(self, embedder: Embedder, texts: Sequence[str]) -> None:
        self.name, self.dimensions = embedder.name, embedder.dimensions
        self._vectors = dict(zip(texts, embedder.embed(list(texts)), strict=True))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])


def _timed_searches(memory: Memory, queries: Sequence[tuple[str, str]], limit: int,
                    mode: SearchMode) -> tuple[list[float], list[list[str]]]:
    for user, q in queries[:2]:  # warm-up: caches, first-query allocations
        memory.search(q, user_id=user, limit=limit, mode=mode)
    latencies: list[float] = []
    ids: list[list[str]] = []
    for user, q in queries:
        t0 = time.perf_counter()
        hits = memory.search(q, user_id=user, limit=limit, mode=mode)
        latencies.append((time.perf_counter() - t0) * 1000)
        ids.append([h.record.id for h in hits])
    return latencies, ids


@contextmanager
def _filled(backend: Backend, records: Sequence[MemoryRecord], vectors: np.ndarray, cfg: StoreBenchConfig,
            dimensions: int, workdir: Path, postgres: BenchPostgres | None,
            console: Console) -> Iterator[tuple[BenchStore, float]]:
    """A fresh store of ``backend`` holding ``records``; yields it with the insert seconds, then removes it."""
    directory = Path(tempfile.mkdtemp(prefix=f"{backend}-{len(records)}-", dir=workdir))
    bench = open_bench_store(backend, directory, dimensions, qdrant_location=cfg.qdrant_location, postgres=postgres)
    try:
        with _progress(console) as bar:
            task = bar.add_task(f"{backend}: inserting {len(records):,}", total=len(records))
            started = time.perf_counter()
            for start in range(0, len(records), cfg.batch_size):
                bench.store.upsert(records[start : start + cfg.batch_size], vectors[start : start + cfg.batch_size])
                bar.update(task, advance=min(cfg.batch_size, len(records) - start))
            bench.loaded()
            insert_s = time.perf_counter() - started
        yield bench, insert_s
    finally:
        bench.close()
        shutil.rmtree(directory, ignore_errors=True)


def bench_backend(backend: Backend, records: Sequence[MemoryRecord], vectors: np.ndarray, embedder: Embedder,
                  queries: Sequence[tuple[str, str]], cfg: StoreBenchConfig, workdir: Path, console: Console,
                  postgres: BenchPostgres | None = None) -> tuple[BackendRow, list[list[str]], HnswResult | None]:
    """Fill one fresh store with ``records``, time inserts and searches; returns the row, the hybrid hit ids and
    (pgvector with ``hnsw_recall``) the HNSW measurement."""
    rss_before = _settled_rss_mb()
    hnsw: HnswResult | None = None
    with _filled(backend, records, vectors, cfg, embedder.dimensions, workdir, postgres, console) as (bench,
                                                                                                    insert_s):
        memory = Memory(bench.directory / "home", embedder=embedder, store=bench.store)
        with console.status(f"{backend} @ {len(records):,}: {len(queries)} hybrid + {len(queries)} dense searches"):
            hybrid, ids = _timed_searches(memory, queries, cfg.limit, "hybrid")
            dense, _ = _timed_searches(memory, queries, cfg.limit, "dense")
            memory.embedder = _PrecomputedQueries(embedder, sorted({q for _, q in queries}))
            store_only, same_ids = _timed_searches(memory, queries, cfg.limit, "hybrid")
            memory.embedder = embedder
        rss, server, disk = _rss_mb() - rss_before, bench.server_mb(), bench.disk_bytes()
        roundtrips = bench.roundtrips_ms()
        if same_ids != ids:
            raise BenchmarkError("hybrid results changed when query vectors were precomputed", backend=backend)
        if backend == "pgvector" and cfg.hnsw_recall:
            with console.status(f"pgvector @ {len(records):,}: building HNSW, measuring per-user recall"):
                vectors_q = embedder.embed([q for _, q in queries])
                hnsw = measure_hnsw_recall(bench, [(u, v) for (u, _), v in zip(queries, vectors_q, strict=True)],
                                           size=len(records), users=cfg.users, limit=cfg.limit, efs=cfg.hnsw_ef)
        memory.close()  # closes the store too (closing it again in _filled is a no-op)
    row = BackendRow(backend=backend, location=bench.location, size=len(records), users=cfg.users,
                     insert_per_s=len(records) / insert_s, insert_seconds=insert_s, queries=len(queries),
                     hybrid_p50_ms=_pct(hybrid, 50), hybrid_p95_ms=_pct(hybrid, 95), hybrid_p99_ms=_pct(hybrid, 99),
                     store_p50_ms=_pct(store_only, 50), store_p95_ms=_pct(store_only, 95), dense_p50_ms=_pct(dense, 50),
                     dense_p95_ms=_pct(dense, 95), rss_mb=rss, server_mb=server,
                     disk_mb=None if disk is None else disk / 2**20,
                     roundtrip_p50_ms=_pct(roundtrips, 50) if roundtrips else None,
                     roundtrip_p95_ms=_pct(roundtrips, 95) if roundtrips else None)
    return row, ids, hnsw


def _agreement(reference: Sequence[Sequence[str]], other: Sequence[Sequence[str]]) -> float:
    scores = [len(set(a) & set(b)) / len(a) for a, b in zip(reference, other) if a]
    return float(np.mean(scores)) if scores else float("nan")


def run_store_bench(cfg: StoreBenchConfig, console: Console | None = None) -> StoreBenchReport:
    """Run the benchmark, print the table, write ``<out>/bench-store.md``, ``.json`` and ``.png``; return it."""
    from .store_report import hnsw_table, notes, rich_table, tenant_table, to_markdown, write_plot

    out = console or Console()
    started_at, started = utcnow(), time.perf_counter()
    load_before = os.getloadavg()[0]
    embedder = get_embedder(cfg.embedder)
    biggest = max(cfg.sizes)
    items = synthetic.corpus(biggest, cfg.users, cfg.seed)
    texts = [m.text for m in items]
    vectors, cached, embedded, embed_s = corpus_vectors(texts, embedder, cfg.cache_dir, cfg.seed, out)
    queries = synthetic.queries(cfg.queries, cfg.users, seed=cfg.seed + 1)
    sample = texts[: min(cfg.embed_sample, len(texts))]
    rate, q50, q95 = measure_embedding(embedder, sample, [q for _, q in queries[:50]])
    embedding = EmbeddingResult(embedder=embedder.name, dimensions=embedder.dimensions, sample=len(sample),
                                texts_per_s=rate, query_p50_ms=q50, query_p95_ms=q95, corpus_rows=len(texts),
                                corpus_cached_rows=cached, corpus_embedded_rows=embedded,
                                corpus_embed_seconds=embed_s)
    records = [MemoryRecord(user_id=m.user_id, text=m.text, kind="fact", categories=m.categories,
                            observed_at=m.observed_at) for m in items]
    del items, texts
    rows: list[BackendRow] = []
    hnsw_results: list[HnswResult] = []
    cfg.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="remem-bench-store-"))
    try:
        with ExitStack() as stack:
            postgres = stack.enter_context(bench_postgres(workdir)) if "pgvector" in cfg.backends else None
            for size in sorted(cfg.sizes):
                reference: list[list[str]] | None = None
                for backend in cfg.backends:
                    n_queries = min(cfg.slow_queries, cfg.queries) if backend == "qdrant" else cfg.queries
                    row, ids, hnsw = bench_backend(backend, records[:size], vectors[:size], embedder,
                                                   queries[:n_queries], cfg, workdir, out, postgres)
                    if backend == "edge":
                        reference = ids
                    elif reference is not None:
                        row.agreement = _agreement(reference[: len(ids)], ids)
                    rows.append(row)
                    if hnsw is not None:
                        hnsw_results.append(hnsw)
                    out.print(f"[dim]{backend} @ {size:,}: insert {row.insert_per_s:,.0f}/s, hybrid p95 "
                              f"{row.hybrid_p95_ms:.1f} ms[/]", highlight=False)
                    partial = {"rows": [r.model_dump(mode="json") for r in rows],
                               "hnsw": [h.model_dump(mode="json") for h in hnsw_results]}
                    (cfg.out / "bench-store.partial.json").write_text(json.dumps(partial, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    targets = [Target(backend=r.backend, size=r.size, goal_p95_ms=TARGETS_P95_MS[r.backend],
                      hybrid_p95_ms=r.hybrid_p95_ms, met=r.hybrid_p95_ms <= TARGETS_P95_MS[r.backend])
               for r in rows if r.size == biggest and r.backend in TARGETS_P95_MS]
    report = StoreBenchReport(
        config=cfg, embedding=embedding, rows=rows, hnsw=hnsw_results, targets=targets, started_at=started_at,
        seconds=time.perf_counter() - started,
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end",
    )
    out.print(rich_table(report), width=max(out.width, 120), crop=False)  # never squeeze the numbers
    if report.hnsw:
        out.print(hnsw_table(report), width=max(out.width, 140), crop=False)
        out.print(tenant_table(report), width=max(out.width, 100), crop=False)
    out.print(notes(report))
    (cfg.out / "bench-store.md").write_text(to_markdown(report), encoding="utf-8")
    (cfg.out / "bench-store.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
    (cfg.out / "bench-store.partial.json").unlink(missing_ok=True)  # what a long run had written so far
    written = [cfg.out / "bench-store.md", cfg.out / "bench-store.json"]
    if len(cfg.sizes) > 1:
        written.append(write_plot(report, cfg.out / "bench-store.png"))
    out.print(f"[dim]written: {', '.join(str(p) for p in written)}[/]")
    return report
