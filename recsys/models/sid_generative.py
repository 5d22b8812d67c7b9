"""The SID-generative model behind the contract: generates the next movie's Semantic ID."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from recsys.models.neural import NeuralRecommender
from recsys.nets.generative import GenerativeConfig, SidGenerativeModel


class SidGenerative(NeuralRecommender):
    """Ranks by log p(SID | history): exact over the whole catalogue (beam_size = 0, the default) or by
    constrained beam search of width beam_size (`recsys.nets.generative.SidGenerativeModel.recommend`)."""

    name = "sid-generative"
    module_class = SidGenerativeModel
    settings = ("split", "backbone", "training", "item_embedding", "beam_size", "head_hidden", "head_advance",
                "head_attend", "head_nodes", "head_softmax")
    explains_by_sid_prefix = True
    config_class = GenerativeConfig

    def network_settings(self) -> dict:
        """The network config's fields that come from the run's settings (beside backbone and catalogue)."""
        cfg = self.context.config
        return {"item_embedding": cfg.item_embedding, "beam_size": cfg.beam_size, "head_hidden": cfg.head_hidden,
                "head_advance": cfg.head_advance, "head_attend": cfg.head_attend,
                "head_nodes": cfg.head_nodes, "head_softmax": cfg.head_softmax}

    def build_module(self) -> SidGenerativeModel:
        cfg, sids = self.context.config, self.context.sids
        config = self.config_class(**asdict(cfg.backbone), vocab_sizes=tuple(int(v) + 1 for v in sids.max(0)),
                                   num_items=self.context.catalogue.size, **self.network_settings())
        return self.module_class(config, item_sids=sids)

    def reason(self, item: int, score: float, history: np.ndarray, run: object) -> str:
        return f"log-probability {score:.2f}"
