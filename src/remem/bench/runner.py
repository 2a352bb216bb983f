"""Running a retrieval benchmark: ingest each conversation as its own user, ask every question of every system.

Systems in one run, on the same data and the same embedder: ``bm25-only`` and ``dense-only`` over raw turns
(baselines), and remem configurations over raw episodes (see :data:`REMEM_SYSTEMS`; with ``keyword_only`` also
:data:`KEYWORD_SYSTEM`, the store's keyword signal alone). The data directory is a fresh temporary
``REMEM_HOME`` per run, removed afterwards. ``store`` picks the vector store (``edge``; ``pgvector[:options]``
runs on ``REMEM_DATABASE_URL`` or a throw-away local Postgres, see :mod:`remem.bench.postgres`).
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

from ..embedders import Embedder, get_embedder
from ..embedders.base import Vectors
from ..memory.core import Memory
from ..models import MemoryKind
from ..retrieval.search import SearchOptions
from .baselines import BM25Baseline, DenseBaseline
from .dataset import Conversation, Question
from .metrics import KS, QuestionResult, aggregate, count_tokens, latency_summary, score_question
from .postgres import bench_postgres

#: remem configurations measured in every run: name -> search options (raw episodes).
REMEM_SYSTEMS: dict[str, SearchOptions] = {
    "remem-hybrid": SearchOptions(expand_neighbors=0),
    "remem-hybrid+expand": SearchOptions(),  # the defaults of Memory.search
}

#: The store's keyword signal alone (BM25 mode, no feedback, no expansion): compares keyword implementations.
KEYWORD_SYSTEM: dict[str, SearchOptions] = {
    "remem-keyword": SearchOptions(mode="bm25", expand_neighbors=0, feedback_terms=0),
}

#: With an LM (``facts_lm``): the LLM pipeline ingests each session (episodes + extracted facts).
FACT_SYSTEMS: dict[str, tuple[SearchOptions, list[MemoryKind] | None]] = {
    "remem-facts": (SearchOptions(), ["fact"]),
    "remem-both": (SearchOptions(), None),
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

    def embed(self, texts: Sequence[str]) -> Vectors:
        if len(texts) <= 1:
            return self.inner.embed(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            for text, vec in zip(todo, self.inner.embed(todo), strict=True):
                self._cache[text] = vec
        return np.stack([self._cache[t] for t in texts]).astype(np.float32)


def _ingest_facts(home: Path, embedder: Embedder, lm: Any, conversations: Sequence[Conversation],
                  progress: Progress | None) -> Memory:
    """A second store, filled by the LLM pipeline session by session (raw episodes + facts with source ids)."""
    memory = Memory(home, embedder=embedder, store="edge", lm=lm)
    total = sum(len(c.turns) for c in conversations)
    done = 0
    for conv in conversations:
        sessions: dict[str, list[Any]] = {}
        for t in conv.turns:
            sessions.setdefault(t.session_id, []).append(t)
        for session_id, turns in sessions.items():
            memory.add([t.message() for t in turns], user_id=conv.user_id, session_id=session_id, infer=True,
                       actor="bench")
            done += len(turns)
            if progress:
                progress("extract facts (LM)", done, total)
    return memory


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
    store: str = "edge",
    keyword_only: bool = False,
) -> BenchRun:
    """Ingest, then retrieve for every scored question with every system; returns per-question results."""
    systems = REMEM_SYSTEMS if systems is None else systems
    if keyword_only:
        systems = {**KEYWORD_SYSTEM, **systems}
    inner = get_embedder(embedder) if isinstance(embedder, str) else embedder
    cached = CachingEmbedder(inner)
    runs: dict[str, SystemRun] = {}
    names = (["bm25-only", "dense-only"] if baselines else []) + list(systems)
    names += list(FACT_SYSTEMS) if facts_lm is not None else []
    for name in names:
        runs[name] = SystemRun(name)
    n_turns = sum(len(c.turns) for c in conversations)
    n_questions = sum(1 for c in conversations for q in c.questions if scored(q))
    n_asked = sum(1 for c in conversations for q in c.questions if scored(q) or answer_system is not None)
    with tempfile.TemporaryDirectory(prefix="remem-bench-", dir=home) as tmp, ExitStack() as stack:
        url = None
        if store.partition(":")[0] == "pgvector":
            url = stack.enter_context(bench_postgres(Path(tmp))).fresh_database()
        memory = Memory(Path(tmp) / "home", embedder=cached, store=store, database_url=url)
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
            facts_memory = _ingest_facts(Path(tmp) / "facts", cached, facts_lm, conversations, progress) \
                if facts_lm is not None else None
            store_bytes = sum(_dir_size(p) for p in Path(tmp).iterdir() if p.name != "postgres") \
                + _database_bytes(memory)
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
                        elif name in FACT_SYSTEMS and facts_memory is not None:
                            opts, kinds = FACT_SYSTEMS[name]
                            hits = facts_memory.search(q.text, user_id=conv.user_id, limit=k_max, kinds=kinds,
                                                       options=opts.with_(reference_time=q.reference_time))
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
            if facts_lm is not None and "facts_memory" in locals() and facts_memory is not None:
                facts_memory.close()
    return BenchRun(
        dataset=dataset, systems=runs,
        ingest={"turns": float(n_turns), "seconds": ingest_s, "turns_per_s": n_turns / ingest_s if ingest_s else 0.0},
        resources={"peak_rss_mb": peak_rss_mb(), "store_mb": store_bytes / 2**20},
        config={"conversations": len(conversations), "questions": n_questions, "embedder": inner.name,
                "k_max": k_max, "store": store, "systems": {k: repr(v) for k, v in systems.items()}},
    )
