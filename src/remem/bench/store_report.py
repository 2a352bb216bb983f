"""Presentation of a ``remem bench store`` run: the rich table, the notes, markdown and the latency plot."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.table import Table

from .store import BackendRow, StoreBenchReport

COLUMNS = ["backend", "memories", "users", "insert/s", "hybrid p50", "hybrid p95", "hybrid p99", "no-embed p95",
           "dense p50", "dense p95", "RSS MB", "disk MB", "queries", "agree"]
HNSW_COLUMNS = ["memories", "users", "build s", "index MB", "ef_search", "planner uses HNSW", "planner recall",
                "HNSW-then-filter recall", "rows returned", "HNSW p50 ms", "exact p50 ms", "unfiltered recall"]


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _cells(row: BackendRow) -> list[str]:
    agreement = "-" if row.agreement is None else f"{row.agreement:.2f}"
    rss = _mb(row.rss_mb) + ("" if row.server_mb is None else f" + {row.server_mb:,.0f}")
    return [row.backend, f"{row.size:,}", f"{row.users:,}", f"{row.insert_per_s:,.0f}",
            f"{row.hybrid_p50_ms:.2f}", f"{row.hybrid_p95_ms:.2f}", f"{row.hybrid_p99_ms:.2f}",
            f"{row.store_p95_ms:.2f}", f"{row.dense_p50_ms:.2f}", f"{row.dense_p95_ms:.2f}", rss,
            _mb(row.disk_mb), str(row.queries), agreement]


def _hnsw_rows(report: StoreBenchReport) -> list[list[str]]:
    out = []
    for h in report.hnsw:
        for p in h.points:
            out.append([f"{h.size:,}", f"{h.users:,}", f"{h.build_seconds:,.0f}", f"{h.index_mb:,.0f}",
                        str(p.ef_search), "yes" if p.planner_uses_index else "no", f"{p.planner_recall:.3f}",
                        f"{p.recall:.3f}", f"{p.returned:.1f}", f"{p.p50_ms:.2f}", f"{h.exact_p50_ms:.2f}",
                        f"{p.unfiltered_recall:.3f}"])
    return out


TENANT_COLUMNS = ["memories", "tenant share", "tenant rows", "ef_search", "planner uses HNSW", "recall@k"]


def _tenant_rows(report: StoreBenchReport) -> list[list[str]]:
    return [[f"{h.size:,}", f"{t.share:.0%}", f"{t.rows:,}", str(t.ef_search), "yes" if t.planner_uses_index else "no",
             f"{t.recall:.3f}"] for h in report.hnsw for t in h.tenants]


def notes(report: StoreBenchReport) -> str:
    e, cfg = report.embedding, report.config
    cache = (f"corpus vectors: {e.corpus_cached_rows:,} from cache, {e.corpus_embedded_rows:,} embedded now"
             + (f" ({e.corpus_embedded_rows / e.corpus_embed_seconds:,.0f} texts/s)" if e.corpus_embedded_rows else ""))
    where = sorted({f"{r.backend} = {r.location}" for r in report.rows})
    lines = [
        f"backends: {'; '.join(where)}; insert/s = records/s of store.upsert with precomputed vectors "
        + f"(batches of {cfg.batch_size}); latencies in ms.",
        f"embedding ({e.embedder}, {e.dimensions}-d): {e.texts_per_s:,.0f} texts/s in batches of 256 "
        + f"({e.sample:,} texts); one query: p50 {e.query_p50_ms:.2f} ms, p95 {e.query_p95_ms:.2f} ms; {cache}",
        "search latency = Memory.search for one user (tenant filter), query embedding included, "
        + f"top {cfg.limit}; hybrid = dense + BM25 fused (RRF), dense = dense only; no-embed = hybrid "
        + "with the query vector computed beforehand (the store + fusion share).",
        "RSS MB = growth of the benchmark process's resident memory while the store was open (+ the local Postgres "
        + "server's processes, proportional set size); disk MB = store files (edge), tables + indexes (pgvector, "
        + "WAL not counted).",
        f"qdrant local mode filters in Python: it runs {cfg.slow_queries} queries; agree = mean top-{cfg.limit} "
        + "overlap of a backend's hybrid hits with edge's (pgvector: BM25 IDF per user, dense identical).",
    ]
    trips = [r for r in report.rows if r.roundtrip_p50_ms is not None]
    if trips:
        lines.append("one bare round trip to Postgres (SELECT 1) in the same run: " + "; ".join(
            f"{r.size:,}: p50 {r.roundtrip_p50_ms:.2f} ms, p95 {r.roundtrip_p95_ms:.2f} ms" for r in trips)
            + " — a pgvector search makes 3 (dense, BM25, feedback BM25), each also waiting for the server process "
            + "to be scheduled.")
    for t in report.targets:
        mark = "✓ met" if t.met else "✗ missed"
        lines.append(f"goal: {t.backend} filtered hybrid search p95 ≤ {t.goal_p95_ms:g} ms at {t.size:,} memories "
                     f"(query embedding incl.): {t.hybrid_p95_ms:.2f} ms, {mark}")
    lines.append(f"machine: {report.machine}; total {report.seconds:.0f} s")
    return "\n".join(lines)


def rich_table(report: StoreBenchReport) -> Table:
    table = Table(title="remem bench store (latency in ms, query embedding included)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col == "backend" else "right", min_width=len(col))
    for row in report.rows:
        table.add_row(*_cells(row))
    return table


def hnsw_table(report: StoreBenchReport) -> Table:
    table = Table(title="pgvector: HNSW index and per-user search (recall of the top-k vs the exact per-user scan)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in HNSW_COLUMNS:
        table.add_column(col, justify="right")
    for cells in _hnsw_rows(report):
        table.add_row(*cells)
    return table


def tenant_table(report: StoreBenchReport) -> Table:
    table = Table(title="pgvector: one big tenant, the per-user query as Postgres plans it with the HNSW index",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in TENANT_COLUMNS:
        table.add_column(col, justify="right")
    for cells in _tenant_rows(report):
        table.add_row(*cells)
    return table


def to_markdown(report: StoreBenchReport) -> str:
    lines = [f"# remem bench store — {report.started_at:%Y-%m-%d %H:%M} UTC", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in report.rows]
    lines += [""] + [f"- {line}" for line in notes(report).splitlines()] + [""]
    if report.hnsw:
        lines += ["## pgvector: HNSW index and per-user search", "",
                  "| " + " | ".join(HNSW_COLUMNS) + " |", "|" + "|".join("---" for _ in HNSW_COLUMNS) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in _hnsw_rows(report)] + [""]
        lines += ["### One big tenant (a random share of the rows), the per-user query as Postgres plans it", "",
                  "| " + " | ".join(TENANT_COLUMNS) + " |", "|" + "|".join("---" for _ in TENANT_COLUMNS) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in _tenant_rows(report)] + [""]
    return "\n".join(lines)


def write_plot(report: StoreBenchReport, path: Path) -> Path:
    """Hybrid search latency (p50, p95, p99; query embedding included) against the number of memories, one
    line per backend and percentile, log-log, with each backend's goal as a dotted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {"edge": "tab:blue", "qdrant": "tab:gray", "pgvector": "tab:orange"}
    styles = {"p50": ":", "p95": "-", "p99": "--"}
    for backend in dict.fromkeys(r.backend for r in report.rows):
        rows = sorted((r for r in report.rows if r.backend == backend), key=lambda r: r.size)
        sizes = [r.size for r in rows]
        for pct, style in styles.items():
            values = [getattr(r, f"hybrid_{pct}_ms") for r in rows]
            ax.plot(sizes, values, style, marker="o", color=colors.get(backend), label=f"{backend} {pct}")
    for t in {(t.backend, t.goal_p95_ms) for t in report.targets}:
        ax.axhline(t[1], color=colors.get(t[0]), linewidth=0.8, alpha=0.5, linestyle="-.")
        ax.annotate(f"{t[0]} goal: p95 ≤ {t[1]:g} ms", (max(r.size for r in report.rows), t[1]), fontsize=8,
                    color=colors.get(t[0]), va="bottom", ha="right")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"memories (over {report.config.users:,} users)")
    ax.set_ylabel("filtered hybrid search latency, ms (query embedding included)")
    ax.set_title("remem bench store: search latency vs store size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
