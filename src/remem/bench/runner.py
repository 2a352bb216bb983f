"""Running a retrieval benchmark: ingest each conversation as its own user, ask every question of every system.

Systems in one run, on the same data and the same embedder: ``bm25-only`` and ``dense-only`` over the stored
records (baselines), remem search configurations (:data:`REMEM_SYSTEMS`, scored at k) and ``remem-context``
(:meth:`remem.Memory.context`, scored at each token budget of :data:`~remem.bench.metrics.BUDGETS`). The
baselines, ``remem-bm25`` and ``remem-hybrid`` are scored at the budgets too, filling the context with their top
items in rank order (every remem search configuration without neighbour expansion). The stored records are the raw turns (one episode each) plus, when the loader attached them
(``--facts observations``), the history's facts. With an LM, the LLM pipeline's store (:data:`FACT_SYSTEMS`),
and with ``graph`` also that store searched with graph facts fused in (:data:`GRAPH_SYSTEMS`): graph off and on
in one run. ``stores`` adds the same remem configurations on other stores (a store spec each, e.g. ``markdown``),
named ``<system>@<spec>``, each ingested into its own data directory: quality and latency against edge in the
same run. ``store`` picks the main store instead of ``edge``; ``keyword_only`` adds :data:`KEYWORD_SYSTEM` (the
store's keyword signal alone). A ``pgvector[:options]`` store runs on a fresh database of ``REMEM_DATABASE_URL``
or of a throw-away local Postgres (:mod:`remem.bench.postgres`). The data directory is a fresh temporary
``REMEM_HOME`` per run, removed afterwards.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..embedders import Embedder, embed_queries, get_embedder
from ..embedders.base import Vectors
from ..memory.core import Memory
from ..models import LLMUsage, MemoryKind, MemoryRecord
from ..retrieval.context import DEFAULT_CONTEXT_OPTIONS, ContextOptions, budget_limit, pack_ranked
from ..retrieval.search import SearchOptions
from ..tokens import count_many
from .baselines import BM25Baseline, DenseBaseline
from .dataset import Conversation, Question
from .metrics import BUDGETS, KS, QuestionResult, aggregate, latency_summary, score_budget, score_question
from .postgres import bench_postgres

#: remem configurations measured in every run: name -> search options (raw episodes).
REMEM_SYSTEMS: dict[str, SearchOptions] = {
    "remem-bm25": SearchOptions(mode="bm25"),  # remem's own BM25 (Qdrant Bm25 + remem's analyzer), defaults
    "remem-hybrid": SearchOptions(expand_neighbors=0),
    "remem-hybrid+expand": SearchOptions(),  # the defaults of Memory.search
}

#: The store's keyword signal alone (BM25 mode, no feedback, no expansion): compares keyword implementations.
KEYWORD_SYSTEM: dict[str, SearchOptions] = {
    "remem-keyword": SearchOptions(mode="bm25", expand_neighbors=0, feedback_terms=0),
}

#: Systems scored at a budget by filling it with their ranked items in order (no neighbours).
FILL_SYSTEMS = ("bm25-only", "dense-only", "remem-bm25", "remem-hybrid")
#: remem context configurations measured at every budget: name -> options of Memory.context.
CONTEXT_SYSTEMS: dict[str, ContextOptions] = {"remem-context": DEFAULT_CONTEXT_OPTIONS}
#: ``--ablations``: the default context with one knob changed, measured in the same run.
CONTEXT_ABLATIONS: dict[str, ContextOptions] = {
    "remem-context rank order (exponent 0)": DEFAULT_CONTEXT_OPTIONS.with_(cost_exponent=0.0),
    "remem-context value/token (exponent 1)": DEFAULT_CONTEXT_OPTIONS.with_(cost_exponent=1.0),
    "remem-context no neighbours": DEFAULT_CONTEXT_OPTIONS.with_(neighbors=0),
}
#: How many ranked items a baseline offers to fill the largest budget.
FILL_DEPTH = 200

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
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())  # allocated, not apparent size


def _database_bytes(memory: Memory) -> int:
    """The pgvector store's tables with their indexes (0 for a store kept in files)."""
    database = getattr(memory.store, "database", None)
    if database is None:
        return 0
    with database.read() as tx:
        row = tx.fetchone("SELECT pg_total_relation_size('memories') + pg_total_relation_size('memory_terms')")
    return int(row[0]) if row else 0


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
    contexts: dict[str, ContextOptions] | None = None,
    budgets: Sequence[int] = BUDGETS,
    facts_label: str | None = None,
    graph: bool = False,
    stores: Sequence[str] = (),
    store: str = "edge",
    keyword_only: bool = False,
) -> BenchRun:
    """Ingest, then retrieve for every scored question with every system; returns per-question results."""
    systems = REMEM_SYSTEMS if systems is None else systems
    if keyword_only:
        systems = {**KEYWORD_SYSTEM, **systems}
    contexts = CONTEXT_SYSTEMS if contexts is None else contexts
    others = [spec for spec in dict.fromkeys(stores) if spec != store]
    inner = get_embedder(embedder) if isinstance(embedder, str) else embedder
    cached = CachingEmbedder(inner)
    runs: dict[str, SystemRun] = {}
    names = (["bm25-only", "dense-only"] if baselines else []) + list(systems)
    names += list(contexts)
    names += list(FACT_SYSTEMS) if facts_lm is not None else []
    names += list(GRAPH_SYSTEMS) if facts_lm is not None and graph else []
    lm_systems = {**FACT_SYSTEMS, **GRAPH_SYSTEMS}
    on_store = {f"{name}@{spec}": (name, spec) for spec in others for name in systems}
    names += list(on_store)
    for name in names:
        runs[name] = SystemRun(name)
    n_turns = sum(len(c.turns) for c in conversations)
    n_facts = sum(len(c.facts) for c in conversations)
    n_questions = sum(1 for c in conversations for q in c.questions if scored(q))
    n_asked = sum(1 for c in conversations for q in c.questions if scored(q) or answer_system is not None)
    with tempfile.TemporaryDirectory(prefix="remem-bench-", dir=home) as tmp, ExitStack() as stack:
        servers: list[Any] = []

        def open_memory(path: Path, spec: str) -> Memory:
            url = None
            if spec.partition(":")[0] == "pgvector":
                if not servers:
                    servers.append(stack.enter_context(bench_postgres(Path(tmp))))
                url = servers[0].fresh_database()
            return Memory(path, embedder=cached, store=spec, database_url=url)

        memory = open_memory(Path(tmp) / "home", store)
        extra: dict[str, Memory] = {}
        try:
            started = time.perf_counter()
            done = 0
            for conv in conversations:
                records = conv.records()
                memory.add_records(records, dedupe=False, actor="bench")
                done += len(records)
                if progress:
                    progress("ingest", done, n_turns + n_facts)
            ingest_s = time.perf_counter() - started
            embed_s = cached.seconds
            extra_ingest: dict[str, float] = {}
            for i, spec in enumerate(others):
                extra[spec] = open_memory(Path(tmp) / f"store-{i}", spec)
                t0 = time.perf_counter()
                for conv in conversations:
                    extra[spec].add_records(conv.records(), dedupe=False, actor="bench")
                extra_ingest[spec] = time.perf_counter() - t0
                if progress:
                    progress(f"ingest ({spec})", n_turns, n_turns)
            facts_memory, lm_usage = _ingest_facts(Path(tmp) / "facts", cached, facts_lm, conversations, progress,
                                                   graph) if facts_lm is not None else (None, None)
            extra_bytes = {spec: _dir_size(Path(tmp) / f"store-{i}") + _database_bytes(extra[spec])
                           for i, spec in enumerate(others)}
            store_bytes = sum(_dir_size(p) for p in Path(tmp).iterdir()
                              if p.name != "postgres" and not p.name.startswith("store-")) + _database_bytes(memory)
            asked = 0
            for conv in conversations:
                stored = conv.records()
                tokens = dict(zip([t.id for t in conv.turns], count_many([t.memory_text() for t in conv.turns]),
                                  strict=True))
                questions = [q for q in conv.questions if scored(q) or answer_system is not None]
                retrievers: dict[str, Any] = {}
                if baselines:
                    retrievers["bm25-only"] = BM25Baseline(stored)
                    retrievers["dense-only"] = DenseBaseline(stored, cached)
                for q in questions:
                    for name in names if scored(q) else [answer_system or names[-1]]:
                        metrics: dict[str, float] = {}
                        fill: list[MemoryRecord] | None = None
                        t0 = time.perf_counter()
                        if name in retrievers:
                            found = retrievers[name].retrieve(q.text, max(k_max, FILL_DEPTH))
                            ms = (time.perf_counter() - t0) * 1000
                            ranked = [r.source_ids for r in found[:k_max]]
                            fill = found
                        elif name in contexts:
                            ranked = []
                            ms = 0.0
                            for budget in budgets:
                                t0 = time.perf_counter()
                                ctx = memory.context(q.text, user_id=conv.user_id, max_tokens=budget,
                                                     reference_time=q.reference_time, options=contexts[name])
                                if budget == 1000 or ms == 0.0:
                                    ms = (time.perf_counter() - t0) * 1000
                                metrics.update(score_budget(q, ctx.source_ids, ctx.tokens, budget))
                                metrics[f"fact_tokens@{budget}tok"] = float(
                                    sum(i.tokens for i in ctx.items if i.kind != "excerpt"))
                        elif name in lm_systems and facts_memory is not None:
                            opts, kinds = lm_systems[name]
                            hits = facts_memory.search(q.text, user_id=conv.user_id, limit=k_max, kinds=kinds,
                                                       options=opts.with_(reference_time=q.reference_time),
                                                       graph=name in GRAPH_SYSTEMS)
                            ms = (time.perf_counter() - t0) * 1000
                            ranked = [h.source_ids for h in hits]
                        elif name in on_store:
                            system, spec = on_store[name]
                            opts = systems[system].with_(reference_time=q.reference_time)
                            hits = extra[spec].search(q.text, user_id=conv.user_id, limit=k_max, options=opts)
                            ms = (time.perf_counter() - t0) * 1000
                            ranked = [h.source_ids for h in hits]
                        else:
                            opts = systems[name].with_(reference_time=q.reference_time)
                            hits = memory.search(q.text, user_id=conv.user_id, limit=k_max, options=opts)
                            ms = (time.perf_counter() - t0) * 1000
                            ranked = [h.source_ids for h in hits]
                            if name in FILL_SYSTEMS and scored(q):
                                deep = memory.search(q.text, user_id=conv.user_id, limit=budget_limit(max(budgets)),
                                                     options=opts)
                                fill = [h.record for h in deep]
                        runs[name].ranked[q.id] = ranked
                        if not scored(q):
                            continue
                        if ranked or name not in contexts:
                            metrics.update(score_question(q, ranked, tokens))
                        if fill is not None and name in FILL_SYSTEMS:
                            for budget in budgets:
                                ctx = pack_ranked(fill, max_tokens=budget, user_id=conv.user_id, query=q.text)
                                metrics.update(score_budget(q, ctx.source_ids, ctx.tokens, budget))
                        runs[name].results.append(QuestionResult(
                            question_id=q.id, category=q.category, metrics=metrics, latency_ms=ms,
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
                "k_max": k_max, "systems": {k: repr(v) for k, v in systems.items()},
                "contexts": {k: repr(v) for k, v in contexts.items()}, "budgets": list(budgets),
                "tokenizer": "cl100k_base", "facts": facts_label, "fact_records": n_facts, "graph": graph,
                "store": store, "stores": [store, *others],
                **({"ingest_lm": {**lm_usage.model_dump(), "turns": n_turns,
                                  "calls_per_turn": lm_usage.calls / n_turns if n_turns else 0.0,
                                  "tokens_per_turn": (lm_usage.prompt_tokens + lm_usage.completion_tokens) / n_turns
                                  if n_turns else 0.0}} if lm_usage is not None else {})},
    )
