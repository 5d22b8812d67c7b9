"""The recommendation stage of a run: one split, four models, one metric code.

Reads what the Semantic-ID stage wrote (movies.parquet, embeddings.parquet, sids.parquet), trains the
learned dense baseline and the SID-generative model, scores popularity and FAISS content, and writes
predictions/<model>.parquet, test_targets.parquet and metrics.json (see `recsys.evaluate`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

from recsys.backbone import BackboneConfig
from recsys.baselines import DEFAULT_DECAY, content_recommend, faiss_topk_excluding, popularity_recommend
from recsys.data import left_pad
from recsys.dense import DenseConfig, DenseSequentialModel
from recsys.evaluate import TOP_K, check_recommendations, predictions_frame, targets_frame, write_evaluation
from recsys.generative import GenerativeConfig, SidGenerativeModel
from recsys.movielens import MovieLens
from recsys.sequences import Catalogue, SequenceSplit, make_split
from recsys.training import TrainingConfig, recommend_batch, train_recommender
from rqsid.io import atomic_path

log = logging.getLogger(__name__)
MODELS = ("popularity", "faiss-content", "faiss-dense", "sid-generative")


@dataclass
class RecommenderConfig:
    split: str = "leave-one-out"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)  # shared by both learned models
    training: TrainingConfig = field(default_factory=TrainingConfig)
    item_embedding: bool = True  # SID-generative: add a learned id embedding to each input item
    content_decay: float = DEFAULT_DECAY
    models: tuple[str, ...] = MODELS
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.models) - set(MODELS)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {MODELS}")


def read_run_inputs(run_dir: Path) -> tuple[Catalogue, np.ndarray, np.ndarray]:
    """Catalogue, embeddings (N, D) and SIDs (N, T), all in movies.parquet order."""
    movies = pd.read_parquet(run_dir / "movies.parquet", columns=["movie_id"])
    catalogue = Catalogue(movies["movie_id"].to_numpy())
    embeddings = pd.read_parquet(run_dir / "embeddings.parquet")
    sids = pd.read_parquet(run_dir / "sids.parquet")
    for name, frame in (("embeddings.parquet", embeddings), ("sids.parquet", sids)):
        if not np.array_equal(frame["movie_id"].to_numpy(), catalogue.movie_ids):
            raise ValueError(f"{run_dir / name} does not list the movies of movies.parquet in the same order")
    sid_columns = [c for c in sids.columns if c.startswith("sid_")]
    return catalogue, np.stack(embeddings["embedding"].to_numpy()), sids[sid_columns].to_numpy()


def model_topk(model: torch.nn.Module, split: SequenceSplit, catalogue: Catalogue, k: int, beam_size: int,
               batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Test-stage top-k of a learned model for every evaluated user, in batches."""
    ranked, scores = [], []
    for start in range(0, len(split.user_ids), batch_size):
        rows = np.arange(start, min(start + batch_size, len(split.user_ids)))
        r, s = recommend_batch(model, split, rows, "test", k, catalogue.size, beam_size)
        ranked.append(r.numpy())
        scores.append(s.numpy())
    return np.concatenate(ranked), np.concatenate(scores)


def dense_topk(model: DenseSequentialModel, split: SequenceSplit, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The dense baseline's test top-k: last-state user vectors searched in a FAISS inner-product index."""
    histories = [split.test_inputs(u) for u in range(len(split.user_ids))]
    items = torch.as_tensor(left_pad(histories, model.config.max_len))
    users = torch.as_tensor(split.user_ids.astype(np.int64))
    queries = torch.cat([model.user_vectors(b, u) for b, u in zip(items.split(512), users.split(512), strict=True)])
    queries = queries.numpy().astype(np.float32)
    return faiss_topk_excluding(queries, model.faiss_index(), histories, k)


def model_builders(cfg: RecommenderConfig, catalogue: Catalogue, sids: np.ndarray) -> dict[str, Callable]:
    """Constructors of the two learned models, on the same backbone settings (equal capacity)."""
    backbone = asdict(cfg.backbone)
    return {
        "faiss-dense": lambda: DenseSequentialModel(DenseConfig(**backbone, num_items=catalogue.size)),
        "sid-generative": lambda: SidGenerativeModel(
            GenerativeConfig(**backbone, vocab_sizes=tuple(int(v) + 1 for v in sids.max(0)),
                             num_items=catalogue.size, item_embedding=cfg.item_embedding), item_sids=sids),
    }


def train_learned(name: str, build: Callable[[], torch.nn.Module], split: SequenceSplit, catalogue: Catalogue,
                  cfg: RecommenderConfig, run_dir: Path) -> torch.nn.Module:
    # Seed before building, so that a model's initial weights do not depend on what ran before it.
    L.seed_everything(cfg.training.seed, workers=True, verbose=False)
    model = train_recommender(build(), split, catalogue.size, cfg.training, output_dir=run_dir / "train" / name,
                              progress=cfg.progress)
    with atomic_path(run_dir / "models" / name) as tmp:
        model.save_pretrained(tmp)
    return model


def run_recommenders(dataset: MovieLens, run_dir: Path, cfg: RecommenderConfig) -> dict:
    """Train and evaluate every model in cfg.models on one split; returns metrics.json's content."""
    run_dir = Path(run_dir)
    catalogue, embeddings, sids = read_run_inputs(run_dir)
    split = make_split(cfg.split, dataset.ratings, catalogue)
    log.info("%s split: %d users evaluated, %d skipped", split.name, len(split.user_ids), split.skipped_users)
    builders = model_builders(cfg, catalogue, sids)
    predictions, seconds, valid = {}, {}, {}
    for name in cfg.models:
        start = time.perf_counter()
        if name == "popularity":
            ranked, scores = popularity_recommend(split, catalogue.size, "test", TOP_K)
        elif name == "faiss-content":
            ranked, scores = content_recommend(split, embeddings, "test", TOP_K, decay=cfg.content_decay)
        else:
            model = train_learned(name, builders[name], split, catalogue, cfg, run_dir)
            ranked, scores = (dense_topk(model, split, TOP_K) if name == "faiss-dense" else
                              model_topk(model, split, catalogue, TOP_K, cfg.training.beam_size))
        predictions[name] = predictions_frame(split.user_ids, ranked, scores, catalogue)
        # Share of recommendations that are real catalogue movies outside the user's history (must be 1).
        valid[name] = check_recommendations(predictions[name], split, catalogue, "test")
        seconds[name] = round(time.perf_counter() - start, 1)
        log.info("%s: done in %.1f s", name, seconds[name])
    extra = {"seed": cfg.training.seed, "seconds": seconds, "valid_recommendations": valid,
             "config": config_dict(cfg)}
    return write_evaluation(run_dir, dataset=dataset.name, split=split.name, predictions=predictions,
                            targets=targets_frame(split, catalogue, "test"), extra=extra)


def config_dict(cfg: RecommenderConfig) -> dict:
    out = asdict(cfg)
    out.pop("progress")
    out["training"].pop("trainer", None)
    return out


def recommender_config(overrides: dict, **base: object) -> RecommenderConfig:
    """A RecommenderConfig from flat `key=value` overrides, routed to the backbone or training config."""
    backbone_keys = {f.name for f in fields(BackboneConfig)}
    training_keys = {f.name for f in fields(TrainingConfig)}
    top_keys = {f.name for f in fields(RecommenderConfig)} - {"backbone", "training"}
    unknown = set(overrides) - backbone_keys - training_keys - top_keys
    if unknown:
        raise ValueError(f"unknown recommender setting(s) {sorted(unknown)}")
    pick = lambda keys: {k: v for k, v in overrides.items() if k in keys}  # noqa: E731
    top = {**base, **pick(top_keys)}
    if "models" in top:
        top["models"] = tuple(top["models"])
    return RecommenderConfig(backbone=BackboneConfig(**pick(backbone_keys)),
                             training=TrainingConfig(**pick(training_keys)), **top)
