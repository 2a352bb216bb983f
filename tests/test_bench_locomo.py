"""`remem bench locomo` on a tiny synthetic file in the LoCoMo format (traps included): loader, metrics, run,
report files and the CLI. The full dev run is a benchmark, not a test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from remem.bench.dataset import Question
from remem.bench.locomo import load_locomo, normalize_evidence, parse_session_date
from remem.bench.metrics import (
    BUDGETS,
    QuestionResult,
    aggregate,
    latency_summary,
    score_budget,
    score_question,
)
from remem.bench.report import write_report
from remem.bench.runner import run_retrieval
from remem.cli import app

DATA = Path(__file__).parent / "data" / "locomo_tiny.json"


def locomo_sample() -> list[dict[str, Any]]:
    """A tiny LoCoMo-format file with its traps: malformed evidence ids, an empty dated session, an image
    turn with a BLIP caption, category 5 without an answer."""
    data: list[dict[str, Any]] = json.loads(DATA.read_text())
    return data


@pytest.fixture
def locomo_file(tmp_path: Path) -> Path:
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(locomo_sample()))
    return path


def test_loader_handles_the_format_traps(locomo_file: Path) -> None:
    (conv,) = load_locomo(locomo_file)
    assert [t.id for t in conv.turns] == ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2"]  # session 3: no turns
    image = conv.turns[2]
    assert image.caption and "rainbow flag" in image.memory_text() and image.memory_text().startswith("Caroline: ")
    assert conv.turns[0].observed_at is not None and conv.turns[0].observed_at.day == 8
    cats = [q.category for q in conv.questions]
    assert cats == ["temporal", "single-hop", "single-hop", "multi-hop", "open-domain", "adversarial"]
    assert conv.questions[1].evidence == ["D1:2"] and conv.questions[2].evidence == ["D1:3"]
    assert conv.questions[3].evidence == ["D1:2", "D2:1"]
    assert conv.questions[5].answer is None and conv.questions[5].adversarial_answer == "nothing"


def test_evidence_and_dates_normalisation() -> None:
    assert normalize_evidence(["D8:6; D9:17", "D:11:26", "D30:05", "D8:6", "junk"]) == [
        "D8:6", "D9:17", "D11:26", "D30:5"]
    assert parse_session_date("1:56 pm on 8 May, 2023").isoformat() == "2023-05-08T13:56:00+00:00"  # type: ignore[union-attr]
    assert parse_session_date("not a date") is None


def test_metrics_count_covered_turns_and_tokens() -> None:
    q = Question(id="q", text="?", category="multi-hop", evidence=["a", "b"])
    ranked = [["x", "a", "y"], ["a"], ["b"]]
    tokens = {"a": 2, "b": 3, "x": 1, "y": 1}
    m = score_question(q, ranked, tokens, ks=(1, 2, 3))
    assert (m["recall@1"], m["hit@1"], m["all@1"]) == (0.5, 1.0, 0.0)
    assert m["turns@2"] == 3 and m["tokens@2"] == 4
    assert (m["recall@3"], m["all@3"], m["turns@3"]) == (1.0, 1.0, 4)
    table = aggregate([QuestionResult("q", "multi-hop", m), QuestionResult("r", "temporal", {"recall@1": 0.0})])
    assert table["overall"]["recall@1"] == 0.25 and table["multi-hop"]["n"] == 1
    budget = score_budget(q, ["a", "x"], 480, 500)
    assert budget == {"recall@500tok": 0.5, "hit@500tok": 1.0, "all@500tok": 0.0, "turns@500tok": 2.0,
                      "tokens@500tok": 480.0}
    lat = latency_summary([float(i) for i in range(1, 101)])
    assert (lat["p50"], lat["p95"], lat["p99"]) == (50.0, 95.0, 99.0)


def test_run_scores_every_system_and_writes_reports(locomo_file: Path, tmp_path: Path) -> None:
    convs = load_locomo(locomo_file)
    run = run_retrieval("locomo", convs, embedder="fake", home=tmp_path)
    assert set(run.systems) == {"bm25-only", "dense-only", "remem-bm25", "remem-hybrid", "remem-hybrid+expand",
                                "remem-context"}
    for name, sr in run.systems.items():
        summary = sr.summary()
        overall = summary["metrics"]["overall"]
        assert overall["n"] == 5, name  # category 5 is not scored without an LM
        assert summary["latency_ms"]["p95"] > 0
        if name != "remem-context":
            assert 0.0 <= overall["recall@10"] <= 1.0
        if name != "remem-hybrid+expand":  # scored within every token budget
            for b in BUDGETS:
                assert 0.0 <= overall[f"recall@{b}tok"] <= 1.0 and 0 < overall[f"tokens@{b}tok"] <= b, name
    small = run.systems["remem-context"].summary()["metrics"]["overall"]
    assert small["recall@2000tok"] == 1.0  # 5 short turns fit: every evidence turn is in the context
    assert "recall@10" not in small
    expand = run.systems["remem-hybrid+expand"].summary()["metrics"]["overall"]
    assert expand["recall@20"] == 1.0  # 5 turns: everything is reachable
    assert expand["turns@1"] <= 3.0  # one hit covers at most itself and its two neighbours
    assert run.systems["remem-hybrid"].summary()["metrics"]["overall"]["turns@1"] == 1.0
    assert run.ingest["turns"] == 5 and run.resources["store_mb"] > 0
    paths = write_report(run, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["systems"]["bm25-only"]["metrics"]["temporal"]["n"] == 1
    md = paths["markdown"].read_text()
    assert "| remem-hybrid+expand |" in md and "## Evidence recall within a token budget" in md
    assert "| remem-context | 1.000 | 1.000 | 1.000 |" in md
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("remem-bench-*"))  # the temporary REMEM_HOME is gone


def test_cli_runs_a_slice(locomo_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    result = CliRunner().invoke(app, ["bench", "locomo", "--data", str(locomo_file), "--out", str(out),
                                      "--limit", "2", "--conversations", "conv-x", "--embedder", "fake"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "locomo.json").read_text())
    assert data["config"]["questions"] == 2
    assert "bm25-only" in result.output and (out / "locomo.png").exists()
    bad = CliRunner().invoke(app, ["bench", "locomo", "--data", str(locomo_file), "--conversations", "nope",
                                   "--embedder", "fake", "--out", str(out)])
    assert bad.exit_code != 0


def observed_file(tmp_path: Path) -> Path:
    sample = locomo_sample()
    sample[0]["observation"] = {
        "session_1_observation": {"Caroline": [["Caroline went to a support group on 7 May 2023", "D1:1"],
                                               ["Caroline shared a photo of a rainbow flag mural", ["D1:3", "D:1:02"]],
                                               ["An observation without evidence", ""]]},
        "session_2_observation": {"Melanie": [["Melanie went camping at the beach with her kids", "D2:1; D2:2"]]},
    }
    path = tmp_path / "observed.json"
    path.write_text(json.dumps(sample))
    return path


def test_observations_load_as_dated_facts_with_normalised_evidence(tmp_path: Path) -> None:
    (plain,) = load_locomo(observed_file(tmp_path))
    assert plain.facts == []  # only on request
    (conv,) = load_locomo(observed_file(tmp_path), observations=True)
    assert [(f.source_ids, f.about) for f in conv.facts] == [
        (["D1:1"], "Caroline"), (["D1:3", "D1:2"], "Caroline"), (["D2:1", "D2:2"], "Melanie")]
    assert [f.observed_at.day if f.observed_at else None for f in conv.facts] == [8, 8, 20]
    records = conv.records()
    assert [r.kind for r in records] == ["episode"] * 5 + ["fact"] * 3
    assert records[-1].text == "Melanie went camping at the beach with her kids"
    assert records[-1].metadata == {"about": "Melanie"}


def test_cli_facts_observations_stores_and_labels_them(tmp_path: Path) -> None:
    out = tmp_path / "res"
    result = CliRunner().invoke(app, ["bench", "locomo", "--data", str(observed_file(tmp_path)), "--out", str(out),
                                      "--embedder", "fake", "--facts", "observations"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "locomo-observations.json").read_text())
    assert data["config"]["facts"] == "observations" and data["config"]["fact_records"] == 3
    assert "stand-in for what LLM extraction adds" in (out / "locomo-observations.md").read_text()
    bad = CliRunner().invoke(app, ["bench", "locomo", "--data", str(locomo_file_path(tmp_path)), "--out", str(out),
                                   "--embedder", "fake", "--facts", "summaries"])
    assert bad.exit_code != 0 and "--facts" in str(bad.exception)  # a ValidationError: exit 2 through main()


def locomo_file_path(tmp_path: Path) -> Path:
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(locomo_sample()))
    return path
@pytest.mark.parametrize("store", ["pgvector", "pgvector:fts"])
def test_run_on_pgvector_with_the_keyword_signal_alone(locomo_file: Path, tmp_path: Path, store: str,
                                                       postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--store pgvector`` runs on a fresh database of REMEM_DATABASE_URL (dropped afterwards); ``keyword_only``
    adds the store's keyword signal alone, which finds the evidence turn of a single-hop question."""
    monkeypatch.setenv("REMEM_DATABASE_URL", postgres_server)
    run = run_retrieval("locomo", load_locomo(locomo_file), embedder="fake", home=tmp_path, store=store,
                        keyword_only=True)
    assert list(run.systems)[:6] == ["bm25-only", "dense-only", "remem-keyword", "remem-bm25", "remem-hybrid",
                                     "remem-hybrid+expand"]
    assert run.config["store"] == store and run.resources["store_mb"] > 0
    for name, sr in run.systems.items():
        assert sr.summary()["metrics"]["overall"]["n"] == 5, name
    assert run.systems["remem-hybrid+expand"].summary()["metrics"]["overall"]["recall@20"] == 1.0
    import psycopg

    with psycopg.connect(postgres_server) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'remem_bench_%'").fetchone()
    assert left == (0,)
