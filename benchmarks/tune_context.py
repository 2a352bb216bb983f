"""Grid over the packing knobs of ``Memory.context`` on the dev data (how its defaults were chosen).

Ingests each dataset once (raw turns, and for LoCoMo optionally its observations as facts), memoises the
searches, then scores every variant's evidence recall within 500/1,000/2,000 cl100k tokens. Only for the dev
data in ``../shared`` (the defaults must never be tuned on held-out data).

    python benchmarks/tune_context.py --locomo ../shared/data/locomo/locomo_dev.json \\
        --longmemeval ../shared/data/longmemeval/lme_s_dev.json [--facts] [--grid small|full] > tune.md
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from remem import Memory
from remem.bench.dataset import Conversation
from remem.bench.locomo import load_locomo
from remem.bench.longmemeval import load_longmemeval
from remem.bench.metrics import BUDGETS, score_budget
from remem.bench.runner import CachingEmbedder, scored
from remem.embedders import get_embedder
from remem.models import MemoryKind, SearchHit
from remem.retrieval.context import DEFAULT_CONTEXT_OPTIONS, ContextOptions, build_context
from remem.retrieval.search import SearchOptions


class MemoSearch:
    """Memory.search with results cached per (query, user, limit, neighbours, reference time)."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.cache: dict[tuple[Any, ...], list[SearchHit]] = {}

    def __call__(self, query: str, *, user_id: str, limit: int, categories: Sequence[str] | None,
                 kinds: Sequence[MemoryKind] | None, since: datetime | None, until: datetime | None,
                 options: SearchOptions) -> list[SearchHit]:
        key = (query, user_id, limit, options.expand_neighbors, options.reference_time, tuple(kinds or ()))
        if key not in self.cache:
            self.cache[key] = self.memory.search(query, user_id=user_id, limit=limit, categories=categories,
                                                 kinds=kinds, since=since, until=until, options=options)
        return self.cache[key]


def evaluate(memory: Memory, search: MemoSearch, convs: Sequence[Conversation], opts: ContextOptions
             ) -> dict[str, float]:
    rows: dict[str, list[float]] = {}
    for conv in convs:
        for q in conv.questions:
            if not scored(q):
                continue
            o = opts.with_(search=opts.search.with_(reference_time=q.reference_time))
            for b in BUDGETS:
                ctx = build_context(search, memory.store, q.text, user_id=conv.user_id, max_tokens=b, options=o)
                m = score_budget(q, ctx.source_ids, ctx.tokens, b)
                rows.setdefault(f"{b}", []).append(m[f"recall@{b}tok"])
                if q.category == "multi-hop":
                    rows.setdefault(f"mh{b}", []).append(m[f"recall@{b}tok"])
    out = {k: statistics.fmean(v) for k, v in rows.items()}
    out["mean"] = statistics.fmean(out[f"{b}"] for b in BUDGETS)
    return out


def grid(kind: str, facts: bool) -> list[ContextOptions]:
    base = DEFAULT_CONTEXT_OPTIONS
    if kind == "small":
        variants = [base]
        variants += [base.with_(cost_exponent=x) for x in (0.0, 0.25, 0.75, 1.0)]
        variants += [base.with_(neighbor_weight=x) for x in (0.3, 0.7, 0.9)]
        variants += [base.with_(neighbors=x) for x in (0, 2)]
        variants += [base.with_(tokens_per_hit=x) for x in (15, 40)]
        if facts:
            variants += [base.with_(fact_weight=x) for x in (0.5, 1.5, 2.0)]
        return variants
    combos = itertools.product((0.25, 0.5, 0.75), (0.3, 0.5, 0.7), (1, 2), (0.5, 1.0, 2.0) if facts else (1.0,))
    return [base.with_(cost_exponent=b, neighbor_weight=a, neighbors=n, fact_weight=f) for b, a, n, f in combos]


def describe(o: ContextOptions) -> str:
    return (f"beta={o.cost_exponent} alpha={o.neighbor_weight} n={o.neighbors} tph={o.tokens_per_hit} "
            f"fact_w={o.fact_weight}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--locomo")
    ap.add_argument("--longmemeval")
    ap.add_argument("--facts", action="store_true", help="LoCoMo: store the observations as facts too")
    ap.add_argument("--grid", default="small", choices=("small", "full"))
    args = ap.parse_args()
    sets: list[tuple[str, list[Conversation]]] = []
    if args.locomo:
        sets.append(("locomo" + ("+facts" if args.facts else ""), load_locomo(args.locomo, observations=args.facts)))
    if args.longmemeval:
        sets.append(("longmemeval", load_longmemeval(args.longmemeval)))
    embedder = CachingEmbedder(get_embedder("local"))
    variants = grid(args.grid, args.facts)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="remem-tune-") as tmp:
        for name, convs in sets:
            memory = Memory(Path(tmp) / name, embedder=embedder, store="edge")
            for conv in convs:
                memory.add_records(conv.records(), dedupe=False, actor="bench")
            search = MemoSearch(memory)
            for v in variants:
                results.setdefault(describe(v), {})[name] = evaluate(memory, search, convs, v)
                print(name, describe(v), {k: round(x, 3) for k, x in results[describe(v)][name].items()},
                      file=sys.stderr, flush=True)
            memory.close()
    names = [n for n, _ in sets]
    print("| variant | " + " | ".join(f"{n} {b}" for n in names for b in (*BUDGETS, "mean")) + " |")
    print("|---" * (1 + 4 * len(names)) + "|")
    for desc, per in results.items():
        print(f"| {desc} | " + " | ".join(f"{per[n][k]:.3f}" for n in names for k in (*map(str, BUDGETS), "mean"))
              + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
