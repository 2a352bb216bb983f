"""Embedder speed, several models in one run (so each has a baseline measured under the same load).

Embeds the first 512 LoCoMo dev turns in batches of 256 (sentences/s) and then 50 questions one at a time
(p50/p95 ms per query), with :func:`remem.bench.store.measure_embedding`, after loading the model and one
warm-up call.

    python benchmarks/embedders.py                          # local multilingual
    python benchmarks/embedders.py local fake --data ../shared/data/locomo/locomo_dev.json
"""

from __future__ import annotations

import argparse
import time

from remem.bench.locomo import load_locomo
from remem.bench.store import measure_embedding
from remem.embedders import get_embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=["local", "multilingual"], help="embedder specs")
    parser.add_argument("--data", default="../shared/data/locomo/locomo_dev.json", help="LoCoMo JSON file")
    args = parser.parse_args()
    conversations = load_locomo(args.data)
    texts = [t.memory_text() for c in conversations for t in c.turns][:512]
    queries = [q.text for c in conversations for q in c.questions][:50]
    print(f"{len(texts)} turns, {len(queries)} single queries")
    for spec in args.specs:
        started = time.perf_counter()
        embedder = get_embedder(spec)
        embedder.embed(["warm-up"])
        load = time.perf_counter() - started
        rate, p50, p95 = measure_embedding(embedder, texts, queries)
        print(f"{embedder.name:34s} load {load:5.2f} s  {rate:7.0f} sentences/s  query p50 {p50:6.1f} ms  "
              f"p95 {p95:6.1f} ms", flush=True)


if __name__ == "__main__":
    main()
