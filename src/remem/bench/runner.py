"""Running a retrieval benchmark: ingest each conversation as its own user, ask every question of every system.

Systems in one run, on the same data and the same embedder: ``bm25-only`` and ``dense-only`` over raw turns
(baselines), and remem configurations over raw episodes (see :data:`REMEM_SYSTEMS`) on the embedded ``edge``
store; with an LM, the LLM pipeline's store (:data:`FACT_SYSTEMS`), and with ``graph`` also that store searched
with graph facts fused in (:data:`GRAPH_SYSTEMS`): graph off and on in one run. ``stores`` adds the same remem
configurations on other stores (a store spec each, e.g. ``markdown``), named ``<system>@<spec>``, each ingested
into its own data directory: quality and latency against edge in the same run. The data directory is a fresh
temporary ``REMEM_HOME`` per run, removed afterwards.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..embedders import Embedder, embed_queries, get_embedder
from ..embedders.base import Vectors
from ..memory.core import Memory
from ..models import LLMUsage, MemoryKind
from ..retrieval.search import SearchOptions
from .baselines import BM25Baseline, DenseBaseline
from .dataset import Conversation, Question
from .metrics import KS, QuestionResult, aggregate, count_tokens, latency_summary, score_question

#: remem configurations measured in every run: name -> search options (raw episodes).
REMEM_SYSTEMS: dict[str, SearchOptions] = {
    "remem-bm25": SearchOptions(mode="bm25"),  # remem's own BM25 (Qdrant Bm25 + remem's analyzer), defaults
    "remem-hybrid": SearchOptions(expand_neighbors=0),
    "remem-hybrid+expand": SearchOptions(),  # the defaults of Memory.search
}

#: With an LM (``facts_lm``): the LLM pipeline ingests each session (episodes + extracted facts).
FACT_SYSTEMS: dict[str, tuple[SearchOptions, list[MemoryKind] | None]] = {
    "remem-facts": (SearchOptions(), ["fact"]),
    "remem-both": (SearchOptions(), None),
}

#: With an LM and ``graph``: the same store (its pipeline also built graph memory) searched with graph facts
#: fused in (``Memory.search(..., graph=True)``); ``remem-both`` is the same store with graph off.
GRAPH_SYSTEMS: dict[str, tuple[SearchOptions, list[MemoryKind] | None]] = {
    "remem-both+graph": (SearchOptions(), None),
}

Progress = Callable[[str, int, int], None]


class CachingEmbedder:
    """Remembers document vectors so the baselines reuse the embeddings remem computed at ingest.

    Only batches (more than one text) are cached: single-text calls — queries — are always computed, so search
    latency includes the query embedding as in production.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self._cache: dict[str, np.ndarray] = {}
        self.seconds = 0.0  # spent in the inner model on documents: the embedder's own share of the ingest

    def embed(self, texts: Sequence[str]) -> Vectors:
        if len(texts) <= 1:
            return self.inner.embed(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            started = time.perf_counter()
            vectors = self.inner.embed(todo)
            self.seconds += time.perf_counter() - started
            for text, vec in zip(todo, vectors, strict=True):
                self._cache[text] = vec
        return np.stack([self._cache[t] for t in texts]).astype(np.float32)

    def embed_query(self, texts: Sequence[str]) -> Vectors:
        """The inner model's query side (never cached, like single-text calls)."""
        return embed_queries(self.inner, texts)


def _ingest_facts(home: Path, embedder: Embedder, lm: Any, conversations: Sequence[Conversation],
                  progress: Progress | None, graph: bool = False) -> tuple[Memory, LLMUsage]:
    """A second store, filled by the LLM pipeline session by session (raw episodes + facts with source ids;
    with ``graph``, also entities and relations); returns it and the LM usage of the ingest."""
    memory = Memory(home, embedder=embedder, store="edge", lm=lm, graph=graph)
    total = sum(len(c.turns) for c in conversations)
    done = 0
    usage = LLMUsage()
    for conv in conversations:
        sessions: dict[str, list[Any]] = {}
        for t in conv.turns:
            sessions.setdefault(t.session_id, []).append(t)
        for session_id, turns in sessions.items():
            result = memory.add([t.message() for t in turns], user_id=conv.user_id, session_id=session_id,
                                infer=True, actor="bench")
            usage = usage + result.usage
            done += len(turns)
            if progress:
                progress("extract facts (LM)", done, total)
    return memory, usage


@dataclass
class SystemRun:
    name: str
    results: list[QuestionResult] = field(default_factory=list)
    ranked: dict[str, list[list[str]]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "metrics": aggregate(self.results),
            "latency_ms": latency_summary([r.latency_ms for r in self.results]),
        }


@dataclass
class BenchRun:
    dataset: str
    systems: dict[str, SystemRun]
    ingest: dict[str, float]
    resources: dict[str, float]
    config: dict[str, Any]
    answers: dict[str, Any] = field(default_factory=dict)


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def scored(question: Question) -> bool:
    """Questions with evidence count for recall (LoCoMo category 5 and LongMemEval ``_abs`` have none)."""
    return bool(question.evidence) and question.category != "adversarial" and not question.id.endswith("_abs")


def run_retrieval(
    dataset: str,
    conversations: Sequence[Conversation],
    *,
    embedder: str | Embedder = "local",
    systems: dict[str, SearchOptions] | None = None,
    baselines: bool = True,
    k_max: int = max(KS),
    progress: Progress | None = None,
    home: Path | None = None,
    answer_system: str | None = None,
    facts_lm: Any = None,
    graph: bool = False,
    stores: Sequence[str] = (),
) -> BenchRun:
    """Ingest, then retrieve for every scored question with every system; returns per-question results."""
    systems = REMEM_SYSTEMS if systems is None else systems
    others = [spec for spec in dict.fromkeys(stores) if spec != "edge"]
    inner = get_embedder(embedder) if isinstance(embedder, str) else embedder
    cached = CachingEmbedder(inner)
    runs: dict[str, SystemRun] = {}
    names = (["bm25-only", "dense-only"] if baselines else []) + list(systems)
    names += list(FACT_SYSTEMS) if facts_lm is not None else []
    names += list(GRAPH_SYSTEMS) if facts_lm is not None and graph else []
    lm_systems = {**FACT_SYSTEMS, **GRAPH_SYSTEMS}
    on_store = {f"{name}@{spec}": (name, spec) for spec in others for name in systems}
    names += list(on_store)
    for name in names:
        runs[name] = SystemRun(name)
    n_turns = sum(len(c.turns) for c in conversations)
    n_questions = sum(1 for c in conversations for q in c.questions if scored(q))
    n_asked = sum(1 for c in conversations for q in c.questions if scored(q) or answer_system is not None)
    with tempfile.TemporaryDirectory(prefix="remem-bench-", dir=home) as tmp:
        memory = Memory(Path(tmp) / "home", embedder=cached, store="edge")
        extra: dict[str, Memory] = {}
        try:
            started = time.perf_counter()
            done = 0
            for conv in conversations:
                records = [t.record(conv.user_id) for t in conv.turns]
                memory.add_records(records, dedupe=False, actor="bench")
                done += len(records)
                if progress:
                    progress("ingest", done, n_turns)
            ingest_s = time.perf_counter() - started
            embed_s = cached.seconds
            extra_ingest: dict[str, float] = {}
            for i, spec in enumerate(others):
                extra[spec] = Memory(Path(tmp) / f"store-{i}", embedder=cached, store=spec)
                t0 = time.perf_counter()
                for conv in conversations:
                    extra[spec].add_records([t.record(conv.user_id) for t in conv.turns], dedupe=False, actor="bench")
                extra_ingest[spec] = time.perf_counter() - t0
                if progress:
                    progress(f"ingest ({spec})", n_turns, n_turns)
            facts_memory, lm_usage = _ingest_facts(Path(tmp) / "facts", cached, facts_lm, conversations, progress,
                                                   graph) if facts_lm is not None else (None, None)
            extra_bytes = {spec: _dir_size(Path(tmp) / f"store-{i}") for i, spec in enumerate(others)}
            store_bytes = _dir_size(Path(tmp)) - sum(extra_bytes.values())
            asked = 0
            for conv in conversations:
                tokens = {t.id: count_tokens(t.memory_text()) for t in conv.turns}
                questions = [q for q in conv.questions if scored(q) or answer_system is not None]
                retrievers: dict[str, Any] = {}
                if baselines:
                    retrievers["bm25-only"] = BM25Baseline(conv.turns)
                    retrievers["dense-only"] = DenseBaseline(conv.turns, cached)
                for q in questions:
                    for name in names if scored(q) else [answer_system or names[-1]]:
                        t0 = time.perf_counter()
                        if name in retrievers:
                            ranked = retrievers[name].retrieve(q.text, k_max)
                        elif name in lm_systems and facts_memory is not None:
                            opts, kinds = lm_systems[name]
                            hits = facts_memory.search(q.text, user_id=conv.user_id, limit=k_max, kinds=kinds,
                                                       options=opts.with_(reference_time=q.reference_time),
                                                       graph=name in GRAPH_SYSTEMS)
                            ranked = [h.source_ids for h in hits]
                        elif name in on_store:
                            system, spec = on_store[name]
                            opts = systems[system].with_(reference_time=q.reference_time)
                            hits = extra[spec].search(q.text, user_id=conv.user_id, limit=k_max, options=opts)
                            ranked = [h.source_ids for h in hits]
                        else:
                            opts = systems[name].with_(reference_time=q.reference_time)
                            hits = memory.search(q.text, user_id=conv.user_id, limit=k_max, options=opts)
                            ranked = [h.source_ids for h in hits]
                        ms = (time.perf_counter() - t0) * 1000
                        runs[name].ranked[q.id] = ranked
                        if not scored(q):
                            continue
                        runs[name].results.append(QuestionResult(
                            question_id=q.id, category=q.category, metrics=score_question(q, ranked, tokens),
                            latency_ms=ms,
                        ))
                    asked += 1
                    if progress:
                        progress("search", asked, n_asked)
        finally:
            memory.close()
            for other in extra.values():
                other.close()
            if facts_lm is not None and "facts_memory" in locals() and facts_memory is not None:
                facts_memory.close()
    ingest = {"turns": float(n_turns), "seconds": ingest_s, "turns_per_s": n_turns / ingest_s if ingest_s else 0.0,
              "embed_seconds": embed_s}
    resources = {"peak_rss_mb": peak_rss_mb(), "store_mb": store_bytes / 2**20}
    for spec, seconds in extra_ingest.items():
        ingest[f"seconds@{spec}"] = seconds
        resources[f"store_mb@{spec}"] = extra_bytes[spec] / 2**20
    return BenchRun(
        dataset=dataset, systems=runs, ingest=ingest, resources=resources,
        config={"conversations": len(conversations), "questions": n_questions, "embedder": inner.name,
                "k_max": k_max, "systems": {k: repr(v) for k, v in systems.items()}, "graph": graph,
                "stores": ["edge", *others],
                **({"ingest_lm": {**lm_usage.model_dump(), "turns": n_turns,
                                  "calls_per_turn": lm_usage.calls / n_turns if n_turns else 0.0,
                                  "tokens_per_turn": (lm_usage.prompt_tokens + lm_usage.completion_tokens) / n_turns
                                  if n_turns else 0.0}} if lm_usage is not None else {})},
    )
