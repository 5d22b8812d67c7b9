"""The SID + dense hybrid behind the contract (`recsys.nets.hybrid`), reported beside SID-generative."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from recsys.models.sid_generative import SidGenerative, SidHeadConfig
from recsys.nets.hybrid import HybridConfig, SidHybridModel
from rqsid.settings import require_positive_int


@dataclass(kw_only=True)
class SidHybridConfig(SidHeadConfig):
    """The hybrid's settings: the SID head's, and how the dense side re-scores (`recsys.nets.hybrid`)."""

    hybrid_dense_weight: float = 1.0  # weight of the dense log-probability
    hybrid_candidates: int = 100  # each side's top candidates re-scored

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hybrid_dense_weight < 0:
            raise ValueError(f"hybrid_dense_weight must be >= 0, got {self.hybrid_dense_weight!r}")
        require_positive_int("hybrid_candidates", self.hybrid_candidates)


class SidHybrid(SidGenerative):
    """Ranks the union of the SID model's and the dense head's top candidates by
    log p_sid + hybrid_dense_weight * log p_dense. Not in the default model list: name it in --models."""

    name = "sid-hybrid"
    module_class = SidHybridModel
    settings_class = SidHybridConfig
    runs_by_default = False
    net_config_class = HybridConfig

    def network_settings(self) -> dict:
        """The SID head's settings and the hybrid's own (its id embedding is always on; it never beams)."""
        own = self.own_settings
        head = {key: value for key, value in asdict(own).items() if key.startswith("head_")}
        return {**head, "dense_weight": own.hybrid_dense_weight, "candidates": own.hybrid_candidates}

    def reason(self, item: int, score: float, history: object, run: object) -> str:
        return f"log p_sid + weighted log p_dense {score:.2f}"
