"""A toy Japanese retrieval set: each question was written from one passage."""

from __future__ import annotations

PAIRS = [
    ("日本で一番高い山はどこですか", "富士山は標高3776メートルで、日本で最も高い山である。"),
    ("東京タワーの高さは何メートル", "東京タワーは高さ333メートルの電波塔で、1958年に完成した。"),
    ("ラーメンの起源はどこの国", "ラーメンは中国の麺料理を起源とし、日本で独自に発展した。"),
    ("京都に多い建物は何", "京都には多くの寺院や神社があり、観光客に人気がある。"),
    ("北海道の冬の祭りは", "さっぽろ雪まつりは毎年二月に札幌で開かれる冬の祭りである。"),
    ("沖縄の海で見られる生き物", "沖縄の海にはサンゴ礁が広がり、色とりどりの熱帯魚が泳いでいる。"),
    ("新幹線が開業した年", "東海道新幹線は1964年に開業し、東京と新大阪を結んだ。"),
    ("日本の国花とされる花", "桜は日本を代表する花で、春になると各地で花見が行われる。"),
    ("将棋の駒の数はいくつ", "将棋は二人で対局する盤上遊戯で、それぞれ二十枚の駒を使う。"),
    ("和食がユネスコに登録された年", "和食は2013年にユネスコ無形文化遺産に登録された。"),
    ("日本最大の湖の名前", "琵琶湖は滋賀県にある日本最大の湖で、京阪神の水源である。"),
    ("相撲の最高位の名称", "大相撲の最高位は横綱で、強さと品格が求められる。"),
]

TITLES = ["富士山", "東京タワー", "ラーメン", "京都", "さっぽろ雪まつり", "沖縄", "新幹線", "桜", "将棋", "和食", "琵琶湖",
          "相撲"]


def rows(n_negatives: int = 3) -> list[dict]:
    """Every pair with the next ``n_negatives`` passages (cyclically) as negatives."""
    out = []
    for i, (q, p) in enumerate(PAIRS):
        negs = [PAIRS[(i + j) % len(PAIRS)][1] for j in range(1, n_negatives + 1)]
        out.append({"query": q, "positive": p, "negatives": negs})
    return out


def recall_at_1(model) -> float:
    from tests.oracle import maxsim_matrix

    queries = [q for q, _ in PAIRS]
    passages = [p for _, p in PAIRS]
    scores = maxsim_matrix(model.encode_queries(queries), model.encode_documents(passages))
    return float((scores.argmax(1) == __import__("torch").arange(len(PAIRS))).float().mean())
