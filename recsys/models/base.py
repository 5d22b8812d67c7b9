"""The one contract every recommender implements, and the registry that maps model names to classes.

    model = REGISTRY[name].build(context)   # settings from context.config, catalogue/embeddings/SIDs
    model.fit(split)                        # training sequences only (never a held-out target)
    ranking = model.recommend(histories, k, exclude=..., users=...)   # Ranking(items (U, k), scores (U, k))
    model.save(path); REGISTRY[name].load(path, context)

Every model in a run goes through these calls (the recommend stage, validation, `sidrec recommend`, the
notebook), so no code switches on model names. Adding a model is one file with a `Recommender` subclass
and one line in `recsys.models.REGISTRY`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np

from recsys.data.splits import Catalogue, SequenceSplit
from rqsid.io import read_json

if TYPE_CHECKING:  # type hints only: recsys.models.config imports the registry, which imports this module
    from recsys.models.config import RecommenderConfig

SETTINGS_FILE = "recommender.json"


class Ranking(NamedTuple):
    items: np.ndarray  # (U, k) int64 item indices, best first
    scores: np.ndarray  # (U, k) float32, the model's own score of each item (higher = better)


@dataclass
class FitContext:
    """What a model may read besides the training sequences: catalogue-side inputs and the settings."""

    catalogue: Catalogue
    embeddings: np.ndarray  # (N, D) text embeddings of the movies, movies.parquet order
    sids: np.ndarray  # (N, T) Semantic IDs, same order
    config: RecommenderConfig
    output_dir: Path | None = None  # where a trained model writes logs and checkpoints
    resume: bool = False  # continue an interrupted training from output_dir's last checkpoint
    progress: bool = True


class Recommender(ABC):
    """A model that ranks unseen catalogue items for users from their histories (item indices, oldest first)."""

    name: ClassVar[str]
    # What this model depends on (its stage is redone when one of them changes): the run-wide
    # RecommenderConfig fields it reads, and its own settings, a dataclass defined beside the model (None:
    # it has none). RecommenderConfig.model_settings holds one instance per model that has a class here.
    shared: ClassVar[tuple[str, ...]] = ("split",)
    settings_class: ClassVar[type | None] = None
    # `sidrec recommend` opens each reason with the SID prefix the movie shares with the history
    explains_by_sid_prefix: ClassVar[bool] = False
    # False: trained only when named in --models (a costly variant reported beside the default set)
    runs_by_default: ClassVar[bool] = True

    def __init__(self, context: FitContext) -> None:
        self.context = context

    @classmethod
    def build(cls, context: FitContext) -> Recommender:
        return cls(context)

    @abstractmethod
    def fit(self, split: SequenceSplit) -> Recommender:
        """Learn from split.training_sequences() only; returns self."""

    @abstractmethod
    def recommend(self, histories: list[np.ndarray], k: int, *, exclude: list[np.ndarray] | None = None,
                  users: np.ndarray | None = None) -> Ranking:
        """Top-k items for each history, never an item of exclude[u] (default: the history itself).

        `users` are the users' ids (for a model with a user token); histories are item indices, oldest first.
        """

    def save(self, path: Path) -> None:
        """Write the model to the folder `path` (created): settings in recommender.json, arrays beside it."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / SETTINGS_FILE).write_text(json.dumps({"model": self.name, "settings": self.saved_settings()},
                                                     indent=1, default=str))
        self.save_arrays(path)

    @classmethod
    def load(cls, path: Path, context: FitContext) -> Recommender:
        """A model saved by `save`, with the settings it was saved with (over context.config's), ready to
        recommend. Weights come through safetensors; nothing is unpickled."""
        path = Path(path)
        if not (path / SETTINGS_FILE).exists():
            raise FileNotFoundError(f"{path / SETTINGS_FILE} is missing: {path} holds no saved {cls.name} model")
        try:
            saved = read_json(path / SETTINGS_FILE)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path / SETTINGS_FILE} is not valid JSON: {error}") from None
        if saved.get("model") != cls.name:
            raise ValueError(f"{path} holds a {saved.get('model')!r} model, not {cls.name!r}")
        restored = restored_config(context.config, cls.name, saved.get("settings", {}))
        model = cls(replace(context, config=restored))
        model.load_arrays(path)
        return model

    @property
    def own_settings(self) -> Any:
        """This model's settings (an instance of `settings_class`) from the run's config."""
        return self.context.config.model_settings[self.name]

    def saved_settings(self) -> dict[str, Any]:
        """The shared fields this model reads and its own settings, flat (the stage key's settings)."""
        return model_settings_dict(self.context.config, type(self))

    def save_arrays(self, path: Path) -> None:  # noqa: B027 (optional: models that learn nothing save nothing)
        """Write what `fit` learned (default: nothing, for models that learn nothing)."""

    def load_arrays(self, path: Path) -> None:  # noqa: B027
        """Read back what `save_arrays` wrote."""

    def reason(self, item: int, score: float, history: np.ndarray, run: Any) -> str:
        """One line saying why `item` was recommended for `history` (`run` is a FinishedRun)."""
        return f"score {score:.3f}"


def model_settings_dict(config: RecommenderConfig, model: type[Recommender]) -> dict[str, Any]:
    """{shared field: value (nested dataclasses as dicts), own setting: value}: what `model` depends on."""
    shared = {key: (asdict(v) if is_dataclass(v := getattr(config, key)) else v) for key in model.shared}
    own = asdict(config.model_settings[model.name]) if model.settings_class is not None else {}
    return {**shared, **own}


def restored_config(config: RecommenderConfig, name: str, settings: dict[str, Any]) -> RecommenderConfig:
    """`config` with model `name`'s saved `settings` put back: shared fields (nested dataclasses rebuilt
    from their dicts) and the model's own settings."""
    changes, own = {}, {}
    mine = config.model_settings.get(name)
    own_fields = {f.name for f in fields(mine)} if mine is not None else set()
    for key, value in settings.items():
        if key in own_fields:
            own[key] = tuple(value) if isinstance(getattr(mine, key), tuple) else value
            continue
        current = getattr(config, key)
        if is_dataclass(current):
            changes[key] = type(current)(**value)
        else:
            changes[key] = tuple(value) if isinstance(current, tuple) else value
    if own:
        changes["model_settings"] = {**config.model_settings, name: replace(mine, **own)}
    return replace(config, **changes)


def default_exclude(histories: list[np.ndarray], exclude: list[np.ndarray] | None) -> list[np.ndarray]:
    if exclude is None:
        return [np.asarray(h, dtype=np.int64) for h in histories]
    if len(exclude) != len(histories):
        raise ValueError(f"{len(histories)} histories but {len(exclude)} exclusion lists")
    return [np.asarray(e, dtype=np.int64) for e in exclude]
