"""FAISS content baseline: the user's recency-weighted mean text embedding, searched among all movies."""

from __future__ import annotations

import numpy as np

from recsys.data.splits import SequenceSplit
from recsys.models.base import Ranking, Recommender, default_exclude
from recsys.models.ranking import build_index, content_user_vectors, faiss_topk_excluding


class FaissContent(Recommender):
    """Learns nothing: scores are cosines between the user's content vector and each movie's embedding
    (`recsys.models.ranking.content_user_vectors`)."""

    name = "faiss-content"
    settings = ("split", "content_decay", "content_index")

    def fit(self, split: SequenceSplit) -> FaissContent:
        return self

    def recommend(self, histories: list[np.ndarray], k: int, *, exclude: list[np.ndarray] | None = None,
                  users: np.ndarray | None = None) -> Ranking:
        if getattr(self, "_index", None) is None:
            self._index = build_index(self.context.embeddings, self.context.config.content_index)
        queries = content_user_vectors(histories, self.context.embeddings, decay=self.context.config.content_decay)
        return Ranking(*faiss_topk_excluding(queries, self._index, default_exclude(histories, exclude), k))

    def reason(self, item: int, score: float, history: np.ndarray, run: object) -> str:
        embeddings = self.context.embeddings
        cosine = embeddings[history] @ embeddings[item]
        closest = history[int(np.argmax(cosine))]
        return (f"text similarity {score:.2f} to your recent movies; closest: "
                f"{run.movies['title'].iloc[closest]} (cosine {cosine.max():.2f})")
