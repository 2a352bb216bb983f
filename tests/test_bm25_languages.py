"""Keyword (BM25) search finds a word inside a sentence in every language, on both Qdrant backends and the
Markdown store.

The memories are one everyday sentence per topic in Chinese, Japanese, Korean, Thai, German, French, Spanish
and English; each query is a word of exactly one of them (issue 8: an unspaced CJK run used to be one token,
so ``绿茶`` never matched ``我每天早上喝绿茶``). Hybrid search (default embedder, English-only MiniLM) must rank
the same memory first: BM25 now carries the signal the dense model lacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from remem import Memory
from remem.stores.bm25 import analyze, cjk_terms, fold_accents, runs
from remem.stores.qdrant import QdrantStore

USER = "polyglot"

MEMORIES = [
    "我每天早上喝绿茶",
    "他喜欢在办公室喝咖啡",
    "我们下个月去北京旅行",
    "我的猫叫豆腐",
    "私は毎朝コーヒーを飲みます",
    "来月東京に引っ越します",
    "昨日新しい自転車を買いました",
    "저는 매일 아침 녹차를 마셔요",
    "다음 달에 서울로 이사해요",
    "그녀는 땅콩 알레르기가 있어요",
    "ฉันดื่มน้ำเปล่าทุกเช้า",
    "เดือนหน้าเราจะไปเที่ยวเชียงใหม่",
    "เธอแพ้ถั่วลิสง",
    "Am Wochenende spiele ich Fußball mit Freunden",
    "Nächsten Monat ziehen wir nach München",
    "Meine Schwester studiert Medizin in Köln",
    "Elle préfère le thé vert le matin",
    "Hier j'ai acheté un nouveau vélo",
    "Notre chat s'appelle Tofu",
    "Los fines de semana juego al fútbol con amigos",
    "Ella es alérgica a los cacahuetes",
    "Mi hermana estudia medicina en Sevilla",
    "Alice drinks coffee only at work",
    "Bob repaired his bicycle yesterday",
]

# (query, the memory it is a word of). Latin-script queries include unaccented spellings (not found before).
CASES = [
    ("绿茶", "我每天早上喝绿茶"),
    ("咖啡", "他喜欢在办公室喝咖啡"),
    ("北京", "我们下个月去北京旅行"),
    ("猫", "我的猫叫豆腐"),  # a one-character word
    ("コーヒー", "私は毎朝コーヒーを飲みます"),
    ("東京", "来月東京に引っ越します"),
    ("自転車", "昨日新しい自転車を買いました"),
    ("녹차", "저는 매일 아침 녹차를 마셔요"),  # particle 를 attached
    ("서울", "다음 달에 서울로 이사해요"),
    ("땅콩", "그녀는 땅콩 알레르기가 있어요"),
    ("น้ำ", "ฉันดื่มน้ำเปล่าทุกเช้า"),  # a tone mark inside the word
    ("เชียงใหม่", "เดือนหน้าเราจะไปเที่ยวเชียงใหม่"),
    ("ถั่วลิสง", "เธอแพ้ถั่วลิสง"),
    ("Fußball", "Am Wochenende spiele ich Fußball mit Freunden"),
    ("Fussball", "Am Wochenende spiele ich Fußball mit Freunden"),
    ("München", "Nächsten Monat ziehen wir nach München"),
    ("munchen", "Nächsten Monat ziehen wir nach München"),
    ("Köln", "Meine Schwester studiert Medizin in Köln"),
    ("thé", "Elle préfère le thé vert le matin"),  # folds to the English stop word "the": kept as is
    ("velo", "Hier j'ai acheté un nouveau vélo"),
    ("vélo", "Hier j'ai acheté un nouveau vélo"),
    ("fútbol", "Los fines de semana juego al fútbol con amigos"),
    ("futbol", "Los fines de semana juego al fútbol con amigos"),
    ("alérgica", "Ella es alérgica a los cacahuetes"),
    ("coffee", "Alice drinks coffee only at work"),
]


@pytest.fixture(scope="module", params=["edge", "qdrant", "pgvector", "markdown"])
def memory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Memory]:
    home = tmp_path_factory.mktemp(f"lang-{request.param}")
    store: QdrantStore | str | None = (QdrantStore(":memory:", 384) if request.param == "qdrant"
                                       else "markdown" if request.param == "markdown" else None)
    url = None
    if request.param == "pgvector":  # BM25 postings in Postgres, the same analysis
        from conftest import create_database

        store, url = "pgvector", create_database(request.getfixturevalue("postgres_server"))
    with Memory(home, store=store, database_url=url) as mem:  # the default (English) local embedder
        for text in MEMORIES:
            mem.add(text, user_id=USER)
        yield mem


def test_the_handed_example_verbatim(tmp_path: Path) -> None:
    with Memory(tmp_path, embedder="fake") as mem:
        memory_id = mem.add("我每天早上喝绿茶", user_id="u").added[0].memory_id
        hits = mem.search("绿茶", user_id="u", mode="bm25")
        assert [h.record.id for h in hits] == [memory_id]
        assert [h.record.text for h in hits] == ["我每天早上喝绿茶"]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bm25_finds_the_word_inside_its_sentence(memory: Memory, query: str, expected: str) -> None:
    hits = memory.search(query, user_id=USER, mode="bm25", limit=3, expand_neighbors=0)
    assert hits[0].record.text == expected
    assert "bm25" in hits[0].signals


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_hybrid_ranks_it_first_too(memory: Memory, query: str, expected: str) -> None:
    hits = memory.search(query, user_id=USER, limit=3, expand_neighbors=0)
    assert hits[0].record.text == expected
    assert hits[0].ranks["bm25"] == 1


def test_every_backend_gives_the_same_bm25_scores(tmp_path: Path, postgres_url: str) -> None:
    """edge, qdrant and pgvector (one user: its per-user IDF is the collection's) score alike."""
    scores = []
    for i, store in enumerate((None, QdrantStore(":memory:", 64), "pgvector")):
        url = postgres_url if store == "pgvector" else None
        with Memory(tmp_path / str(i), embedder="fake", store=store, database_url=url) as mem:
            for text in MEMORIES:
                mem.add(text, user_id=USER)
            scores.append([
                [(h.record.text, round(h.signals["bm25"], 4)) for h in
                 mem.search(q, user_id=USER, mode="bm25", limit=5, expand_neighbors=0)]
                for q, _ in CASES
            ])
    assert scores[0] == scores[1] == scores[2]


# -- the analyzer ------------------------------------------------------------------------------------------
def test_cjk_runs_become_characters_and_bigrams() -> None:
    assert cjk_terms("绿茶") == ["绿", "茶", "绿茶"]
    assert analyze("我喝绿茶") == ["我", "喝", "绿", "茶", "我喝", "喝绿", "绿茶"]
    assert analyze("녹차를 마셔요") == ["녹", "차", "를", "녹차", "차를", "마", "셔", "요", "마셔", "셔요"]
    assert analyze("ブレ・ラテ") == ["ブ", "レ", "ブレ", "ラ", "テ", "ラテ"]  # the middle dot separates
    assert analyze("買った iPhone15 ｶﾒﾗ") == ["買", "っ", "た", "買っ", "った", "iphone15", "カ", "メ", "ラ",
                                               "カメ", "メラ"]


def test_thai_lao_khmer_are_segmented_into_dictionary_words() -> None:
    assert analyze("ฉันดื่มน้ำเปล่าทุกเช้า") == ["ฉัน", "ดื่ม", "น้ํา", "เปล่า", "ทุก", "เช้า"]
    assert analyze("ຂ້ອຍດື່ມຊາຂຽວ") == ["ຂ້ອຍ", "ດື່ມ", "ຊາ", "ຂຽວ"]
    assert analyze("ខ្ញុំផឹកតែបៃតង") == ["ខ្ញុំ", "ផឹក", "តែ", "បៃតង"]


def test_latin_words_are_folded_unless_that_makes_a_stop_word() -> None:
    assert analyze("Elle préfère le thé, n'est-ce pas?") == ["elle", "prefere", "le", "thé", "n", "est", "ce",
                                                              "pas"]
    assert analyze("Straße ＡＢＣ Καφές") == ["strasse", "abc", "καφεσ"]
    assert analyze("Tôi thích ăn phở") == ["toi", "thich", "ăn", "pho"]  # "an" is a stop word: "ăn" stays
    assert analyze("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]  # Devanagari vowel signs are not folded
    assert fold_accents("crème brûlée") == "creme brulee"


def test_english_terms_are_those_of_qdrants_word_tokenizer() -> None:
    assert analyze("Alice's dog didn't bark at 7:30 (really)!") == ["alice", "s", "dog", "didn", "t", "bark",
                                                                     "at", "7", "30", "really"]
    assert list(runs("I ❤️ tea")) == [("word", "I"), ("word", "tea")]  # U+FE0F joins no word
