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
from recsys.baselines import DEFAULT_DECAY, INDEX_KINDS, content_recommend, faiss_topk_excluding, popularity_recommend
from recsys.dense import DenseConfig, DenseSequentialModel
from recsys.evaluate import MODELS, TOP_K, check_recommendations, predictions_frame, targets_frame, write_evaluation
from recsys.generative import GenerativeConfig, SidGenerativeModel
from recsys.inputs import left_pad
from recsys.movielens import MovieLens
from recsys.sequences import Catalogue, SequenceSplit, make_split
from recsys.stages import Stage, fingerprint, table_digest
from recsys.training import TrainingConfig, recommend_batch, train_recommender
from rqsid.io import atomic_path, write_parquet

log = logging.getLogger(__name__)
LEARNED = ("faiss-dense", "sid-generative")


@dataclass
class RecommenderConfig:
    split: str = "leave-one-out"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)  # shared by both learned models
    training: TrainingConfig = field(default_factory=TrainingConfig)
    item_embedding: bool = True  # SID-generative: add a learned id embedding to each input item
    content_decay: float = DEFAULT_DECAY
    content_index: str = "flat"  # FAISS index of the content baseline: "flat" (exact) or "hnsw" (approximate)
    models: tuple[str, ...] = MODELS
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.models) - set(MODELS)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {MODELS}")
        if self.content_index not in INDEX_KINDS:
            raise ValueError(f"content_index must be one of {INDEX_KINDS}, got {self.content_index!r}")


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
                  cfg: RecommenderConfig, run_dir: Path, resume: bool = False) -> torch.nn.Module:
    # Seed before building, so that a model's initial weights do not depend on what ran before it.
    L.seed_everything(cfg.training.seed, workers=True, verbose=False)
    model = train_recommender(build(), split, catalogue.size, cfg.training, output_dir=run_dir / "train" / name,
                              progress=cfg.progress, resume=resume)
    with atomic_path(run_dir / "models" / name) as tmp:
        model.save_pretrained(tmp)
    return model


def model_stage(name: str, cfg: RecommenderConfig, run_dir: Path, ratings_digest: str) -> Stage:
    """One model's stage: settings, the run's SID-stage artifacts and the ratings as inputs."""
    full = config_dict(cfg)
    # only what the model depends on: a new learning rate must not redo popularity
    keys = {"popularity": ["split"], "faiss-content": ["split", "content_decay", "content_index"]}.get(
        name, ["split", "backbone", "training", "item_embedding"])
    settings = {"model": name, **{key: full[key] for key in keys}}
    inputs = [fingerprint(Path(run_dir) / f) for f in ("movies.parquet", "embeddings.parquet", "sids.parquet")]
    outputs = (f"predictions/{name}.parquet", *((f"models/{name}/model.safetensors",) if name in LEARNED else ()))
    return Stage(run_dir, f"model-{name}", settings, [*inputs, ratings_digest], outputs)


def rank_test_users(name: str, cfg: RecommenderConfig, split: SequenceSplit, catalogue: Catalogue,
                    embeddings: np.ndarray, sids: np.ndarray, run_dir: Path, resume: bool) -> pd.DataFrame:
    """Train (if learned) and rank every test user's top TOP_K with one model."""
    if name == "popularity":
        ranked, scores = popularity_recommend(split, catalogue.size, "test", TOP_K)
    elif name == "faiss-content":
        ranked, scores = content_recommend(split, embeddings, "test", TOP_K, decay=cfg.content_decay,
                                           index=cfg.content_index)
    else:
        model = train_learned(name, model_builders(cfg, catalogue, sids)[name], split, catalogue, cfg, run_dir,
                              resume)
        ranked, scores = (dense_topk(model, split, TOP_K) if name == "faiss-dense" else
                          model_topk(model, split, catalogue, TOP_K, cfg.training.beam_size))
    return predictions_frame(split.user_ids, ranked, scores, catalogue)


def run_recommenders(dataset: MovieLens, run_dir: Path, cfg: RecommenderConfig, *, force: bool = False,
                     resume: bool = False) -> dict:
    """Train and evaluate every model in cfg.models on one split; returns metrics.json's content.

    A model whose stage finished before with the same inputs and settings is not trained again (its
    predictions are read back) unless `force`; `resume` continues an interrupted training.
    """
    run_dir = Path(run_dir)
    catalogue, embeddings, sids = read_run_inputs(run_dir)
    split = make_split(cfg.split, dataset.ratings, catalogue)
    log.info("%s split: %d users evaluated, %d skipped", split.name, len(split.user_ids), split.skipped_users)
    ratings_digest = table_digest(dataset.ratings)
    predictions, seconds, valid = {}, {}, {}
    for name in cfg.models:
        start = time.perf_counter()
        stage = model_stage(name, cfg, run_dir, ratings_digest)
        if stage.is_done() and not force:
            log.info("%s: finished before with the same inputs and settings, skipped (--force redoes it)", name)
            predictions[name] = pd.read_parquet(run_dir / "predictions" / f"{name}.parquet")
        else:
            can_resume = resume and stage.can_resume()
            stage.start()
            predictions[name] = rank_test_users(name, cfg, split, catalogue, embeddings, sids, run_dir, can_resume)
            write_parquet(predictions[name], run_dir / "predictions" / f"{name}.parquet")
            stage.finish(time.perf_counter() - start)
        # Share of recommendations that are real catalogue movies outside the user's history (must be 1).
        valid[name] = check_recommendations(predictions[name], split, catalogue, "test")
        seconds[name] = round(time.perf_counter() - start, 1)
        log.info("%s: done in %.1f s", name, seconds[name])
    extra = {"location": dataset.location, "seed": cfg.training.seed, "seconds": seconds,
             "valid_recommendations": valid, "config": config_dict(cfg)}
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
