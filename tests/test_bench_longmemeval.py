"""`remem bench longmemeval` on a tiny synthetic file in the LongMemEval format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from remem.bench.dataset import session_of
from remem.bench.longmemeval import load_longmemeval, parse_lme_date
from remem.bench.runner import run_retrieval
from remem.cli import app


def lme_items() -> list[dict[str, Any]]:
    """Two LongMemEval-format questions (one ``_abs``) over a two-session haystack."""
    data: list[dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "lme_tiny.json").read_text())
    return data


def test_loader_ids_dates_and_evidence(tmp_path: Path) -> None:
    path = tmp_path / "lme.json"
    path.write_text(json.dumps(lme_items()))
    convs = load_longmemeval(path)
    assert [c.id for c in convs] == ["lme-q1", "lme-q2_abs"]
    q = convs[0].questions[0]
    assert q.evidence == ["ans_1#0"] and q.answer_sessions == ["ans_1"] and session_of("ans_1#0") == "ans_1"
    assert q.reference_time is not None and q.reference_time.day == 30
    assert convs[0].turns[2].observed_at == parse_lme_date("2023/05/20 (Sat) 18:30")
    assert convs[0].turns[1].memory_text().startswith("assistant: ")


def test_run_reports_session_and_turn_recall_and_skips_abstention(tmp_path: Path) -> None:
    path = tmp_path / "lme.json"
    path.write_text(json.dumps(lme_items()))
    run = run_retrieval("longmemeval", load_longmemeval(path), embedder="fake", home=tmp_path)
    assert run.config["questions"] == 1  # q2_abs is skipped
    for name, sr in run.systems.items():
        overall = sr.summary()["metrics"]["overall"]
        if name == "remem-context":  # scored within token budgets only
            assert overall["recall@1000tok"] == 1.0 and overall["session_all@1000tok"] == 1.0
            assert 0 < overall["tokens@500tok"] <= 500
            continue
        assert overall["recall@5"] == 1.0 and overall["session_any@5"] == 1.0, name
        assert overall["session_all@1"] == overall["session_any@1"]
    bm25 = run.systems["bm25-only"].summary()["metrics"]["single-session-user"]
    assert bm25["recall@1"] == 1.0  # only the evidence turn shares a word ("puppy") with the question


def test_cli_longmemeval(tmp_path: Path) -> None:
    path = tmp_path / "lme.json"
    path.write_text(json.dumps(lme_items()))
    out = tmp_path / "res"
    result = CliRunner().invoke(app, ["bench", "longmemeval", "--data", str(path), "--out", str(out),
                                      "--conversations", "q1", "--embedder", "fake", "--ablations"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "longmemeval.json").read_text())
    assert data["systems"]["remem-hybrid+expand"]["metrics"]["overall"]["session_any@10"] == 1.0
    assert {"remem-context", "remem-context rank order (exponent 0)", "remem-context no neighbours"} <= set(
        data["systems"])
    md = (out / "longmemeval.md").read_text()
    assert "session_any@10" in md and "| recall@500 | recall@1000 | recall@2000 | session_all@500 |" in md


def test_a_haystack_with_a_message_over_16000_characters_runs_and_finds_it(tmp_path: Path) -> None:
    """LongMemEval_S holds a 16,787-character turn, which used to abort the whole run: the run completes and the
    evidence sentence buried in the middle of such a turn is found (the turn is stored whole, indexed as chunks)."""
    items = lme_items()
    evidence = items[0]["haystack_sessions"][1][0]
    filler = "I pasted the whole maintenance log of our office printer fleet here, line by line. "
    half = filler * 110
    evidence["content"] = (half + evidence["content"] + " " + half)[:16_787]
    assert len(evidence["content"]) == 16_787 and "golden retriever puppy" in evidence["content"]
    path = tmp_path / "lme.json"
    path.write_text(json.dumps(items))
    run = run_retrieval("longmemeval", load_longmemeval(path), embedder="fake", home=tmp_path)
    for name in ("bm25-only", "remem-bm25", "remem-hybrid+expand"):
        assert run.systems[name].summary()["metrics"]["overall"]["recall@1"] == 1.0, name
    context = run.systems["remem-context"].summary()["metrics"]["overall"]
    assert context["recall@2000tok"] == 1.0 and context["tokens@2000tok"] <= 2000
