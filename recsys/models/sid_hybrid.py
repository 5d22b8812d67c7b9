"""The SID + dense hybrid behind the contract (`recsys.nets.hybrid`), reported beside SID-generative."""

from __future__ import annotations

from recsys.models.sid_generative import SidGenerative
from recsys.nets.hybrid import HybridConfig, SidHybridModel


class SidHybrid(SidGenerative):
    """Ranks the union of the SID model's and the dense head's top candidates by
    log p_sid + hybrid_dense_weight * log p_dense. Not in the default model list: name it in --models."""

    name = "sid-hybrid"
    module_class = SidHybridModel
    settings = ("split", "backbone", "training", "head_hidden", "head_advance", "head_attend", "head_nodes",
                "head_softmax", "hybrid_dense_weight", "hybrid_candidates")
    runs_by_default = False
    config_class = HybridConfig

    def network_settings(self) -> dict:
        """The SID head's settings and the hybrid's own (its id embedding is always on; it never beams)."""
        cfg = self.context.config
        head = {key: value for key, value in super().network_settings().items() if key.startswith("head_")}
        return {**head, "dense_weight": cfg.hybrid_dense_weight, "candidates": cfg.hybrid_candidates}

    def reason(self, item: int, score: float, history: object, run: object) -> str:
        return f"log p_sid + weighted log p_dense {score:.2f}"
