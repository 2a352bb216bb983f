"""``remem bench pipeline --replay locomo-observations``: the LLM write path's cost, replayed offline.

**What it measures: the control flow's cost, not a model's judgement.** LoCoMo ships LLM-written observations
per session (``observation``: facts about each speaker with the turn ids they come from). The replay feeds
each conversation's sessions through the real pipeline (real DSPy modules and adapters, real store, writer,
triage, budget, queue and workers) as one user per conversation, ``turns_per_add`` consecutive turns of a
session per ``add(infer=True)``, with a scripted LM (:class:`~remem.pipeline.scripted.ScriptedLM` with
policies) whose replies are fixed:

- **extraction** replies with the observations whose evidence ends in the add's turns (an observation is
  emitted with the last of its evidence turns; one whose evidence names no turn of its session, with the
  session's last turn), as facts with those turn ids as sources and no categories or date;
- **maintenance** follows a fixed policy: for each new fact, in order, take the most similar memory the agent
  is shown (cosine with the run's embedder, each memory updated at most once per run): cosine ≥ 0.92 (the
  near-duplicate threshold) → ``no_op``; ≥ ``update_at`` (0.8) → ``update_memory(that id, the fact's text)``;
  else → ``add_memory(the fact's text)``; then ``finish`` (and ReAct's final extraction reply when asked).

Three runs from one invocation, each in a fresh data directory: **before** — today's control flow before
triage (every add with facts goes to the agent, ReAct's final extraction call included, no budget);
**after** — triage + the agent for conflicts only + the budget (the defaults); **after+background** — the same
with ``background=True`` (add returns once the turns are queued and stored; the in-process worker drains the
queue). Reported per run: LM calls per turn and per add, tokens per turn (the scripted LM's ``len/4``
counters, summed by ``remem stats``), facts extracted, the share that reached the agent (facts listed in the
agent's first prompt of each run), live facts at the end and the duplicates among them (pairs of live facts
of one user with the same normalised text or cosine ≥ 0.92: goal 0), and add latency (wall time of each
``add`` call; with ``lm_latency`` the scripted LM waits that long per call, to show what background buys with
a slow model).
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LLMError, ValidationError
from ..memory import Memory
from ..models import EventType, Message, content_hash
from .dataset import Conversation
from .floor import Observation, load_observations
from .locomo import load_locomo

ProgressFn = Callable[[str, int, int], None]
NEAR_DUPLICATE = 0.92
MODES = ("before", "after", "after+background")


@dataclass
class ReplayAdd:
    """One ``add(infer=True)`` of the replay: its messages and the facts the scripted extractor returns."""

    user_id: str
    messages: list[Message]
    facts: list[dict[str, Any]]


@dataclass
class ModeResult:
    mode: str
    turns: int
    adds: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    facts: int
    to_agent: int
    agent_runs: int
    live_facts: int
    updates: int
    duplicates: int
    failures: int
    budget_exhausted: int
    add_ms: list[float] = field(default_factory=list, repr=False)
    wall_seconds: float = 0.0

    @property
    def calls_per_turn(self) -> float:
        return self.calls / self.turns if self.turns else 0.0

    @property
    def calls_per_add(self) -> float:
        return self.calls / self.adds if self.adds else 0.0

    @property
    def tokens_per_turn(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / self.turns if self.turns else 0.0

    @property
    def agent_share(self) -> float:
        return self.to_agent / self.facts if self.facts else 0.0

    def latency(self, q: float) -> float:
        if not self.add_ms:
            return 0.0
        return float(np.percentile(np.array(self.add_ms), q))

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "add_ms"}
        out.update(calls_per_turn=round(self.calls_per_turn, 3), calls_per_add=round(self.calls_per_add, 3),
                   tokens_per_turn=round(self.tokens_per_turn, 1), agent_share=round(self.agent_share, 3),
                   add_p50_ms=round(self.latency(50), 2), add_p95_ms=round(self.latency(95), 2),
                   add_mean_ms=round(statistics.fmean(self.add_ms), 2) if self.add_ms else 0.0,
                   wall_seconds=round(self.wall_seconds, 2))
        return out


@dataclass
class ReplayReport:
    data: str
    embedder: str
    turns_per_add: int
    conflict_floor: float
    update_at: float
    lm_latency: float
    unplaced: int
    modes: list[ModeResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data, "embedder": self.embedder, "turns_per_add": self.turns_per_add,
                "conflict_floor": self.conflict_floor, "update_at": self.update_at, "lm_latency": self.lm_latency,
                "unplaced_observations": self.unplaced, "modes": [m.summary() for m in self.modes]}


# -- the data --------------------------------------------------------------------------------------------------
def _global(conversation: str, turn_id: str) -> str:
    return f"{conversation}:{turn_id}"


def build_adds(conversations: Sequence[Conversation], observations: Sequence[Observation],
               turns_per_add: int) -> tuple[list[ReplayAdd], int]:
    """The replay's adds, in conversation and session order, and the number of observations that could not be
    placed (their session has no turns)."""
    if turns_per_add < 1:
        raise ValidationError("turns per add must be at least 1", field="turns_per_add")
    by_conv: dict[str, list[Observation]] = defaultdict(list)
    for o in observations:
        by_conv[o.conversation].append(o)
    adds: list[ReplayAdd] = []
    unplaced = 0
    for conv in conversations:
        order = {t.id: i for i, t in enumerate(conv.turns)}
        sessions: dict[str, list[Any]] = defaultdict(list)
        for t in conv.turns:
            sessions[t.id.split(":", 1)[0]].append(t)
        placed: dict[str, list[Observation]] = defaultdict(list)
        for o in by_conv.get(conv.id, []):
            turns = sessions.get(f"D{o.session}")
            if not turns:
                unplaced += 1
                continue
            inside = [e for e in o.evidence if e in order and e.split(":", 1)[0] == f"D{o.session}"]
            anchor = max(inside, key=order.__getitem__) if inside else turns[-1].id
            placed[anchor].append(o)
        for turns in sessions.values():
            for start in range(0, len(turns), turns_per_add):
                chunk = turns[start:start + turns_per_add]
                ids = {t.id for t in chunk}
                messages = [t.message().model_copy(update={"id": _global(conv.id, t.id)}) for t in chunk]
                facts = []
                for t in chunk:
                    for o in placed.get(t.id, []):
                        sources = [_global(conv.id, e) for e in o.evidence if e in ids] or [_global(conv.id, t.id)]
                        facts.append({"text": o.text, "categories": [], "source_ids": sources, "date": None})
                adds.append(ReplayAdd(user_id=conv.user_id, messages=messages, facts=facts))
    return adds, unplaced


# -- the scripted LM ---------------------------------------------------------------------------------------------
def _section(text: str, name: str) -> str:
    match = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?=\n\[\[ ## |\Z)", text, flags=re.DOTALL)
    return match.group(1) if match else ""


_FACT_LINE = re.compile(r"^F\d+: (.*) \[[^\]]*\](?: \(\d{4}-\d{2}-\d{2}\))?$")
_MEMORY_LINE = re.compile(r"^(\d+): (.*)$")
_MESSAGE_ID = re.compile(r"^\[([^\]\s]+)\] ", flags=re.MULTILINE)


class ReplayPolicy:
    """The scripted replies of the replay (see the module docstring); counts what reached the agent."""

    def __init__(self, adds: Sequence[ReplayAdd], embed: Callable[[list[str]], np.ndarray], update_at: float) -> None:
        self.by_first_id = {a.messages[0].id: a for a in adds if a.messages and a.messages[0].id}
        self.embed, self.update_at = embed, update_at
        self._vectors: dict[str, np.ndarray] = {}
        self.facts_returned = 0
        self.agent_runs = 0
        self.facts_to_agent = 0

    def _vector(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            for t, v in zip(missing, self.embed(missing), strict=True):
                self._vectors[t] = v
        return np.array([self._vectors[t] for t in texts])

    def extract(self, request: Any) -> dict[str, Any]:
        ids = _MESSAGE_ID.findall(_section(request.user, "new_messages"))
        add = self.by_first_id.get(ids[0]) if ids else None
        facts = add.facts if add is not None else []
        self.facts_returned += len(facts)
        return {"facts": facts}

    def plan(self, facts: list[str], existing: list[tuple[int, str]]) -> list[tuple[str, dict[str, Any]]]:
        actions: list[tuple[str, dict[str, Any]]] = []
        used: set[int] = set()
        if not existing:
            return [("add_memory", {"text": f}) for f in facts]
        memory_vectors = self._vector([t for _, t in existing])
        for fact, vector in zip(facts, self._vector(facts), strict=True):
            sims = memory_vectors @ vector
            choices = [(float(sims[k]), existing[k][0]) for k in range(len(existing)) if existing[k][0] not in used]
            best, memory_id = max(choices) if choices else (-1.0, -1)
            if best >= NEAR_DUPLICATE:
                actions.append(("no_op", {}))
            elif best >= self.update_at:
                used.add(memory_id)
                actions.append(("update_memory", {"id": memory_id, "new_text": fact}))
            else:
                actions.append(("add_memory", {"text": fact}))
        return actions

    def maintain(self, request: Any) -> dict[str, Any]:
        if "`next_thought`" not in request.system:  # ReAct's final extraction (the "before" flow)
            return {"reasoning": "Done.", "summary": "done"}
        facts = [m.group(1) for line in _section(request.user, "new_facts").splitlines()
                 if (m := _FACT_LINE.match(line.strip()))]
        existing = [(int(m.group(1)), m.group(2)) for line in _section(request.user, "existing_memories").splitlines()
                    if (m := _MEMORY_LINE.match(line.strip()))]
        step = len(re.findall(r"\[\[ ## tool_name_\d+ ## \]\]", request.user))  # steps already taken
        if step == 0:
            self.agent_runs += 1
            self.facts_to_agent += len(facts)
        actions = self.plan(facts, existing)
        if step < len(actions):
            name, args = actions[step]
            return {"next_thought": f"Policy step {step}.", "next_tool_name": name, "next_tool_args": args}
        return {"next_thought": "All facts handled.", "next_tool_name": "finish", "next_tool_args": {}}


# -- one run -----------------------------------------------------------------------------------------------------
def _duplicates(memory: Memory, users: Sequence[str]) -> tuple[int, int, int]:
    """(live facts, UPDATE events of facts, duplicate pairs among live facts) over ``users``."""
    live = dupes = updates = 0
    for user in users:
        texts: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = memory.list(user_id=user, kinds=["fact"], offset=offset, limit=1000)
            texts += [r.text for r in page.items]
            offset = page.next_offset
        live += len(texts)
        updates += sum(1 for e in memory.log.for_user(user) if e.event is EventType.UPDATE)
        if len(texts) < 2:
            continue
        vectors = memory.embedder.embed(texts)
        sims = vectors @ vectors.T
        hashes = [content_hash(t) for t in texts]
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                if hashes[i] == hashes[j] or sims[i, j] >= NEAR_DUPLICATE:
                    dupes += 1
    return live, updates, dupes


def run_mode(mode: str, adds: Sequence[ReplayAdd], *, embedder: str, floor: float | None, update_at: float,
             lm_latency: float, progress: ProgressFn | None = None) -> ModeResult:
    """Replay ``adds`` through a fresh data directory in one of :data:`MODES`."""
    from ..pipeline import Pipeline, ScriptedLM

    if mode not in MODES:
        raise ValidationError(f"unknown replay mode {mode!r}", mode=mode)
    background = mode == "after+background"
    with tempfile.TemporaryDirectory(prefix="remem-replay-") as tmp, Memory(Path(tmp), embedder=embedder) as memory:
        policy = ReplayPolicy(adds, memory.embedder.embed, update_at)
        lm = ScriptedLM({"MemoryExtract": policy.extract, "UpdateMemory": policy.maintain}, latency=lm_latency)
        if mode == "before":
            pipeline = Pipeline(memory, lm, triage=False, summarize=True, budget=None, output="chat")
        else:
            pipeline = Pipeline(memory, lm, conflict_floor=floor, output="chat")
        result = ModeResult(mode=mode, turns=sum(len(a.messages) for a in adds), adds=len(adds), calls=0,
                            prompt_tokens=0, completion_tokens=0, facts=0, to_agent=0, agent_runs=0, live_facts=0,
                            updates=0, duplicates=0, failures=0, budget_exhausted=0)
        started = time.perf_counter()
        for i, add in enumerate(adds):
            t0 = time.perf_counter()
            try:
                out = memory.add(add.messages, user_id=add.user_id, infer=True, background=background)
            except LLMError:
                result.failures += 1
                continue
            finally:
                result.add_ms.append((time.perf_counter() - t0) * 1000.0)
            result.budget_exhausted += int(bool(getattr(out, "budget_exhausted", False)))
            if progress is not None:
                progress(mode, i + 1, len(adds))
        if background:
            pipeline.wait()
            result.failures += pipeline.queue.count("pending")
        result.wall_seconds = time.perf_counter() - started
        usage = memory.stats().lm_usage
        result.calls, result.prompt_tokens, result.completion_tokens = (
            usage.calls, usage.prompt_tokens, usage.completion_tokens)
        result.facts, result.to_agent, result.agent_runs = policy.facts_returned, policy.facts_to_agent, policy.agent_runs
        result.live_facts, result.updates, result.duplicates = _duplicates(
            memory, sorted({a.user_id for a in adds}))
        return result


def run_replay(data: str | Path, *, embedder: str = "local", turns_per_add: int = 2, floor: float | None = None,
               update_at: float = 0.8, lm_latency: float = 0.0, modes: Sequence[str] = MODES,
               conversations: Sequence[str] | None = None, progress: ProgressFn | None = None) -> ReplayReport:
    """Run the replay in each mode (see the module docstring)."""
    convs = load_locomo(data)
    if conversations:
        missing = sorted(set(conversations) - {c.id for c in convs})
        if missing:
            raise ValidationError(f"unknown conversation ids: {', '.join(missing)}", missing=missing)
        convs = [c for c in convs if c.id in set(conversations)]
    adds, unplaced = build_adds(convs, load_observations(data), turns_per_add)
    from ..config import Settings

    report = ReplayReport(data=str(data), embedder=embedder, turns_per_add=turns_per_add,
                          conflict_floor=floor if floor is not None else Settings.from_env().conflict_floor,
                          update_at=update_at, lm_latency=lm_latency, unplaced=unplaced)
    for mode in modes:
        report.modes.append(run_mode(mode, adds, embedder=embedder, floor=floor, update_at=update_at,
                                     lm_latency=lm_latency, progress=progress))
    return report


def markdown(report: ReplayReport, floor_rows: Sequence[Any] = ()) -> str:
    """The report as Markdown tables (replay, then the floor table when given)."""
    lines = [
        (f"LLM write path replay — LoCoMo observations ({report.data}), embedder `{report.embedder}`, "
        f"{report.turns_per_add} turn(s) per add, conflict floor {report.conflict_floor}, policy update_at "
        f"{report.update_at}, scripted LM latency {report.lm_latency * 1000:.0f} ms/call. Measures the control "
        "flow's cost, not a model's judgement."),
        "",
        ("| mode | turns | adds | LM calls | calls/turn | calls/add | tokens/turn | facts | to agent | share | "
        "agent runs | live facts | updates | duplicates left | add p50 ms | add p95 ms | wall s |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in report.modes:
        lines.append(
            f"| {m.mode} | {m.turns} | {m.adds} | {m.calls} | {m.calls_per_turn:.3f} | {m.calls_per_add:.3f} | "
            f"{m.tokens_per_turn:.0f} | {m.facts} | {m.to_agent} | {m.agent_share:.3f} | {m.agent_runs} | "
            f"{m.live_facts} | {m.updates} | {m.duplicates} | {m.latency(50):.1f} | {m.latency(95):.1f} | "
            f"{m.wall_seconds:.1f} |")
    if floor_rows:
        lines += ["", "| conflict floor | facts to agent | labelled conflicts reaching the agent |", "|---|---|---|"]
        lines += [f"| {r.floor:.2f} | {r.to_agent:.3f} | {r.conflict_recall:.3f} |" for r in floor_rows]
    return "\n".join(lines) + "\n"


def write_report(report: ReplayReport, out: Path, floor_rows: Sequence[Any] = ()) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "pipeline-replay.md", out / "pipeline-replay.json"
    md.write_text(markdown(report, floor_rows))
    body = report.to_json()
    body["floor"] = [asdict(r) for r in floor_rows]
    js.write_text(json.dumps(body, indent=2) + "\n")
    return md, js
