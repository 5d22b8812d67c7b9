"""The settings of a run's recommend stage (`RecommenderConfig`): the run-wide ones (split, the learned
models' backbone and training) and each model's own settings, a dataclass defined beside the model
(`Recommender.settings_class`); flat `--set key=value` overrides routed to them (`recommender_config`), and
the dict that the stage's record holds (`config_dict`). Importable without Lightning or FAISS."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from recsys.models import DEFAULT_MODELS, MODELS, REGISTRY
from recsys.nets.backbone import BackboneConfig
from recsys.train.config import TrainingConfig
from rqsid.settings import route


def default_model_settings() -> dict[str, Any]:
    """{model name: its settings class with its defaults}, for every registered model that has one."""
    return {name: model.settings_class() for name, model in REGISTRY.items() if model.settings_class is not None}


@dataclass
class RecommenderConfig:
    split: str = "leave-one-out"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)  # shared by the learned models
    training: TrainingConfig = field(default_factory=TrainingConfig)
    models: tuple[str, ...] = DEFAULT_MODELS
    # each model's own settings, by model name (`Recommender.settings_class`)
    model_settings: dict[str, Any] = field(default_factory=default_model_settings)
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.models) - set(MODELS)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {MODELS}")
        for name, model in REGISTRY.items():
            if model.settings_class is None:
                continue
            own = self.model_settings.get(name)
            if not isinstance(own, model.settings_class):
                raise ValueError(f"model_settings[{name!r}] must be a {model.settings_class.__name__}, got {own!r}")
            if hasattr(own, "check_with"):
                own.check_with(self)


def config_dict(cfg: RecommenderConfig) -> dict:
    out = asdict(cfg)
    out.pop("progress")
    out["training"].pop("trainer", None)
    return out


def recommender_config(overrides: dict, *, seed: int | None = None, trainer: dict | None = None,
                       **base: object) -> RecommenderConfig:
    """A RecommenderConfig from flat `key=value` overrides, each checked against its field's type and
    routed to the backbone, the training, a model's own settings (a key that several models have, such
    as `head_nodes`, goes to each) or the top-level config (`rqsid.settings.route`). `seed` and `trainer`
    (Lightning flags) go to the training config as given, so that nothing patches it later."""
    nested = {"backbone", "training", "model_settings"} & set(overrides)
    if nested:
        raise ValueError(f"set the fields of {sorted(nested)} one by one (e.g. lr=0.002), not as a whole")
    own_classes = {name: model.settings_class for name, model in REGISTRY.items() if model.settings_class}
    routed = route(overrides, {"backbone": BackboneConfig, "training": TrainingConfig, "top": RecommenderConfig,
                               **own_classes}, what="recommender setting")
    top = {**base, **routed["top"]}
    if "models" in top:
        top["models"] = tuple(top["models"])
    fixed = {key: value for key, value in (("seed", seed), ("trainer", trainer)) if value is not None}
    own = {name: cls(**routed[name]) for name, cls in own_classes.items()}
    return RecommenderConfig(backbone=BackboneConfig(**routed["backbone"]),
                             training=TrainingConfig(**{**routed["training"], **fixed}), model_settings=own, **top)
