"""The SID + dense hybrid behind the contract (`recsys.hybrid`), reported beside SID-generative."""

from __future__ import annotations

from dataclasses import asdict

from recsys.hybrid import HybridConfig, SidHybridModel
from recsys.models.sid_generative import SidGenerative


class SidHybrid(SidGenerative):
    """Ranks the union of the SID model's and the dense head's top candidates by
    log p_sid + hybrid_dense_weight * log p_dense. Not in the default model list: name it in --models."""

    name = "sid-hybrid"
    module_class = SidHybridModel
    settings = ("split", "backbone", "training", "head_hidden", "head_advance", "head_attend", "hybrid_dense_weight",
                "hybrid_candidates")
    runs_by_default = False

    def build_module(self) -> SidHybridModel:
        cfg, sids = self.context.config, self.context.sids
        config = HybridConfig(**asdict(cfg.backbone), vocab_sizes=tuple(int(v) + 1 for v in sids.max(0)),
                              num_items=self.context.catalogue.size, dense_weight=cfg.hybrid_dense_weight,
                              candidates=cfg.hybrid_candidates, head_hidden=cfg.head_hidden,
                              head_advance=cfg.head_advance, head_attend=cfg.head_attend)
        return SidHybridModel(config, item_sids=sids)

    def reason(self, item: int, score: float, history: object, run: object) -> str:
        return f"log p_sid + weighted log p_dense {score:.2f}"
