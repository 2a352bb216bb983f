"""The retrieval pipeline behind Memory.search: neighbour expansion, de-duplication, time expressions, kinds,
fusion knobs — on the real edge store (and qdrant local mode for the seq filter congruence)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remem import Memory
from remem.errors import ValidationError
from remem.models import MemoryRecord
from remem.retrieval import SearchOptions
from remem.retrieval.expand import diversify_sessions
from remem.retrieval.fusion import fuse_rrf
from remem.stores.base import MemoryFilter, ScoredRecord

T0 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)

SESSION = [
    "Hey Mel, how are you doing?",
    "Great! We went camping at the beach last weekend.",
    "The kids loved the campfire and the marshmallows.",
    "That sounds lovely. I started a pottery class.",
    "Pottery is so relaxing, what did you make?",
    "A small blue bowl for my mother.",
]


def _turns(user: str = "u", session: str = "s1", when: datetime = T0, texts: list[str] = SESSION) -> list[MemoryRecord]:
    return [
        MemoryRecord(user_id=user, text=t, kind="episode", session_id=session, seq=i, source_ids=[f"{session}:{i}"],
                     observed_at=when, speaker="Mel" if i % 2 else "Caroline")
        for i, t in enumerate(texts)
    ]


def test_expansion_attaches_neighbouring_turns_of_the_same_session(fake_memory: Memory) -> None:
    m = fake_memory
    m.add_records(_turns() + _turns(session="s2", texts=["unrelated chatter about taxes", "more taxes talk"]))
    hit = m.search("blue bowl mother", user_id="u", limit=1)[0]
    assert hit.record.text == "A small blue bowl for my mother."
    assert [r.seq for r in hit.context] == [4]  # last turn of the session: only the one before exists
    assert hit.source_ids == ["s1:4", "s1:5"]
    middle = m.search("kids campfire marshmallows", user_id="u", limit=1, expand_neighbors=2)[0]
    assert [r.seq for r in middle.context] == [0, 1, 3, 4]
    assert all(r.session_id == "s1" for r in middle.context)
    bare = m.search("kids campfire marshmallows", user_id="u", limit=1, expand_neighbors=0)[0]
    assert bare.context == [] and bare.source_ids == ["s1:2"]


def test_expansion_never_crosses_users(fake_memory: Memory) -> None:
    m = fake_memory
    m.add_records(_turns(user="alice") + _turns(user="bob", texts=["bob secret one", "bob secret two", "x", "y"]))
    hits = m.search("kids campfire marshmallows", user_id="alice", limit=3)
    assert {r.user_id for h in hits for r in [h.record, *h.context]} == {"alice"}


def test_seq_range_filter_is_congruent_on_both_backends(tmp_path: Path) -> None:
    found = {}
    for store in ("edge", "qdrant::memory:"):
        with Memory(tmp_path / store.replace(":", "_"), embedder="fake", store=store) as m:
            m.add_records(_turns())
            flt = MemoryFilter(user_id="u", session_id="s1", seq_min=2, seq_max=4)
            found[store] = sorted(r.seq or 0 for r in m.store.scroll(flt, offset=0, limit=10))
            m.add_records(_turns(session="s2", texts=["a", "b", "c"]))
            windows = MemoryFilter(user_id="u", windows=[("s1", 0, 1), ("s2", 2, 5), ("nope", 0, 9)])
            found[store + "w"] = sorted((r.session_id or "", r.seq or 0)
                                        for r in m.store.scroll(windows, offset=0, limit=20))
    assert found["edge"] == found["qdrant::memory:"] == [2, 3, 4]
    assert found["edgew"] == found["qdrant::memory:w"] == [("s1", 0), ("s1", 1), ("s2", 2)]


def test_near_duplicates_are_dropped_and_kept_when_dedupe_is_off(fake_memory: Memory) -> None:
    m = fake_memory
    texts = ["I adopted a puppy named Rex today", "i adopted a puppy named rex today!!", "The weather is grey"]
    m.add_records([MemoryRecord(user_id="u", text=t, kind="fact") for t in texts], dedupe=False)
    deduped = m.search("puppy Rex", user_id="u", limit=3)
    assert sum("puppy" in h.record.text.lower() for h in deduped) == 1
    kept = m.search("puppy Rex", user_id="u", limit=3, dedupe=False)
    assert sum("puppy" in h.record.text.lower() for h in kept) == 2


def test_kinds_select_episodes_or_facts(fake_memory: Memory) -> None:
    m = fake_memory
    m.add_records(_turns())
    m.add("Mel went camping at the beach", user_id="u")  # a plain string is a fact
    facts = m.search("camping beach", user_id="u", kinds=["fact"])
    assert [h.record.kind for h in facts] == ["fact"] and facts[0].context == []
    episodes = m.search("camping beach", user_id="u", kinds=["episode"])
    assert episodes and {h.record.kind for h in episodes} == {"episode"}


def test_time_expression_boosts_or_filters_relative_to_reference_time(fake_memory: Memory) -> None:
    m = fake_memory
    old = _turns(session="old", when=T0 - timedelta(days=60), texts=["I went hiking in the hills"])
    new = _turns(session="new", when=T0 - timedelta(days=1), texts=["I went hiking near the lake"])
    m.add_records(old + new)
    query = "where did I go hiking yesterday?"
    filtered = m.search(query, user_id="u", time_expressions="filter", reference_time=T0)
    assert [h.record.session_id for h in filtered] == ["new"]
    boosted = m.search(query, user_id="u", reference_time=T0)
    assert [h.record.session_id for h in boosted] == ["new", "old"]  # boost: the other stays reachable
    assert "time" in boosted[0].signals and "time" not in boosted[1].signals
    off = m.search(query, user_id="u", time_expressions="off", reference_time=T0)
    assert all("time" not in h.signals for h in off)
    explicit = m.search(query, user_id="u", since=T0 - timedelta(days=90), until=T0 - timedelta(days=30),
                        reference_time=T0)  # explicit bounds win over the expression
    assert [h.record.session_id for h in explicit] == ["old"]


def test_options_object_and_validation(fake_memory: Memory) -> None:
    m = fake_memory
    m.add_records(_turns())
    opts = SearchOptions(expand_neighbors=0, mode="bm25")
    hits = m.search("pottery class", user_id="u", options=opts)
    assert hits and all(h.context == [] and set(h.signals) == {"bm25"} for h in hits)
    assert m.search("pottery class", user_id="u", options=opts, expand_neighbors=1)[0].context  # argument wins
    with pytest.raises(ValidationError):
        m.search("x", user_id="u", expand_neighbors=-1)
    with pytest.raises(ValidationError):
        m.search("x", user_id="u", time_expressions="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        m.search("x", user_id="u", mode="fuzzy")  # type: ignore[arg-type]


def test_recency_prefers_newer_memories_when_relevance_ties(fake_memory: Memory) -> None:
    m = fake_memory
    m.add_records([
        MemoryRecord(user_id="u", text="my favourite colour is blue", observed_at=T0 - timedelta(days=300)),
        MemoryRecord(user_id="u", text="my favourite colour is green", observed_at=T0),
    ])
    plain = [h.record.text for h in m.search("favourite colour", user_id="u", recency=0.0)]
    recent = [h.record.text for h in m.search("favourite colour", user_id="u", recency=5.0)]
    assert recent[0].endswith("green")
    assert sorted(plain) == sorted(recent)


def _scored(ids: list[str]) -> list[ScoredRecord]:
    return [ScoredRecord(MemoryRecord(id=i, user_id="u", text=i, session_id=i[0]), 1.0) for i in ids]


def test_weighted_rrf_and_k() -> None:
    signals = {"dense": _scored(["a1", "b1"]), "bm25": _scored(["b1", "a1"])}
    even = fuse_rrf(signals, k=10)
    assert [h.record.id for h in even] == ["a1", "b1"]  # tie broken by best rank, then id
    assert even[0].score == pytest.approx(1 / 11 + 1 / 12)
    weighted = fuse_rrf(signals, k=10, weights={"bm25": 2.0})
    assert [h.record.id for h in weighted] == ["b1", "a1"]


def test_session_diversity_spreads_the_top_over_sessions() -> None:
    hits = fuse_rrf({"dense": _scored(["a1", "a2", "a3", "b1"])}, k=1)
    assert [h.record.id for h in diversify_sessions(hits, 0.3, 4)] == ["a1", "b1", "a2", "a3"]
    assert [h.record.id for h in diversify_sessions(hits, 1.0, 4)] == ["a1", "a2", "a3", "b1"]
