"""``remem bench store``: insert throughput and filtered search latency of the two store backends, side by side.

For each size (default 10k and 100k memories over 1,000 users) and each backend — ``edge`` (embedded Qdrant,
the default) and ``qdrant`` (qdrant-client local mode, the baseline in the same run) — it measures:

- **insert**: records/s of ``store.upsert`` with precomputed vectors, in batches (BM25 sparse vectors and
  payloads are built inside, as in production). Embedding throughput is reported separately.
- **search**: per-query latency of ``Memory.search`` for one user (the tenant filter), ``hybrid`` (the default
  path: dense + BM25 fused) and ``dense`` only, **query embedding included** with the configured embedder.
- **agreement**: mean top-k overlap of the qdrant backend's hybrid hits with edge's for the same queries (the
  backends share a contract, so this should be 1.00).

Corpus vectors are cached in ``<cache_dir>/corpus-v<gen>-seed<seed>-<embedder>.npy`` (the corpus is
prefix-stable, so one 100k cache serves every smaller size). qdrant local mode filters in Python and is slow at
100k (~seconds per query), so it runs ``slow_queries`` queries instead of ``queries``; the table says how many.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..embedders import Embedder, get_embedder
from ..errors import RememError
from ..memory.core import Memory, SearchMode
from ..models import MemoryRecord, utcnow
from ..stores import VectorStore
from . import synthetic

Backend = Literal["edge", "qdrant"]
TARGET_P95_MS = 10.0


class BenchmarkError(RememError):
    """A benchmark run produced inconsistent results."""

    code = "benchmark_error"


class StoreBenchConfig(BaseModel):
    sizes: list[int] = Field(default_factory=lambda: [10_000, 100_000])
    users: int = 1000
    queries: int = 200
    slow_queries: int = 20
    backends: list[Backend] = Field(default_factory=lambda: list[Backend](["edge", "qdrant"]))
    embedder: str = "local"
    out: Path = Path("results")
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "remem-bench")
    qdrant_location: Literal["memory", "path"] = "memory"
    limit: int = 10
    batch_size: int = 256
    embed_sample: int = 2000
    seed: int = 0


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
    store_p50_ms: float = Field(description="hybrid search with the query vector precomputed (no embedding)")
    store_p95_ms: float
    dense_p50_ms: float
    dense_p95_ms: float
    agreement: float | None = None


class StoreBenchReport(BaseModel):
    config: StoreBenchConfig
    embedding: EmbeddingResult
    rows: list[BackendRow]
    started_at: datetime
    seconds: float
    machine: str
    target: str
    target_ok: bool | None


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def corpus_vectors(texts: Sequence[str], embedder: Embedder, cache_dir: Path, seed: int,
                   console: Console) -> tuple[np.ndarray, int, int, float]:
    """Vectors for ``texts`` (the synthetic corpus prefix), from the cache where possible.

    Returns (vectors, rows from cache, rows embedded now, seconds spent embedding).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", embedder.name)
    path = cache_dir / f"corpus-v{synthetic.GENERATOR_VERSION}-seed{seed}-{tag}.npy"
    cached = np.load(path) if path.exists() else np.zeros((0, embedder.dimensions), dtype=np.float32)
    if cached.ndim != 2 or cached.shape[1] != embedder.dimensions:
        cached = np.zeros((0, embedder.dimensions), dtype=np.float32)
    n = len(texts)
    have = min(len(cached), n)
    if have == n:
        return cached[:n], n, 0, 0.0
    parts = [cached[:have]]
    started = time.perf_counter()
    with _progress(console) as bar:
        task = bar.add_task(f"embedding corpus ({embedder.name}, cached to {path.name})", total=n - have)
        for start in range(have, n, 512):
            parts.append(embedder.embed(list(texts[start : start + 512])))
            bar.update(task, advance=len(parts[-1]))
    seconds = time.perf_counter() - started
    vectors = np.concatenate(parts).astype(np.float32)
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


def _open_store(backend: Backend, directory: Path, dimensions: int, qdrant_location: str) -> tuple[VectorStore, str]:
    if backend == "edge":
        from ..stores.edge import EdgeStore

        return EdgeStore(directory / "edge", dimensions), "embedded, on disk"
    from ..stores.qdrant import QdrantStore

    # Local mode warns above 20k points: that slowness is what this baseline measures.
    warnings.filterwarnings("ignore", message="Local mode is not recommended", category=UserWarning)
    if qdrant_location == "memory":
        return QdrantStore(":memory:", dimensions, collection="bench"), "local mode, :memory:"
    return QdrantStore(str(directory / "qdrant"), dimensions, collection="bench"), "local mode, on disk"


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


def bench_backend(backend: Backend, records: Sequence[MemoryRecord], vectors: np.ndarray, embedder: Embedder,
                  queries: Sequence[tuple[str, str]], cfg: StoreBenchConfig, workdir: Path,
                  console: Console) -> tuple[BackendRow, list[list[str]]]:
    """Fill one fresh store with ``records`` and time inserts and searches; returns the row and hit ids."""
    directory = Path(tempfile.mkdtemp(prefix=f"{backend}-{len(records)}-", dir=workdir))
    store, location = _open_store(backend, directory, embedder.dimensions, cfg.qdrant_location)
    try:
        with _progress(console) as bar:
            task = bar.add_task(f"{backend}: inserting {len(records):,}", total=len(records))
            started = time.perf_counter()
            for start in range(0, len(records), cfg.batch_size):
                store.upsert(records[start : start + cfg.batch_size], vectors[start : start + cfg.batch_size])
                bar.update(task, advance=min(cfg.batch_size, len(records) - start))
            insert_s = time.perf_counter() - started
        memory = Memory(directory / "home", embedder=embedder, store=store)
        with console.status(f"{backend} @ {len(records):,}: {len(queries)} hybrid + {len(queries)} dense searches"):
            hybrid, ids = _timed_searches(memory, queries, cfg.limit, "hybrid")
            dense, _ = _timed_searches(memory, queries, cfg.limit, "dense")
            memory.embedder = _PrecomputedQueries(embedder, sorted({q for _, q in queries}))
            store_only, same_ids = _timed_searches(memory, queries, cfg.limit, "hybrid")
            memory.embedder = embedder
        memory.close()
        if same_ids != ids:
            raise BenchmarkError("hybrid results changed when query vectors were precomputed", backend=backend)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    row = BackendRow(backend=backend, location=location, size=len(records), users=cfg.users,
                     insert_per_s=len(records) / insert_s, insert_seconds=insert_s, queries=len(queries),
                     hybrid_p50_ms=_pct(hybrid, 50), hybrid_p95_ms=_pct(hybrid, 95),
                     store_p50_ms=_pct(store_only, 50), store_p95_ms=_pct(store_only, 95), dense_p50_ms=_pct(dense, 50),
                     dense_p95_ms=_pct(dense, 95))
    return row, ids


def _agreement(reference: Sequence[Sequence[str]], other: Sequence[Sequence[str]]) -> float:
    scores = [len(set(a) & set(b)) / len(a) for a, b in zip(reference, other) if a]
    return float(np.mean(scores)) if scores else float("nan")


def run_store_bench(cfg: StoreBenchConfig, console: Console | None = None) -> StoreBenchReport:
    """Run the benchmark, print the table, write ``<out>/bench-store.md`` and ``.json``; return the report."""
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
    rows: list[BackendRow] = []
    cfg.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="remem-bench-store-"))
    try:
        for size in sorted(cfg.sizes):
            reference: list[list[str]] | None = None
            for backend in cfg.backends:
                n_queries = cfg.queries if backend == "edge" else min(cfg.slow_queries, cfg.queries)
                row, ids = bench_backend(backend, records[:size], vectors[:size], embedder, queries[:n_queries],
                                         cfg, workdir, out)
                if backend == "edge":
                    reference = ids
                elif reference is not None:
                    row.agreement = _agreement(reference[: len(ids)], ids)
                rows.append(row)
                out.print(f"[dim]{backend} @ {size:,}: insert {row.insert_per_s:,.0f}/s, hybrid p95 "
                          f"{row.hybrid_p95_ms:.1f} ms[/]", highlight=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    edge_big = [r for r in rows if r.backend == "edge" and r.size == biggest]
    target = f"edge filtered hybrid search p95 < {TARGET_P95_MS:g} ms at {biggest:,} memories (query embedding incl.)"
    report = StoreBenchReport(
        config=cfg, embedding=embedding, rows=rows, started_at=started_at, seconds=time.perf_counter() - started,
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end",
        target=target, target_ok=edge_big[0].hybrid_p95_ms < TARGET_P95_MS if edge_big else None,
    )
    out.print(rich_table(report), width=max(out.width, 100), crop=False)  # never squeeze the numbers
    out.print(notes(report))
    (cfg.out / "bench-store.md").write_text(to_markdown(report), encoding="utf-8")
    (cfg.out / "bench-store.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
    out.print(f"[dim]written: {cfg.out / 'bench-store.md'}, {cfg.out / 'bench-store.json'}[/]")
    return report


# -- presentation --------------------------------------------------------------------------------------------
COLUMNS = ["backend", "memories", "users", "insert/s", "hybrid p50", "hybrid p95", "no-embed p95", "dense p50",
           "dense p95", "queries", "agree"]


def _cells(row: BackendRow) -> list[str]:
    agreement = "-" if row.agreement is None else f"{row.agreement:.2f}"
    return [row.backend, f"{row.size:,}", f"{row.users:,}", f"{row.insert_per_s:,.0f}",
            f"{row.hybrid_p50_ms:.2f}", f"{row.hybrid_p95_ms:.2f}", f"{row.store_p95_ms:.2f}",
            f"{row.dense_p50_ms:.2f}", f"{row.dense_p95_ms:.2f}", str(row.queries), agreement]


def notes(report: StoreBenchReport) -> str:
    e = report.embedding
    mark = {True: "✓ met", False: "✗ missed", None: "not measured"}[report.target_ok]
    cache = (f"corpus vectors: {e.corpus_cached_rows:,} from cache, {e.corpus_embedded_rows:,} embedded now"
             + (f" ({e.corpus_embedded_rows / e.corpus_embed_seconds:,.0f} texts/s)" if e.corpus_embedded_rows else ""))
    where = sorted({f"{r.backend} = {r.location}" for r in report.rows})
    lines = [
        f"backends: {'; '.join(where)}; insert/s = records/s of store.upsert with precomputed vectors "
        + f"(batches of {report.config.batch_size}); latencies in ms.",
        f"embedding ({e.embedder}, {e.dimensions}-d): {e.texts_per_s:,.0f} texts/s in batches of 256 "
        + f"({e.sample:,} texts); one query: p50 {e.query_p50_ms:.2f} ms, p95 {e.query_p95_ms:.2f} ms; {cache}",
        "search latency = Memory.search for one user (tenant filter), query embedding included, "
        + f"top {report.config.limit}; hybrid = dense + BM25 fused (RRF), dense = dense only; no-embed = hybrid "
        + "with the query vector computed beforehand (the store + fusion share).",
        f"qdrant local mode filters in Python: it runs {report.config.slow_queries} queries (edge: "
        + f"{report.config.queries}); agree = mean top-{report.config.limit} overlap of its hybrid hits with edge's.",
        f"target: {report.target}: {mark}",
        f"machine: {report.machine}; total {report.seconds:.0f} s",
    ]
    return "\n".join(lines)


def rich_table(report: StoreBenchReport) -> Table:
    table = Table(title="remem bench store (latency in ms, query embedding included)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col == "backend" else "right", min_width=len(col))
    for row in report.rows:
        table.add_row(*_cells(row))
    return table


def to_markdown(report: StoreBenchReport) -> str:
    lines = [f"# remem bench store — {report.started_at:%Y-%m-%d %H:%M} UTC", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in report.rows]
    lines += [""] + [f"- {line}" for line in notes(report).splitlines()] + [""]
    return "\n".join(lines)


