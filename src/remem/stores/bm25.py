"""BM25 sparse vectors in every language: remem's text analysis, then Qdrant's own ``Bm25`` (qdrant-edge).

Both stores (``edge`` and ``qdrant``) compute their sparse vectors here, in Python, so they stay identical.
:func:`analyze` turns a text into index terms, the same way for documents and queries.

Why remem analyses the text itself (measured with qdrant-edge 0.9.0, see the README's "Languages"):

- Qdrant's ``Bm25`` with the ``word`` tokenizer (what remem used before) splits on characters that are not
  letters or digits, so an unspaced run of Chinese, Japanese, Korean or Thai is one token and a word inside a
  sentence is never found (``绿茶`` in ``我每天早上喝绿茶``); it also splits Thai words at tone marks.
- Its ``multilingual`` tokenizer (charabia) segments Chinese and Thai, but picks one language per text: a
  short all-kanji Japanese query is taken for Chinese and converted to other code points (``緑茶`` does not
  match ``私は毎朝緑茶を飲みます``); Korean is not segmented (``녹차`` does not match ``녹차를``); Lao, Khmer and
  Myanmar are not segmented; and it strips accents *before* removing stop words, so French ``thé`` becomes
  the English stop word ``the`` and cannot be searched.

So :func:`analyze` produces the terms and Qdrant's ``Bm25`` (``whitespace`` tokenizer) does the rest exactly
as before: lowercasing, English stop words, the English Snowball stemmer, term weights and hashing. For ASCII
text the vectors are exactly those of the ``word`` tokenizer (checked on the 11,143 texts of the LoCoMo and
LongMemEval dev data: 0 differ), so English ranking is unchanged apart from folded accents.

Per run of word characters (letters, combining marks, digits), after NFKC normalisation (full-width forms,
ligatures) and case folding:

- **Han, Hiragana, Katakana, Hangul**: overlapping character bigrams plus the single characters — the
  standard CJK technique of Lucene's ``CJKBigramFilter`` (``outputUnigrams``). Any word of two or more
  characters is found inside a sentence whatever its context (a Korean particle attached, a Japanese verb
  ending, no language detection needed); single characters find one-character words. Queries use the
  bigrams alone when they have any (:func:`cjk_terms`).
- **Thai, Lao, Khmer, Myanmar** (no spaces between words, no CJK-style short words): the words of ICU's
  dictionary-based word break (``icu4py``, the ICU library that Lucene's ``ICUTokenizer`` uses).
- **every other script** (Latin, Greek, Cyrillic, Arabic, Hebrew, Devanagari, ...): the run itself, with its
  accents removed (Lucene's ``ASCIIFoldingFilter``), so ``cafe`` finds ``café`` and ``Muller`` ``Müller`` —
  unless the folded word is an English stop word: French ``thé`` stays ``thé`` instead of becoming ``the``.
  Folding applies to Latin (Vietnamese included), Greek, Cyrillic, Armenian, Hebrew and Arabic, where marks
  are optional diacritics; in Devanagari and the other Brahmic scripts they are vowels and stay.

No stemming beyond English, no compound splitting (German ``Erdbeerkuchen`` is one term): both need a
per-language dictionary and language detection; the multilingual embedder covers them in hybrid search.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterator
from functools import cache, lru_cache
from itertools import pairwise
from typing import Any

#: Bumped whenever :func:`analyze` changes the terms of any text: stores record it and re-index on a change.
ANALYZER_VERSION = 2

CJK, SEA, WORD = "cjk", "sea", "word"
_ASCII_WORD = re.compile(r"[a-z0-9]+")

# Inclusive code point ranges (Unicode 15 blocks) and the class of their letters.
_RANGES: list[tuple[int, int, str]] = sorted([
    (0x0E00, 0x0E7F, SEA),  # Thai
    (0x0E80, 0x0EFF, SEA),  # Lao
    (0x1000, 0x109F, SEA),  # Myanmar
    (0x1100, 0x11FF, CJK),  # Hangul Jamo
    (0x1780, 0x17FF, SEA),  # Khmer
    (0x19E0, 0x19FF, SEA),  # Khmer Symbols
    (0x2E80, 0x2FDF, CJK),  # CJK / Kangxi radicals
    (0x3005, 0x3007, CJK),  # 々 〆 〇
    (0x3021, 0x3029, CJK),  # Hangzhou numerals
    (0x3031, 0x3035, CJK),  # kana repeat marks
    (0x303B, 0x303C, CJK),  # 〻 〼
    (0x3040, 0x30FF, CJK),  # Hiragana, Katakana (with ー)
    (0x3100, 0x312F, CJK),  # Bopomofo
    (0x3130, 0x318F, CJK),  # Hangul Compatibility Jamo
    (0x31A0, 0x31BF, CJK),  # Bopomofo Extended
    (0x31F0, 0x31FF, CJK),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF, CJK),  # CJK Extension A
    (0x4E00, 0x9FFF, CJK),  # CJK Unified Ideographs
    (0xA960, 0xA97F, CJK),  # Hangul Jamo Extended-A
    (0xA9E0, 0xA9FF, SEA),  # Myanmar Extended-B
    (0xAA60, 0xAA7F, SEA),  # Myanmar Extended-A
    (0xAC00, 0xD7FF, CJK),  # Hangul Syllables, Jamo Extended-B
    (0xF900, 0xFAFF, CJK),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F, CJK),  # half-width Katakana (NFKC maps them to full width first)
    (0x1B000, 0x1B16F, CJK),  # Kana Supplement / Extended
    (0x20000, 0x3FFFF, CJK),  # CJK Extensions B-H, Compatibility Supplement
])
_STARTS = [r[0] for r in _RANGES]


def script_class(char: str) -> str | None:
    """``"cjk"``, ``"sea"`` or ``"word"`` for a word character (letter, mark, digit); ``None`` for others
    (punctuation, symbols, spaces — also those inside the CJK and Thai blocks, such as ``・`` and ``฿``)."""
    if not (char.isalnum() or unicodedata.category(char)[0] == "M"):
        return None
    code = ord(char)
    i = bisect_right(_STARTS, code) - 1
    if i >= 0 and code <= _RANGES[i][1]:
        return _RANGES[i][2]
    return WORD


def runs(text: str) -> Iterator[tuple[str, str]]:
    """Maximal runs of word characters of one class, as ``(class, run)``; everything else separates.

    A combining mark continues the run before it (``é`` written as ``e`` + U+0301); one that follows no word
    character (an emoji's variation selector U+FE0F) separates.
    """
    start, kind = 0, None
    for i, char in enumerate(text):
        cls = script_class(char)
        if cls == WORD and unicodedata.category(char)[0] == "M":
            cls = kind  # a mark belongs to the run it follows, or to none
        if cls != kind:
            if kind is not None:
                yield kind, text[start:i]
            start, kind = i, cls
    if kind is not None:
        yield kind, text[start:]


def cjk_terms(run: str, *, query: bool = False) -> list[str]:
    """The terms of a CJK run: single characters and overlapping bigrams (``绿茶`` -> ``绿``, ``茶``, ``绿茶``).

    A query run of two or more characters gives its bigrams only (Elasticsearch's ``cjk_bigram`` with
    ``output_unigrams_if_no_bigrams``): ``北京`` must not find ``東京`` through the shared ``京`` — with an
    English-only dense model such a partial match, fused by rank, could outrank the real one.
    """
    chars = list(run)
    bigrams = [a + b for a, b in pairwise(chars)]
    if query and bigrams:
        return bigrams
    return chars + bigrams


@cache
def _icu() -> tuple[type, str]:
    from icu4py._version import icu_version
    from icu4py.breakers import WordBreaker

    return WordBreaker, icu_version


def sea_terms(run: str) -> list[str]:
    """The words of a Thai, Lao, Khmer or Myanmar run, from ICU's dictionary-based word break."""
    breaker, _ = _icu()
    return [w for w in breaker(run, "und") if w.strip()]


#: Scripts whose accents are folded: there marks are optional diacritics, often left out when typing. In the
#: Brahmic scripts (Devanagari, Tamil, ...) marks are vowels and must stay.
_FOLDABLE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC", "ARMENIAN", "HEBREW", "ARABIC", "DIGIT")


def fold_accents(word: str) -> str:
    """``word`` without combining marks (NFD, marks dropped, NFC): ``café`` -> ``cafe``, ``Straße`` unchanged."""
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


def analyze(text: str, *, query: bool = False) -> list[str]:
    """The terms of ``text``, in order (see the module docstring for what each script gets).

    ``query=True`` analyses a search query: the same terms, except that a CJK run of two or more characters
    gives no single characters (see :func:`cjk_terms`).
    """
    if text.isascii():  # fast path, same terms: NFKC is the identity, casefold is lower(), nothing to fold
        return _ASCII_WORD.findall(text.lower())
    terms: list[str] = []
    for kind, run in runs(unicodedata.normalize("NFKC", text).casefold()):
        if kind == CJK:
            terms.extend(cjk_terms(run, query=query))
        elif kind == SEA:
            terms.extend(sea_terms(run))
        else:
            terms.append(_folded(run))
    return terms


@lru_cache(maxsize=65536)
def _folded(word: str) -> str:
    """``word`` with its accents folded, unless its script keeps them or folding makes a stop word of it."""
    folded = fold_accents(word)
    if folded == word or not all(
        unicodedata.category(c)[0] == "M" or unicodedata.name(c, "").startswith(_FOLDABLE_SCRIPTS) for c in word
    ):
        return word
    if not bm25_model().embed_query(folded).indices:
        return word  # French "thé" would become the English stop word "the"
    return folded


def signature() -> str:
    """What built a store's sparse vectors: this analyzer's version and the ICU that segments SEA scripts.

    Stores record it (``bm25.json`` beside the edge shard, collection metadata on Qdrant); a store opened with
    another signature recomputes its sparse vectors from the stored text (``reindex_sparse``).
    """
    return f"remem-bm25/{ANALYZER_VERSION} icu/{_icu()[1]} qdrant-bm25/whitespace-english"


#: The signature of stores written before remem recorded one: Qdrant's ``Bm25`` with the ``word`` tokenizer.
LEGACY_SIGNATURE = "qdrant-bm25/word-english"

_BM25: Any = None


def bm25_model() -> Any:
    """Qdrant's own BM25 (``qdrant_edge.Bm25``), configured as for every remem store.

    It receives the terms of :func:`analyze` separated by spaces (``whitespace`` tokenizer) and applies
    lowercasing, English stop words, the English Snowball stemmer and the BM25 term weights (k=1.2, b=0.75,
    avg_len=256); the IDF is the store's (``Modifier.Idf``).
    """
    global _BM25
    if _BM25 is None:
        import qdrant_edge as q

        _BM25 = q.Bm25(q.Bm25Config(tokenizer=q.TokenizerType.Whitespace, language="english"))
    return _BM25


def sparse_document(text: str) -> tuple[list[int], list[float]]:
    """The BM25 document vector of ``text``: (term hashes, BM25 term weights)."""
    vec = bm25_model().embed_document(" ".join(analyze(text)))
    return list(vec.indices), list(vec.values)


def sparse_query(text: str) -> tuple[list[int], list[float]]:
    """The BM25 query vector of ``text``: its distinct term hashes, each with weight 1."""
    vec = bm25_model().embed_query(" ".join(analyze(text, query=True)))
    return list(vec.indices), list(vec.values)
