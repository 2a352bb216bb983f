"""``remem bench store``: edge vs qdrant local mode vs pgvector — insert throughput, filtered search latency,
memory and disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..bench.store import StoreBenchConfig, run_store_bench
from ..bench.store_backends import BACKENDS
from ..errors import ValidationError
from .app import console
from .bench import bench_app


def _ints(value: str, option: str) -> list[int]:
    try:
        out = [int(v.replace("_", "")) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ValidationError(f"{option}: expected comma-separated integers, got {value!r}") from None
    if not out or any(v <= 0 for v in out):
        raise ValidationError(f"{option}: expected positive integers, got {value!r}")
    return out


@bench_app.command("store")
def store(
    sizes: Annotated[str, typer.Option("--sizes", help="Memory counts, comma-separated.")] = "10000,100000",
    users: Annotated[int, typer.Option("--users", help="Users the memories are spread over.")] = 1000,
    queries: Annotated[int, typer.Option("--queries", help="Timed searches per size (edge).")] = 200,
    slow_queries: Annotated[int, typer.Option("--slow-queries",
                                              help="Timed searches for qdrant local mode (slow).")] = 20,
    backends: Annotated[str, typer.Option("--backends", help="Comma-separated: edge, qdrant, pgvector (Postgres: "
                                          "REMEM_DATABASE_URL, else a local pgserver)."),
                        ] = "edge,qdrant,pgvector",
    embedder: Annotated[str, typer.Option("--embedder", help="Embedder spec for corpus and queries.")] = "local",
    out: Annotated[Path, typer.Option("--out", help="Directory for bench-store.md/.json.")] = Path("results"),
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Where corpus vectors are cached "
                                                   "(default ~/.cache/remem-bench).")] = None,
    qdrant_on_disk: Annotated[bool, typer.Option("--qdrant-on-disk",
                                                 help="qdrant local mode on a path instead of :memory:.")] = False,
    hnsw_recall: Annotated[bool, typer.Option("--hnsw-recall", help="pgvector: also build an HNSW index at each "
                                              "size and measure per-user recall through it (slow at 1M).")] = False,
) -> None:
    """Insert throughput, filtered search latency (p50/p95/p99), RSS and disk of the store backends, in one run."""
    names = [b.strip() for b in backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown or not names:
        raise ValidationError(f"--backends: unknown backend(s) {unknown} (use {', '.join(BACKENDS)})")
    if users <= 0 or queries <= 0 or slow_queries <= 0:
        raise ValidationError("--users, --queries and --slow-queries must be positive")
    cfg = StoreBenchConfig.model_validate({
        "sizes": _ints(sizes, "--sizes"), "users": users, "queries": queries, "slow_queries": slow_queries,
        "backends": names, "embedder": embedder, "out": out,
        "qdrant_location": "path" if qdrant_on_disk else "memory", "hnsw_recall": hnsw_recall,
        **({"cache_dir": cache_dir} if cache_dir is not None else {}),
    })
    run_store_bench(cfg, console)
