"""``remem bench store`` on a tiny corpus: both backends in one table, sane numbers, congruent results."""

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


def test_tiny_run_has_both_backends_and_sane_numbers(tmp_path: Path) -> None:
    cfg = StoreBenchConfig(sizes=[120, 300], users=10, queries=20, slow_queries=5, embedder="fake",
                           out=tmp_path / "results", cache_dir=tmp_path / "cache", embed_sample=100)
    report = run_store_bench(cfg, Console(file=io.StringIO(), width=160))
    assert [(r.backend, r.size) for r in report.rows] == [("edge", 120), ("qdrant", 120), ("edge", 300),
                                                          ("qdrant", 300)]
    for row in report.rows:
        assert row.insert_per_s > 0 and row.insert_seconds > 0
        assert 0 < row.hybrid_p50_ms <= row.hybrid_p95_ms < 5_000
        assert 0 < row.dense_p50_ms <= row.dense_p95_ms < 5_000
        assert 0 < row.store_p50_ms <= row.store_p95_ms < 5_000
        assert row.queries == (20 if row.backend == "edge" else 5)
        if row.backend == "qdrant":
            assert row.agreement == pytest.approx(1.0)  # same contract, same results
    assert report.embedding.corpus_embedded_rows == 300 and report.embedding.texts_per_s > 0
    assert report.target_ok is not None
    markdown = (cfg.out / "bench-store.md").read_text()
    assert "| edge | 300 |" in markdown and "| qdrant | 300 |" in markdown
    assert json.loads((cfg.out / "bench-store.json").read_text())["rows"][0]["backend"] == "edge"
    again = run_store_bench(cfg.model_copy(update={"sizes": [120]}), Console(file=io.StringIO()))
    assert again.embedding.corpus_cached_rows == 120 and again.embedding.corpus_embedded_rows == 0


def test_bench_store_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "store", "--sizes", "100", "--users", "5", "--queries", "5", "--slow-queries", "3",
              "--embedder", "fake", "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert "remem bench store" in out and "edge" in out and "qdrant" in out and "hybrid p95" in out
    assert (tmp_path / "r" / "bench-store.md").exists()


def test_bench_store_rejects_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "store", "--sizes", "10k"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sizes") and "Traceback" not in err
