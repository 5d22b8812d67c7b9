"""The SID-generative model behind the contract: generates the next movie's Semantic ID."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from recsys.evaluation.evaluate import TOP_K
from recsys.models.neural import NeuralRecommender
from recsys.nets.generative import HEAD_ADVANCES, HEAD_SOFTMAXES, GenerativeConfig, SidGenerativeModel

if TYPE_CHECKING:
    from recsys.models.config import RecommenderConfig


@dataclass(kw_only=True)
class SidHeadConfig:
    """The SID head's settings (`recsys.nets.generative`), shared by SID-generative and the hybrid: a
    `--set head_...` key sets both."""

    head_hidden: int = 0  # width of each level's MLP, 0 = 2 * d_model
    head_advance: str = "add"  # how a chosen code moves its state
    head_attend: int = 0  # attend to the history's last K states at every level, 0 = not
    # an output vector per real child of a prefix, softmax over children; the default since its ML-1M
    # validation row (results/ml-1m/ablations/README.md); false = the earlier codebook head
    head_nodes: bool = True
    head_softmax: str = "codebook"  # each level's softmax over the codebook or the prefix's children

    def __post_init__(self) -> None:
        if self.head_advance not in HEAD_ADVANCES:
            raise ValueError(f"head_advance must be one of {HEAD_ADVANCES}, got {self.head_advance!r}")
        if self.head_softmax not in HEAD_SOFTMAXES:
            raise ValueError(f"head_softmax must be one of {HEAD_SOFTMAXES}, got {self.head_softmax!r}")
        if not isinstance(self.head_nodes, bool):
            raise ValueError(f"head_nodes must be true or false, got {self.head_nodes!r}")
        if not isinstance(self.head_hidden, int) or self.head_hidden < 0:
            raise ValueError(f"head_hidden must be an integer >= 0 (0 = 2 * d_model), got {self.head_hidden!r}")
        if not isinstance(self.head_attend, int) or self.head_attend < 0:
            raise ValueError(f"head_attend must be an integer >= 0, got {self.head_attend!r}")

    def check_with(self, config: RecommenderConfig) -> None:
        """What depends on the run-wide settings: the attended window fits in the history."""
        if self.head_attend > config.backbone.max_len:
            raise ValueError(f"head_attend must be an integer in [0, max_len {config.backbone.max_len}], got "
                             f"{self.head_attend!r}")


@dataclass(kw_only=True)
class SidGenerativeConfig(SidHeadConfig):
    """SID-generative's settings: the head's, the input item-id embedding and the ranking."""

    item_embedding: bool = True  # add a learned id embedding to each input item
    beam_size: int = 0  # ranking: 0 = exact over the whole catalogue, else a beam of this width

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.beam_size, int) or self.beam_size < 0:
            raise ValueError(f"beam_size must be 0 (exact scoring) or a positive beam width, got {self.beam_size!r}")
        if 0 < self.beam_size < TOP_K:
            raise ValueError(f"beam_size {self.beam_size} is below the {TOP_K} items ranked per user: a beam "
                             f"narrower than K cuts the top K short; use >= {TOP_K} or 0 (exact)")


class SidGenerative(NeuralRecommender):
    """Ranks by log p(SID | history): exact over the whole catalogue (beam_size = 0, the default) or by
    constrained beam search of width beam_size (`recsys.nets.generative.SidGenerativeModel.recommend`)."""

    name = "sid-generative"
    module_class = SidGenerativeModel
    settings_class = SidGenerativeConfig
    explains_by_sid_prefix = True
    net_config_class = GenerativeConfig

    def network_settings(self) -> dict:
        """The network config's fields that come from the run's settings (beside backbone and catalogue)."""
        return asdict(self.own_settings)

    def build_module(self) -> SidGenerativeModel:
        cfg, sids = self.context.config, self.context.sids
        config = self.net_config_class(**asdict(cfg.backbone), vocab_sizes=tuple(int(v) + 1 for v in sids.max(0)),
                                   num_items=self.context.catalogue.size, **self.network_settings())
        return self.module_class(config, item_sids=sids)

    def reason(self, item: int, score: float, history: np.ndarray, run: object) -> str:
        return f"log-probability {score:.2f}"
