"""Answering and judging with an LM (driven offline by DSPy's DummyLM), and the lexical scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dspy.utils.dummies import DummyLM

from remem.bench.answer import AnswerScorer, answer_all, bleu1, format_memories, is_abstention, token_f1
from remem.bench.locomo import load_locomo
from remem.bench.runner import run_retrieval
from remem.errors import LLMError

DATA = Path(__file__).parent / "data" / "locomo_tiny.json"


def locomo_sample() -> list[dict[str, object]]:
    data: list[dict[str, object]] = json.loads(DATA.read_text())
    return data


def test_token_f1_and_bleu1() -> None:
    assert token_f1("7 May 2023", "7 May, 2023") == 1.0
    assert token_f1("The sunrise", "a sunrise painting") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert token_f1("", "x") == 0.0
    assert bleu1("sunrise", "sunrise") == 1.0
    assert bleu1("sunrise", "a sunrise painting") == pytest.approx(1.0 * 2.718281828 ** (1 - 2))  # brevity
    assert is_abstention("Not mentioned in the conversation.") and not is_abstention("a sunrise")


def test_answers_judge_and_abstention_with_a_scripted_lm(tmp_path: Path) -> None:
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(locomo_sample()))
    convs = load_locomo(path)
    for c in convs:  # the temporal question, the painting question and the adversarial one
        c.questions = [c.questions[0], c.questions[1], c.questions[5]]
    run = run_retrieval("locomo", convs, embedder="fake", home=tmp_path, answer_system="remem-hybrid+expand")
    ranked = run.systems["remem-hybrid+expand"].ranked
    assert set(ranked) == {"conv-x/q0", "conv-x/q1", "conv-x/q5"}  # category 5 retrieved for answering only
    assert run.config["questions"] == 2
    lm = DummyLM([
        {"answer": "7 May 2023"}, {"label": "CORRECT"},
        {"answer": "a mountain"}, {"label": "WRONG"},
        {"answer": "Not mentioned in the conversation."},
    ])
    result = answer_all(AnswerScorer(lm), convs, ranked)
    cats = result["per_category"]
    assert cats["temporal"]["judge"] == 1.0 and cats["temporal"]["f1"] == 1.0
    assert cats["single-hop"]["judge"] == 0.0 and cats["single-hop"]["f1"] == 0.0
    assert cats["adversarial"]["abstained"] == 1.0 and "judge" not in cats["adversarial"]
    assert cats["overall"]["n"] == 3 and cats["overall"]["tokens"] > 5
    turns = {t.id: t for t in convs[0].turns}
    context = format_memories(ranked["conv-x/q0"], turns, 10)
    assert "[08 May 2023] Caroline: Hey Mel! I went to a support group yesterday." in context


def test_an_lm_failure_names_the_question(tmp_path: Path) -> None:
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(locomo_sample()))
    convs = load_locomo(path)
    convs[0].questions = convs[0].questions[:1]
    scorer = AnswerScorer(DummyLM([{"unrelated": "x"}] * 10))
    with pytest.raises(LLMError) as err:
        answer_all(scorer, convs, {"conv-x/q0": [["D1:1"]]})
    assert "conv-x/q0" in str(err.value)


def test_facts_and_both_systems_with_a_scripted_pipeline(tmp_path: Path) -> None:
    from remem.pipeline import ScriptedLM

    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(locomo_sample()))
    convs = load_locomo(path)

    def fact(text: str, sources: list[str]) -> dict[str, object]:
        return {"text": text, "categories": ["hobbies"], "source_ids": sources, "date": None}

    lm = ScriptedLM({
        "MemoryExtract": [{"facts": [fact("Melanie painted a sunrise in 2022", ["D1:2"])]},
                          {"facts": [fact("Caroline is researching adoption agencies", ["D2:2"])]}],
    })  # two unrelated facts: added without the maintenance agent
    run = run_retrieval("locomo", convs, embedder="fake", home=tmp_path, facts_lm=lm)
    assert {"remem-facts", "remem-both"} <= set(run.systems)
    facts = run.systems["remem-facts"]
    assert facts.ranked["conv-x/q1"][0] == ["D1:2"]  # the painting fact points at its source turn
    assert facts.ranked["conv-x/q4"][0] == ["D2:2"]
    assert all(len(r) <= 2 for r in facts.ranked.values())  # only two facts exist
    assert run.systems["remem-both"].summary()["metrics"]["overall"]["recall@20"] == 1.0  # episodes too
