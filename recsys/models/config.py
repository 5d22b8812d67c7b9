"""Every setting of a run's recommend stage (`RecommenderConfig`), flat `--set key=value` overrides routed
to it (`recommender_config`), and the dict that models' stage records hold (`config_dict`). Importable
without Lightning or FAISS."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recsys.evaluation.evaluate import TOP_K
from recsys.models import DEFAULT_MODELS, MODELS
from recsys.models.ranking import DEFAULT_DECAY, INDEX_KINDS
from recsys.nets.backbone import BackboneConfig
from recsys.nets.generative import HEAD_ADVANCES, HEAD_SOFTMAXES
from recsys.train.config import TrainingConfig
from rqsid.settings import route


@dataclass
class RecommenderConfig:
    split: str = "leave-one-out"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)  # shared by both learned models
    training: TrainingConfig = field(default_factory=TrainingConfig)
    item_embedding: bool = True  # SID-generative: add a learned id embedding to each input item
    head_hidden: int = 0  # SID head: width of each level's MLP, 0 = 2 * d_model
    head_advance: str = "add"  # SID head: how a chosen code moves its state (`recsys.nets.generative`)
    head_attend: int = 0  # SID head: attend to the history's last K states at every level, 0 = not
    # SID head: an output vector per real child of a prefix, softmax over children; the default since its
    # ML-1M validation row (results/ml-1m/ablations/README.md); false = the earlier codebook head
    head_nodes: bool = True
    head_softmax: str = "codebook"  # SID head: each level's softmax over the codebook or the prefix's children
    beam_size: int = 0  # SID-generative ranking: 0 = exact over the whole catalogue, else a beam of this width
    content_decay: float = DEFAULT_DECAY
    content_index: str = "flat"  # FAISS index of the content baseline: "flat" (exact) or "hnsw" (approximate)
    # The count-based baselines' defaults are their best validation settings on ML-1M
    # (bench/results/tune-simple-ml-1m.json); presets may override them.
    itemknn_neighbours: int = 100  # item-kNN: similar items kept per item
    itemknn_decay: float = 0.5  # item-kNN: weight of a history item = decay ** (its age), 1 = plain sum
    markov_last: int = 10  # Markov: how many of the last history items vote for the next one
    markov_decay: float = 0.5  # Markov: weight of the a-th last item = decay ** a
    # sid-hybrid (`recsys.nets.hybrid`): weight of the dense log-probability, and each side's candidates re-scored
    hybrid_dense_weight: float = 1.0
    hybrid_candidates: int = 100
    models: tuple[str, ...] = DEFAULT_MODELS
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.models) - set(MODELS)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {MODELS}")
        if self.content_index not in INDEX_KINDS:
            raise ValueError(f"content_index must be one of {INDEX_KINDS}, got {self.content_index!r}")
        if not isinstance(self.beam_size, int) or self.beam_size < 0:
            raise ValueError(f"beam_size must be 0 (exact scoring) or a positive beam width, got {self.beam_size!r}")
        if 0 < self.beam_size < TOP_K:
            raise ValueError(f"beam_size {self.beam_size} is below the {TOP_K} items ranked per user: a beam "
                             f"narrower than K cuts the top K short; use >= {TOP_K} or 0 (exact)")
        for name in ("itemknn_decay", "markov_decay", "content_decay"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        if self.head_advance not in HEAD_ADVANCES:
            raise ValueError(f"head_advance must be one of {HEAD_ADVANCES}, got {self.head_advance!r}")
        if self.hybrid_dense_weight < 0:
            raise ValueError(f"hybrid_dense_weight must be >= 0, got {self.hybrid_dense_weight!r}")
        if not isinstance(self.head_attend, int) or not 0 <= self.head_attend <= self.backbone.max_len:
            raise ValueError(f"head_attend must be an integer in [0, max_len {self.backbone.max_len}], got "
                             f"{self.head_attend!r}")
        if self.head_softmax not in HEAD_SOFTMAXES:
            raise ValueError(f"head_softmax must be one of {HEAD_SOFTMAXES}, got {self.head_softmax!r}")
        if not isinstance(self.head_nodes, bool):
            raise ValueError(f"head_nodes must be true or false, got {self.head_nodes!r}")
        if not isinstance(self.head_hidden, int) or self.head_hidden < 0:
            raise ValueError(f"head_hidden must be an integer >= 0 (0 = 2 * d_model), got {self.head_hidden!r}")
        for name in ("itemknn_neighbours", "markov_last", "hybrid_candidates"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")


def config_dict(cfg: RecommenderConfig) -> dict:
    out = asdict(cfg)
    out.pop("progress")
    out["training"].pop("trainer", None)
    return out


def recommender_config(overrides: dict, *, seed: int | None = None, trainer: dict | None = None,
                       **base: object) -> RecommenderConfig:
    """A RecommenderConfig from flat `key=value` overrides, each checked against its field's type and
    routed to the backbone, the training or the top-level config (`rqsid.settings.route`). `seed` and
    `trainer` (Lightning flags) go to the training config as given, so that nothing patches it later."""
    nested = {"backbone", "training"} & set(overrides)
    if nested:
        raise ValueError(f"set the fields of {sorted(nested)} one by one (e.g. lr=0.002), not as a whole")
    routed = route(overrides, {"backbone": BackboneConfig, "training": TrainingConfig, "top": RecommenderConfig},
                   what="recommender setting")
    top = {**base, **routed["top"]}
    if "models" in top:
        top["models"] = tuple(top["models"])
    fixed = {key: value for key, value in (("seed", seed), ("trainer", trainer)) if value is not None}
    return RecommenderConfig(backbone=BackboneConfig(**routed["backbone"]),
                             training=TrainingConfig(**{**routed["training"], **fixed}), **top)
