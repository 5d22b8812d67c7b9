"""The learned dense baseline behind the contract: trained with a full softmax, tested by FAISS search."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from recsys.data.inputs import left_pad
from recsys.models.neural import NeuralRecommender
from recsys.models.ranking import build_index, faiss_topk_excluding
from recsys.nets.dense import DenseConfig, DenseSequentialModel


class FaissDense(NeuralRecommender):
    """SASRec-style: the last state of the shared backbone, searched in an exact FAISS inner-product index
    of the item embeddings. Validation ranks by torch top-k over the same scores; a test checks that
    both give the same ranking."""

    name = "faiss-dense"
    module_class = DenseSequentialModel

    def build_module(self) -> DenseSequentialModel:
        cfg = self.context.config
        return DenseSequentialModel(DenseConfig(**asdict(cfg.backbone), num_items=self.context.catalogue.size))

    def rank_batch(self, histories: list[np.ndarray], exclude: list[np.ndarray], users: np.ndarray,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
        if getattr(self, "_index", None) is None:
            self._index = build_index(self.net.item.weight.detach().cpu().numpy())  # exact inner product
        inputs = torch.as_tensor(left_pad(histories, self.net.config.max_len))
        queries = self.net.eval().user_vectors(inputs, torch.as_tensor(users)).numpy().astype(np.float32)
        return faiss_topk_excluding(queries, self._index, exclude, k)

    def reason(self, item: int, score: float, history: np.ndarray, run: object) -> str:
        return f"dense score {score:.2f} (the user's state vector · the movie's learned embedding)"
