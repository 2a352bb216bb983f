"""What graph memory adds to the LLM pipeline per turn, measured with the scripted LM's counters (no LLM needed).

The first SESSIONS sessions of a LoCoMo conversation are ingested session by session by the real pipeline
(``Memory.add(..., infer=True)``: real DSPy prompts) on fresh data directories, with scripted replies of
realistic size — facts are the dataset's own ``observation`` facts of that session (LLM-written, with their
evidence ids); triage adds the facts unlike anything known without an LM call and sends the others to the
``UpdateMemory`` agent, whose replies come from the pipeline replay's policy (``remem bench pipeline``: add,
update or no-op by cosine); the triplets are one per fact (the speaker, a relation, an entity named in the fact).
Counted per turn:

- **off** — graph memory off: ``MemoryExtract`` + the ``UpdateMemory`` agent for conflicts;
- **separate** — graph memory on as shipped: + one ``TripletExtract`` call per batch that has facts (no
  ``EntityMatch`` call here: every name resolves by exact match or is new);
- **combined** — the alternative design, measured on the same inputs: triplets as a second output of
  ``MemoryExtract`` (a signature built here, not shipped), so no ``TripletExtract`` call.

Tokens are the scripted LM's count, ``len(text) // 4`` of the exact prompt and reply.

    python benchmarks/graph_cost.py [--sessions 5] [--data ../shared/data/locomo/locomo_dev.json] [--json out]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy

from remem import Memory
from remem.bench.locomo import load_locomo, normalize_evidence
from remem.bench.pipeline_replay import ReplayPolicy
from remem.embedders import get_embedder
from remem.graph.models import ENTITY_TYPES
from remem.graph.signatures import ExtractedTriplet, TripletExtract
from remem.pipeline import ScriptedLM, format_reply
from remem.pipeline.extract import format_messages
from remem.pipeline.signatures import DEFAULT_CATEGORIES, MemoryExtract

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"


class CombinedExtract(MemoryExtract):
    """The not-shipped alternative: one call returns the facts and the triplets."""

    entity_types: list[str] = dspy.InputField(desc="Allowed entity types")
    triplets: list[ExtractedTriplet] = dspy.OutputField(desc="Triplets; [] when none")


COMBINED_INSTRUCTIONS = MemoryExtract.instructions + "\n\nAlso return " + TripletExtract.instructions.split(
    "You turn new conversation turns into ", 1)[1]


def scripted_batch(sample: dict[str, Any], n: int, turn_ids: set[str]) -> tuple[list[dict[str, Any]],
                                                                                list[dict[str, Any]]]:
    """(facts, triplets) replies for the turns ``turn_ids`` of session ``n``: the dataset's observations whose
    evidence is among those turns, one triplet per fact."""
    facts, triplets = [], []
    for speaker, items in sample["observation"].get(f"session_{n}_observation", {}).items():
        for text, evidence in items:
            ids = normalize_evidence(evidence if isinstance(evidence, list) else [evidence])
            if not set(ids) & turn_ids:
                continue
            facts.append({"text": text, "categories": ["events"], "source_ids": ids, "date": None})
            named = [w for w in re.findall(r"\b[A-Z][a-z]+\b", text) if w != speaker]
            triplets.append({"subject": speaker, "subject_type": "person", "subject_hint": None,
                             "relation": "mentioned", "object": named[0] if named else "family",
                             "object_type": "thing", "object_hint": None, "source_ids": ids,
                             "valid_from": None, "valid_to": None})
    return facts, triplets


def run(sessions: int, data: Path, per_turn: bool = False) -> dict[str, Any]:
    sample = json.loads(data.read_text())[0]
    conv = load_locomo(data)[0]
    by_session: dict[str, list[Any]] = {}
    for t in conv.turns:
        by_session.setdefault(t.session_id, []).append(t)
    chosen = list(by_session.items())[:sessions]
    if per_turn:  # one add per turn, as the chat agent saves turns
        chosen = [(sid, [t]) for sid, ts in chosen for t in ts]

    def replies_for(sid: str, ts: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return scripted_batch(sample, int(sid.rsplit("D", 1)[1]), {t.id for t in ts})

    totals: dict[str, dict[str, int]] = {}
    combined_extra = {"prompt": 0, "completion": 0}
    turns = sum(len(ts) for _, ts in chosen)
    embedder = get_embedder("fake")
    for mode in ("off", "separate"):
        replies: dict[Any, Any] = {"MemoryExtract": [], TripletExtract: [],
                                   "UpdateMemory": ReplayPolicy([], embedder.embed, update_at=0.8).maintain}
        for sid, ts in chosen:
            facts, triplets = replies_for(sid, ts)
            replies["MemoryExtract"].append({"facts": facts})
            if facts:
                replies[TripletExtract].append({"triplets": triplets})
        lm = ScriptedLM(replies)
        calls = prompt = completion = 0
        with tempfile.TemporaryDirectory() as tmp, \
                Memory(Path(tmp), embedder="fake", lm=lm, graph=mode == "separate") as memory:
            for _sid, ts in chosen:
                usage = memory.add([t.message() for t in ts], user_id="cost", session_id=_sid, infer=True).usage
                calls, prompt, completion = calls + usage.calls, prompt + usage.prompt_tokens, \
                    completion + usage.completion_tokens
        totals[mode] = {"calls": calls, "prompt_tokens": prompt, "completion_tokens": completion}
        if mode == "off":  # the combined design: replace each MemoryExtract call by one CombinedExtract call
            extract_requests = [r for r in lm.requests if r["route"] == "MemoryExtract"]
            for (sid, ts), request in zip(chosen, extract_requests, strict=True):
                facts, triplets = replies_for(sid, ts)
                reply = {"facts": facts, "triplets": triplets if facts else []}
                combined_lm = ScriptedLM([reply])
                predict = dspy.Predict(CombinedExtract.with_instructions(COMBINED_INSTRUCTIONS))
                with dspy.context(lm=combined_lm):
                    predict(new_messages=format_messages([t.message() for t in ts]), recent_context="",
                            categories=list(DEFAULT_CATEGORIES), entity_types=list(ENTITY_TYPES))
                [combined] = combined_lm.requests
                combined_extra["prompt"] += (len(combined["system"]) + len(combined["user"])) // 4 \
                    - (len(request["system"]) + len(request["user"])) // 4
                combined_extra["completion"] += len(format_reply(reply)) // 4 - len(format_reply({"facts": facts})) // 4
    off = totals["off"]
    totals["combined"] = {"calls": off["calls"], "prompt_tokens": off["prompt_tokens"] + combined_extra["prompt"],
                          "completion_tokens": off["completion_tokens"] + combined_extra["completion"]}
    return {"batches": len(chosen), "turns": turns, "per_turn_batches": per_turn, "totals": totals,
            "per_turn": {m: {k: v / turns for k, v in t.items()} for m, t in totals.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--per-turn", action="store_true", help="one add per turn (chat) instead of per session")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.sessions, args.data, args.per_turn)
    off = result["per_turn"]["off"]
    print(f"{args.sessions} LoCoMo sessions, {result['turns']} turns in {result['batches']} adds; per turn "
          "(scripted LM counters):")
    print("| pipeline | LM calls | prompt tokens | completion tokens | added calls | added tokens |")
    print("|---|---|---|---|---|---|")
    for mode, row in result["per_turn"].items():
        added = row["prompt_tokens"] + row["completion_tokens"] - off["prompt_tokens"] - off["completion_tokens"]
        print(f"| {mode} | {row['calls']:.2f} | {row['prompt_tokens']:.0f} | {row['completion_tokens']:.0f} | "
              f"{row['calls'] - off['calls']:+.2f} | {added:+.0f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
