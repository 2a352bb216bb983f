"""Which BM25 tokenization finds a word inside a sentence, per language (the measurement behind remem.stores.bm25).

A small hand-written probe set: 8 everyday sentences in each of Chinese, Japanese, Korean, Thai, German,
French and Spanish (56 memories in one index), and 12-13 query words per language, each a word of one
sentence (one-character CJK words, Korean particles, Thai tone marks, accents typed or not). For every
tokenization the script ranks all 56 sentences by BM25 (Qdrant's ``Bm25`` document weights, Qdrant's IDF
formula) and reports hit@1 (the sentence containing the word is ranked first, alone) and ``other`` (how many
other sentences score above zero, summed over the queries: partial matches that would enter a fused ranking).
A word that occurs in two languages' sentences (``café``, ``猫``) counts as a miss for all methods.

    python benchmarks/bm25_languages.py
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Any

import qdrant_edge as q

from remem.stores import bm25

# language -> (sentences, [(query word, index of the sentence that contains it)])
DATA: dict[str, tuple[list[str], list[tuple[str, int]]]] = {
"zh": (["我每天早上喝绿茶", "他喜欢在办公室喝咖啡", "我们下个月去北京旅行", "我的猫叫豆腐", "她对花生过敏", "周末我和朋友踢足球", "我昨天买了一辆新自行车", "我妹妹在上海学医"],
       [("绿茶", 0), ("咖啡", 1), ("北京", 2), ("猫", 3), ("花生", 4), ("足球", 5), ("自行车", 6), ("上海", 7), ("旅行", 2), ("过敏", 4), ("茶", 0), ("医", 7)]),
"ja": (["私は毎朝緑茶を飲みます", "彼は会社でコーヒーを飲む", "来月東京に引っ越します", "うちの猫はタマという名前です", "彼女はピーナッツアレルギーです", "週末に友達とサッカーをします", "昨日新しい自転車を買いました", "妹は大阪で医学を勉強している"],
       [("緑茶", 0), ("コーヒー", 1), ("東京", 2), ("猫", 3), ("ピーナッツ", 4), ("サッカー", 5), ("自転車", 6), ("大阪", 7), ("引っ越し", 2), ("アレルギー", 4), ("買い", 6), ("医学", 7)]),
"ko": (["저는 매일 아침 녹차를 마셔요", "그는 회사에서 커피를 마신다", "다음 달에 서울로 이사해요", "우리 고양이 이름은 두부예요", "그녀는 땅콩 알레르기가 있어요", "주말에 친구들과 축구를 해요", "어제 새 자전거를 샀어요", "여동생은 부산에서 의학을 공부해요"],
       [("녹차", 0), ("커피", 1), ("서울", 2), ("고양이", 3), ("땅콩", 4), ("축구", 5), ("자전거", 6), ("부산", 7), ("이사", 2), ("알레르기", 4), ("의학", 7), ("친구", 5)]),
"th": (["ฉันดื่มชาเขียวทุกเช้า", "เขาชอบดื่มกาแฟที่ออฟฟิศ", "เดือนหน้าเราจะไปเที่ยวเชียงใหม่", "แมวของฉันชื่อเต้าหู้", "เธอแพ้ถั่วลิสง", "วันเสาร์ฉันเล่นฟุตบอลกับเพื่อน", "เมื่อวานฉันซื้อจักรยานคันใหม่", "น้องสาวของฉันเรียนแพทย์ที่กรุงเทพ"],
       [("ชาเขียว", 0), ("กาแฟ", 1), ("เชียงใหม่", 2), ("แมว", 3), ("ถั่วลิสง", 4), ("ฟุตบอล", 5), ("จักรยาน", 6), ("กรุงเทพ", 7), ("เที่ยว", 2), ("แพ้", 4), ("แพทย์", 7), ("เพื่อน", 5)]),
"de": (["Ich trinke jeden Morgen grünen Tee", "Er trinkt im Büro nur Kaffee", "Nächsten Monat ziehen wir nach München", "Unsere Katze heißt Tofu", "Sie ist allergisch gegen Erdnüsse", "Am Wochenende spiele ich Fußball mit Freunden", "Gestern habe ich ein neues Fahrrad gekauft", "Meine Schwester studiert Medizin in Köln"],
       [("Tee", 0), ("Kaffee", 1), ("München", 2), ("Katze", 3), ("Erdnüsse", 4), ("Fußball", 5), ("Fahrrad", 6), ("Köln", 7), ("Muenchen", -1), ("Fussball", 5), ("Büro", 1), ("Buro", 1), ("Medizin", 7), ("grünen", 0)]),
"fr": (["Je bois du thé vert chaque matin", "Il ne boit que du café au bureau", "Le mois prochain nous déménageons à Montréal", "Notre chat s'appelle Tofu", "Elle est allergique aux cacahuètes", "Le week-end je joue au football avec des amis", "Hier j'ai acheté un nouveau vélo", "Ma sœur étudie la médecine à Genève"],
       [("thé", 0), ("café", 1), ("Montréal", 2), ("chat", 3), ("cacahuètes", 4), ("football", 5), ("vélo", 6), ("Genève", 7), ("velo", 6), ("cafe", 1), ("médecine", 7), ("sœur", 7), ("déménageons", 2)]),
"es": (["Bebo té verde todas las mañanas", "Él solo toma café en la oficina", "El mes que viene nos mudamos a Málaga", "Nuestro gato se llama Tofu", "Ella es alérgica a los cacahuetes", "Los fines de semana juego al fútbol con amigos", "Ayer compré una bicicleta nueva", "Mi hermana estudia medicina en Sevilla"],
       [("té", 0), ("café", 1), ("Málaga", 2), ("gato", 3), ("cacahuetes", 4), ("fútbol", 5), ("bicicleta", 6), ("Sevilla", 7), ("futbol", 5), ("mañanas", 0), ("mañana", 0), ("alérgica", 4), ("amigos", 5)]),
}


Embed = Callable[[str], Any]


def methods() -> dict[str, tuple[Embed, Embed]]:
    english = q.Bm25(q.Bm25Config(language="english"))
    multi = q.Bm25(q.Bm25Config(tokenizer=q.TokenizerType.Multilingual, language="english"))
    model = bm25.bm25_model()

    def terms(text: str, query: bool = False) -> str:
        return " ".join(bm25.analyze(text, query=query))

    def bigrams_only(text: str) -> str:  # the same analysis without single CJK characters
        out = []
        for word in bm25.analyze(text):
            if len(word) == 1 and bm25.script_class(word) == bm25.CJK:
                continue
            out.append(word)
        return " ".join(out)

    return {
        "qdrant word (remem before)": (english.embed_document, english.embed_query),
        "qdrant multilingual": (multi.embed_document, multi.embed_query),
        "remem, CJK bigrams only": (lambda t: model.embed_document(bigrams_only(t)),
                                    lambda t: model.embed_query(" ".join(bm25.analyze(t, query=True)))),
        "remem, CJK uni+bigrams": (lambda t: model.embed_document(terms(t)),
                                   lambda t: model.embed_query(terms(t))),
        "remem (uni+bigrams, bigram queries)": (lambda t: model.embed_document(terms(t)),
                                                lambda t: model.embed_query(terms(t, query=True))),
    }


def scores(doc: Embed, query: Embed, corpus: list[str], text: str) -> list[float]:
    vectors = [doc(t) for t in corpus]
    df = collections.Counter(i for v in vectors for i in set(v.indices))
    wanted = set(query(text).indices)
    n = len(corpus)
    return [
        sum(w * math.log((n - df[i] + 0.5) / (df[i] + 0.5) + 1) for i, w in zip(v.indices, v.values, strict=True)
            if i in wanted)
        for v in vectors
    ]


def main() -> None:
    corpus = [s for sentences, _ in DATA.values() for s in sentences]
    print(f"{'tokenization':38s}" + "".join(f"{lang:>8s}" for lang in DATA) + f"{'all':>9s}{'other':>7s}")
    for name, (doc, query) in methods().items():
        cells, hits, total, other = [], 0, 0, 0
        for sentences, cases in DATA.values():
            ok = 0
            for word, index in cases:
                if index < 0:
                    continue
                s = scores(doc, query, corpus, word)
                target = corpus.index(sentences[index])
                ok += s[target] > 0 and all(x < s[target] for i, x in enumerate(s) if i != target)
                other += sum(1 for i, x in enumerate(s) if x > 0 and i != target)
                total += 1
            cells.append(f"{ok}/{sum(1 for _, i in cases if i >= 0)}")
            hits += ok
        print(f"{name:38s}" + "".join(f"{c:>8s}" for c in cells) + f"{hits:>5d}/{total:<3d}{other:>7d}")


if __name__ == "__main__":
    main()
