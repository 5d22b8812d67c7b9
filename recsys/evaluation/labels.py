"""What a Semantic ID prefix means: a label for every level-1 and level-1+2 prefix.

A prefix is a group of movies (all movies whose SID starts with it). Its genres are the dominant ones
(the largest shares of the group's movies, at least MIN_GENRE_SHARE). Its words (title words without stop
words, plus user tags where the release has them) are ranked by class-based TF-IDF (c-TF-IDF, as in
BERTopic): the group's movies are pooled into one document, and a term scores

    w(t, c) = tf(t, c) / |c| * log(1 + A / f(t))

with tf(t, c) the count of term t in group c, |c| the group's term count, f(t) the count of t over all
groups and A the average term count per group: frequent in the group, rare elsewhere. In groups of
MIN_GROUP_FOR_REPEATS or more movies a word must occur in two of them, so that one odd title does not
label a group. A label reads "Comedy, Romance · wedding, love"; the group's most-rated movies are its representatives.

    sid_labels.parquet   level | prefix ("12" or "12-5") | size | genres | genre_share | terms | titles | label
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from recsys.data.movielens import TITLE_YEAR
from recsys.data.text import as_list

LABEL_COLUMNS = ["level", "prefix", "size", "genres", "genre_share", "terms", "titles", "label"]
MIN_GENRE_SHARE = 0.25
MIN_GROUP_FOR_REPEATS = 4
WORD = re.compile(r"[a-z][a-z']+")


def prefix_strings(sids: np.ndarray, level: int) -> np.ndarray:
    """(N,) the first `level` tokens of each SID joined by '-', e.g. "12-5"."""
    parts = sids[:, :level].astype(str)
    return np.array(["-".join(row) for row in parts], dtype=object)


def title_words(title: str) -> list[str]:
    """Lower-case words of a title without its "(1995)" year and without English stop words."""
    text = TITLE_YEAR.sub("", title).lower()
    # MovieLens writes "Shining, The": the moved article is a stop word and drops out here.
    return [w for w in WORD.findall(text) if w not in ENGLISH_STOP_WORDS]


def class_tfidf(documents: Sequence[list[str]], top: int, min_count: Sequence[int] | None = None) -> list[list[str]]:
    """The `top` highest-scoring terms of each class document (a list of terms), by the formula above;
    a term counts for class c only if it occurs at least min_count[c] times there."""
    vectorizer = CountVectorizer(analyzer=lambda terms: terms, lowercase=False)
    counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)  # (C, V)
    if counts.shape[1] == 0:
        return [[] for _ in documents]
    terms = vectorizer.get_feature_names_out()
    class_totals = counts.sum(1, keepdims=True)
    tf = counts / np.maximum(class_totals, 1)
    weights = tf * np.log1p(class_totals.mean() / np.maximum(counts.sum(0, keepdims=True), 1))
    if min_count is not None:
        weights[counts < np.asarray(min_count)[:, None]] = 0
    order = np.argsort(-weights, axis=1, kind="stable")[:, :top]
    return [[str(terms[j]) for j in row if weights[i, j] > 0] for i, row in enumerate(order)]


def dominant_genres(genres: list[list[str]], members: list[np.ndarray], top: int) -> list[tuple[list, list]]:
    """Per group: the `top` genres with the largest share of the group's movies (>= MIN_GENRE_SHARE)."""
    out = []
    for rows in members:
        share = pd.Series([g for i in rows for g in genres[i]], dtype=object).value_counts(sort=False) / len(rows)
        share = share[share >= MIN_GENRE_SHARE].sort_values(ascending=False, kind="stable")[:top]
        out.append((share.index.tolist(), share.round(3).tolist()))
    return out


def label_prefixes(movies: pd.DataFrame, sids: np.ndarray, popularity: np.ndarray | None = None,
                   levels: Sequence[int] = (1, 2), top_genres: int = 2, top_terms: int = 3,
                   top_titles: int = 3) -> pd.DataFrame:
    """One row per prefix of each level in `levels` (see the module docstring).

    movies: title, genres (list) and optionally tags (list), in the row order of `sids` (N, T).
    popularity: (N,) e.g. rating counts; representatives are the most popular movies of each group
    (ties and popularity=None: catalogue order).
    """
    if len(movies) != len(sids):
        raise ValueError(f"movies has {len(movies)} rows but sids has {len(sids)}")
    if max(levels) > sids.shape[1]:
        raise ValueError(f"levels {list(levels)} exceed the SID length {sids.shape[1]}")
    popularity = np.zeros(len(movies)) if popularity is None else np.asarray(popularity, dtype=np.float64)
    genres = [as_list(g) for g in movies["genres"]]
    tags = [as_list(t) for t in movies["tags"]] if "tags" in movies else [[] for _ in genres]
    # each word once per movie: "Ladybird Ladybird" must not count as two movies about ladybirds
    words = [list(dict.fromkeys(title_words(t) + [tag.lower() for tag in tg]))
             for t, tg in zip(movies["title"], tags, strict=True)]
    titles = movies["title"].to_numpy()
    frames = []
    for level in levels:
        groups = pd.Series(np.arange(len(movies))).groupby(prefix_strings(sids, level), sort=False)
        members = [np.asarray(rows) for _, rows in groups]
        names = list(groups.groups)
        top_g = dominant_genres(genres, members, top_genres)
        repeats = [2 if len(rows) >= MIN_GROUP_FOR_REPEATS else 1 for rows in members]
        top_w = class_tfidf([[w for i in rows for w in words[i]] for rows in members], top_terms, repeats)
        reps = [titles[rows[np.argsort(-popularity[rows], kind="stable")[:top_titles]]].tolist() for rows in members]
        frames.append(pd.DataFrame({
            "level": np.int8(level), "prefix": names, "size": [len(r) for r in members],
            "genres": [g for g, _ in top_g], "genre_share": [share for _, share in top_g],
            "terms": top_w, "titles": reps,
            "label": [label_text(g, w) for (g, _), w in zip(top_g, top_w, strict=True)],
        }))
    table = pd.concat(frames, ignore_index=True)
    order = table["prefix"].map(lambda p: tuple(int(x) for x in p.split("-")))
    return table.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)[LABEL_COLUMNS]


def label_text(genres: list[str], terms: list[str]) -> str:
    """ "Comedy, Romance · wedding, love" (either part may be empty)."""
    return " · ".join(part for part in (", ".join(genres), ", ".join(terms)) if part) or "(no label)"


def label_lookup(labels: pd.DataFrame) -> dict[str, str]:
    """prefix string -> label, for explanations."""
    return dict(zip(labels["prefix"], labels["label"], strict=True))
