"""`remem bench pipeline --replay locomo-observations` on a tiny file in the LoCoMo format: the data mapping,
the scripted policy, before vs after, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from remem.bench.floor import load_observations
from remem.bench.locomo import load_locomo
from remem.bench.pipeline_replay import build_adds, run_replay
from remem.cli import app


def sample() -> list[dict[str, Any]]:
    def turn(dia: str, speaker: str, text: str) -> dict[str, str]:
        return {"speaker": speaker, "dia_id": dia, "text": text}

    return [{
        "sample_id": "conv-t",
        "conversation": {
            "speaker_a": "Caroline", "speaker_b": "Melanie",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [turn("D1:1", "Caroline", "I adopted a dog, Rex!"), turn("D1:2", "Melanie", "Cute!"),
                          turn("D1:3", "Caroline", "Work at the hospital is busy, nursing is hard.")],
            "session_2_date_time": "10:00 am on 20 June, 2023",
            "session_2": [turn("D2:1", "Caroline", "Rex says hi."), turn("D2:2", "Caroline", "I quit nursing.")],
            "session_3_date_time": "9:00 am on 1 July, 2023",  # a date without turns (a LoCoMo trap)
        },
        "qa": [],
        "observation": {
            "session_1_observation": {"Caroline": [["Caroline adopted a dog named Rex", "D1:1"],
                                                   ["Caroline works as a nurse at a hospital", ["D1:3", "D1:2"]]]},
            "session_2_observation": {"Caroline": [["Caroline adopted a dog named Rex", "D:2:01"],
                                                   ["Caroline no longer works as a nurse at a hospital", "D9:9"]]},
            "session_3_observation": {"Melanie": [["Melanie likes pottery", "D3:1"]]},
        },
    }]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(sample()))
    return path


def test_observations_are_emitted_with_the_last_of_their_evidence_turns(data: Path) -> None:
    adds, unplaced = build_adds(load_locomo(data), load_observations(data), turns_per_add=1)
    assert unplaced == 1  # session 3 has no turns
    assert [[m.id for m in a.messages] for a in adds] == [["conv-t:D1:1"], ["conv-t:D1:2"], ["conv-t:D1:3"],
                                                         ["conv-t:D2:1"], ["conv-t:D2:2"]]
    assert [[f["text"] for f in a.facts] for a in adds] == [
        ["Caroline adopted a dog named Rex"], [], ["Caroline works as a nurse at a hospital"],
        ["Caroline adopted a dog named Rex"],  # "D:2:01" repaired to D2:1
        ["Caroline no longer works as a nurse at a hospital"]]  # evidence outside the session: its last turn
    assert adds[2].facts[0]["source_ids"] == ["conv-t:D1:3"]
    pairs, _ = build_adds(load_locomo(data), load_observations(data), turns_per_add=2)
    assert [len(a.messages) for a in pairs] == [2, 1, 2]  # adds never cross a session


def test_before_and_after_from_one_run(data: Path) -> None:
    report = run_replay(data, embedder="fake", turns_per_add=1, floor=0.5, update_at=0.5)
    before, after, background = report.modes
    assert (before.mode, after.mode, background.mode) == ("before", "after", "after+background")
    # before: every add with facts runs the agent (action, finish, ReAct's final extraction): 5 + 4 x 3 calls
    assert (before.calls, before.facts, before.to_agent, before.agent_runs) == (17, 4, 4, 4)
    # after: the repeat is a NOOP and the unrelated facts are ADDs without the agent; only "no longer a nurse"
    # reaches it (update, finish): 5 + 2 calls
    assert (after.calls, after.facts, after.to_agent, after.agent_runs) == (7, 4, 1, 1)
    assert (after.live_facts, after.updates, after.duplicates, after.failures) == (2, 1, 0, 0)
    assert (before.live_facts, before.updates, before.duplicates) == (2, 1, 0)
    assert after.calls_per_turn == pytest.approx(7 / 5) and after.tokens_per_turn > 0
    assert (background.calls, background.live_facts, background.updates) == (7, 2, 1)
    assert len(after.add_ms) == 5 and background.latency(50) > 0


def test_cli_writes_the_tables(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["bench", "pipeline", "--data", str(data), "--embedder", "fake", "--out",
                                      str(out), "--modes", "after", "--turns-per-add", "1", "--floor", "0.5",
                                      "--update-at", "0.5"])
    assert result.exit_code == 0, result.output
    assert "| after | 5 | 5 | 7 | 1.400 | 1.400 |" in result.output
    assert "no floor table for this file" in result.output  # the shipped labels are for LoCoMo dev
    written = json.loads((out / "pipeline-replay.json").read_text())
    assert [m["mode"] for m in written["modes"]] == ["after"] and written["floor"] == []
    assert (out / "pipeline-replay.md").read_text().startswith("LLM write path replay")
    bad = CliRunner().invoke(app, ["bench", "pipeline", "--data", str(data), "--modes", "sideways"])
    assert bad.exit_code != 0 and "--modes" in str(bad.exception)


DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "locomo" / "locomo_dev.json"


@pytest.mark.skipif(not DEV.exists(), reason="the LoCoMo dev file lives in ../shared (see its README)")
def test_the_floor_table_of_the_readme() -> None:
    """The README's floor table, recomputed: the shipped labels on LoCoMo dev with the packaged embedder."""
    from remem.bench.floor import floor_table, labelled
    from remem.embedders import get_embedder

    observations = load_observations(DEV)
    assert len(observations) == 353 and labelled(observations)
    rows = {r.floor: (round(r.to_agent, 3), round(r.conflict_recall, 3)) for r in
            floor_table(observations, get_embedder("local"))}
    assert rows[0.7] == (0.643, 0.958) and rows[0.75] == (0.478, 0.795) and rows[0.8] == (0.274, 0.562)
