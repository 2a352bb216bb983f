"""``remem bench store`` on a tiny corpus: every backend in one table, sane numbers, congruent results."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from remem.bench import synthetic
from remem.bench.store import StoreBenchConfig, run_store_bench
from remem.cli import main


def test_corpus_is_prefix_stable_and_varied() -> None:
    small, big = synthetic.corpus(50, 10), synthetic.corpus(200, 10)
    assert big[:50] == small
    assert len({m.text for m in big}) > 180  # templated, but varied
    assert {m.user_id for m in big} == {f"bench-user-{i:04d}" for i in range(10)}
    assert all(m.categories for m in big)


def test_tiny_run_has_every_backend_and_sane_numbers(tmp_path: Path) -> None:
    cfg = StoreBenchConfig(sizes=[120, 300], users=10, queries=20, slow_queries=5, embedder="fake",
                           out=tmp_path / "results", cache_dir=tmp_path / "cache", embed_sample=100,
                           hnsw_recall=True, hnsw_ef=[40])
    report = run_store_bench(cfg, Console(file=io.StringIO(), width=160))
    assert [(r.backend, r.size) for r in report.rows] == [("edge", 120), ("qdrant", 120), ("pgvector", 120),
                                                          ("edge", 300), ("qdrant", 300), ("pgvector", 300)]
    for row in report.rows:
        assert row.insert_per_s > 0 and row.insert_seconds > 0
        assert 0 < row.hybrid_p50_ms <= row.hybrid_p95_ms <= row.hybrid_p99_ms < 5_000
        assert 0 < row.dense_p50_ms <= row.dense_p95_ms < 5_000
        assert 0 < row.store_p50_ms <= row.store_p95_ms < 5_000
        assert row.queries == (5 if row.backend == "qdrant" else 20)
        if row.backend == "qdrant":
            assert row.agreement == pytest.approx(1.0)  # same contract, same results
            assert row.disk_mb is None  # :memory:
        else:
            assert row.disk_mb is not None and row.disk_mb > 0
        if row.backend == "pgvector":
            assert row.agreement is not None and 0.5 < row.agreement <= 1.0  # BM25 IDF per user, dense identical
            assert row.server_mb is not None and row.server_mb > 0  # the local server's processes
            assert row.location.startswith("Postgres 16, local server")
            assert row.roundtrip_p50_ms is not None and 0 < row.roundtrip_p50_ms <= (row.roundtrip_p95_ms or 0)
        else:
            assert row.roundtrip_p50_ms is None
    assert report.embedding.corpus_embedded_rows == 300 and report.embedding.texts_per_s > 0
    assert [(t.backend, t.size, t.goal_p95_ms) for t in report.targets] == [("edge", 300, 10.0),
                                                                            ("pgvector", 300, 25.0)]
    assert [(h.size, [p.ef_search for p in h.points]) for h in report.hnsw] == [(120, [40]), (300, [40])]
    for h in report.hnsw:
        assert h.build_seconds > 0 and h.queries == 20
        assert all(0 <= p.recall <= 1 and 0 <= p.planner_recall <= 1 and p.returned <= 10 for p in h.points)
        assert [(t.share, t.rows, t.ef_search) for t in h.tenants] == [(0.01, 10, 40), (0.05, 15 if h.size == 300
                                                                                    else 10, 40)]
        assert all(0 <= t.recall <= 1 for t in h.tenants)
    markdown = (cfg.out / "bench-store.md").read_text()
    assert "| edge | 300 |" in markdown and "| qdrant | 300 |" in markdown and "| pgvector | 300 |" in markdown
    assert "HNSW index and per-user search" in markdown and "One big tenant" in markdown
    assert json.loads((cfg.out / "bench-store.json").read_text())["rows"][0]["backend"] == "edge"
    assert (cfg.out / "bench-store.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run_store_bench(cfg.model_copy(update={"sizes": [120], "backends": ["edge"], "hnsw_recall": False}),
                            Console(file=io.StringIO()))
    assert again.embedding.corpus_cached_rows == 120 and again.embedding.corpus_embedded_rows == 0


def test_bench_store_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "store", "--sizes", "100", "--users", "5", "--queries", "5", "--slow-queries", "3",
              "--embedder", "fake", "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert "remem bench store" in out and "edge" in out and "qdrant" in out and "pgvec" in out
    assert "hybrid p95" in out
    assert (tmp_path / "r" / "bench-store.md").exists()


def test_bench_store_rejects_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "store", "--sizes", "10k"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sizes") and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "store", "--backends", "edge,milvus"])
    assert exc.value.code == 2 and "milvus" in capsys.readouterr().err
