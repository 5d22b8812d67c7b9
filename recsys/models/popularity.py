"""Most-popular: every user gets the most-rated training items they have not rated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from recsys.data.splits import SequenceSplit
from recsys.models.base import Ranking, Recommender, default_exclude
from recsys.models.ranking import popularity_scores, topk_excluding


class Popularity(Recommender):
    """score(i) = occurrences of item i in the training sequences (never a held-out target)."""

    name = "popularity"

    def fit(self, split: SequenceSplit) -> Popularity:
        self.counts = popularity_scores(split, self.context.catalogue.size)  # (N,)
        return self

    def recommend(self, histories: list[np.ndarray], k: int, *, exclude: list[np.ndarray] | None = None,
                  users: np.ndarray | None = None) -> Ranking:
        return Ranking(*topk_excluding(self.counts, default_exclude(histories, exclude), k))

    def save_arrays(self, path: Path) -> None:
        save_file({"counts": self.counts}, str(path / "model.safetensors"))

    def load_arrays(self, path: Path) -> None:
        self.counts = load_file(str(path / "model.safetensors"))["counts"]

    def reason(self, item: int, score: float, history: np.ndarray, run: object) -> str:
        return f"rated {int(score)} times in the training sequences"
