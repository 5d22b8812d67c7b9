"""SID prefix labels: c-TF-IDF on hand-computed cases, dominant genres, the table's shape."""

import numpy as np
import pandas as pd

from recsys.evaluation.labels import class_tfidf, label_prefixes, prefix_strings, title_words


def test_class_tfidf_ranks_by_the_formula():
    # counts a:(2, 0) b:(1, 1) c:(0, 1); |c| = 3, 2; A = 2.5; f = a 2, b 2, c 1
    # w(a,0) = 2/3 log(1 + 2.5/2) = .541 > w(b,0) = .270;  w(c,1) = 1/2 log(1 + 2.5) = .626 > w(b,1) = .405
    assert class_tfidf([["a", "a", "b"], ["b", "c"]], top=2) == [["a", "b"], ["c", "b"]]
    # a minimum count per class drops words seen once in class 0
    assert class_tfidf([["a", "a", "b"], ["b", "c"]], top=2, min_count=[2, 1]) == [["a"], ["c", "b"]]


def test_title_words_drop_year_and_stop_words():
    assert title_words("Shining, The (1980)") == ["shining"]
    assert title_words("Love and Death on Long Island (1997)") == ["love", "death", "long", "island"]


def test_prefix_labels_name_dominant_genres_and_most_rated_titles():
    movies = pd.DataFrame({
        "title": ["Space Robots (1990)", "Space Cats (1991)", "Robots Again (1992)", "Love Story (1970)",
                  "Love Actually (2003)"],
        "genres": [["Sci-Fi", "Comedy"], ["Sci-Fi"], ["Sci-Fi", "Action"], ["Romance"], ["Romance", "Comedy"]],
    })
    sids = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 0, 1]])
    labels = label_prefixes(movies, sids, popularity=np.array([1, 5, 3, 2, 9]), top_titles=2)
    assert labels["prefix"].tolist() == ["0", "0-0", "0-1", "1", "1-0"]  # tree order
    assert labels["size"].tolist() == [3, 2, 1, 2, 2]
    first = labels.iloc[0]
    assert list(first["genres"]) == ["Sci-Fi", "Comedy"] and np.allclose(first["genre_share"], [1, 0.333])
    assert list(first["titles"]) == ["Space Cats (1991)", "Robots Again (1992)"]  # most rated first
    assert first["label"].startswith("Sci-Fi, Comedy · ")
    assert labels.iloc[3]["label"].startswith("Romance")
    assert prefix_strings(sids, 2).tolist() == ["0-0", "0-0", "0-1", "1-0", "1-0"]
