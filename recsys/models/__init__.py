"""Layer 5, models: every recommender of a run behind one contract (`Recommender`), and the registry of
their names.

To add a model: write one file with a `Recommender` subclass and add one line to REGISTRY below.
"""

from recsys.models.base import FitContext, Ranking, Recommender
from recsys.models.content import FaissContent
from recsys.models.dense import FaissDense
from recsys.models.itemknn import ItemKNN
from recsys.models.markov import Markov
from recsys.models.popularity import Popularity
from recsys.models.sid_generative import SidGenerative
from recsys.models.sid_hybrid import SidHybrid

REGISTRY: dict[str, type[Recommender]] = {
    model.name: model
    for model in (Popularity, ItemKNN, Markov, FaissContent, FaissDense, SidGenerative, SidHybrid)
}
MODELS = tuple(REGISTRY)  # every model a run may name, in this order in tables
DEFAULT_MODELS = tuple(name for name, model in REGISTRY.items() if model.runs_by_default)  # a run without --models


def get_model_class(name: str) -> type[Recommender]:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return REGISTRY[name]


__all__ = [
    "DEFAULT_MODELS",
    "MODELS",
    "REGISTRY",
    "FaissContent",
    "FaissDense",
    "FitContext",
    "ItemKNN",
    "Markov",
    "Popularity",
    "Ranking",
    "Recommender",
    "SidGenerative",
    "SidHybrid",
    "get_model_class",
]
