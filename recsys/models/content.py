"""FAISS content baseline: the user's recency-weighted mean text embedding, searched among all movies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.data.splits import SequenceSplit
from recsys.models.base import Ranking, Recommender, default_exclude
from recsys.models.ranking import DEFAULT_DECAY, INDEX_KINDS, build_index, content_user_vectors, faiss_topk_excluding
from rqsid.settings import require_decay


@dataclass(kw_only=True)
class ContentConfig:
    """The content baseline's settings (`recsys.models.ranking.content_user_vectors`)."""

    content_decay: float = DEFAULT_DECAY  # weight of a history item = decay ** (its age)
    content_index: str = "flat"  # FAISS index: "flat" (exact) or "hnsw" (approximate)

    def __post_init__(self) -> None:
        require_decay("content_decay", self.content_decay)
        if self.content_index not in INDEX_KINDS:
            raise ValueError(f"content_index must be one of {INDEX_KINDS}, got {self.content_index!r}")


class FaissContent(Recommender):
    """Learns nothing: scores are cosines between the user's content vector and each movie's embedding
    (`recsys.models.ranking.content_user_vectors`)."""

    name = "faiss-content"
    settings_class = ContentConfig

    def fit(self, split: SequenceSplit) -> FaissContent:
        return self

    def recommend(self, histories: list[np.ndarray], k: int, *, exclude: list[np.ndarray] | None = None,
                  users: np.ndarray | None = None) -> Ranking:
        if getattr(self, "_index", None) is None:
            self._index = build_index(self.context.embeddings, self.own_settings.content_index)
        queries = content_user_vectors(histories, self.context.embeddings, decay=self.own_settings.content_decay)
        return Ranking(*faiss_topk_excluding(queries, self._index, default_exclude(histories, exclude), k))

    def reason(self, item: int, score: float, history: np.ndarray, run: object) -> str:
        embeddings = self.context.embeddings
        cosine = embeddings[history] @ embeddings[item]
        closest = history[int(np.argmax(cosine))]
        return (f"text similarity {score:.2f} to your recent movies; closest: "
                f"{run.movies['title'].iloc[closest]} (cosine {cosine.max():.2f})")
