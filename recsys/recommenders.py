"""The recommendation stage of a run: one split, every registered model, one metric code.

Reads what the Semantic-ID stage wrote (movies.parquet, embeddings.parquet, sids.parquet), fits each model
of `recsys.models.REGISTRY` through the one `Recommender` contract (training sequences only), saves it to
models/<name>, and writes predictions/<model>.parquet, test_targets.parquet and metrics.json
(see `recsys.evaluate`).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.backbone import BackboneConfig
from recsys.baselines import DEFAULT_DECAY, INDEX_KINDS, stage_inputs
from recsys.evaluate import TOP_K, check_recommendations, predictions_frame, targets_frame, write_evaluation
from recsys.generative import HEAD_ADVANCES, HEAD_SOFTMAXES
from recsys.models import DEFAULT_MODELS, MODELS, FitContext, get_model_class
from recsys.models.base import SETTINGS_FILE
from recsys.movielens import MovieLens
from recsys.sequences import Catalogue, SequenceSplit, make_split
from recsys.stages import Stage, fingerprint, table_digest
from recsys.training import TrainingConfig
from rqsid.io import atomic_path, process_rank, write_parquet
from rqsid.settings import route

log = logging.getLogger(__name__)
STAGING = ".staging"  # models being (re)trained, until the whole recommend stage has succeeded


@dataclass
class RecommenderConfig:
    split: str = "leave-one-out"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)  # shared by both learned models
    training: TrainingConfig = field(default_factory=TrainingConfig)
    item_embedding: bool = True  # SID-generative: add a learned id embedding to each input item
    head_hidden: int = 0  # SID head: width of each level's MLP, 0 = 2 * d_model
    head_advance: str = "add"  # SID head: how a chosen code moves its state (`recsys.generative`)
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
    # sid-hybrid (`recsys.hybrid`): weight of the dense log-probability, and each side's candidates re-scored
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


def model_stage(name: str, cfg: RecommenderConfig, where: Path, ratings_digest: str,
                run_dir: Path | None = None) -> Stage:
    """One model's stage, recorded under `where` (the run, or its staging folder): the settings the model
    depends on, the run's SID-stage artifacts and the ratings."""
    full = config_dict(cfg)
    # only what the model depends on: a new learning rate must not redo popularity
    settings = {"model": name, **{key: full[key] for key in get_model_class(name).settings}}
    inputs = [fingerprint(Path(run_dir or where) / f) for f in ("movies.parquet", "embeddings.parquet", "sids.parquet")]
    outputs = (f"predictions/{name}.parquet", f"models/{name}/{SETTINGS_FILE}")
    return Stage(where, f"model-{name}", settings, [*inputs, ratings_digest], outputs)


def fit_and_rank(name: str, context: FitContext, split: SequenceSplit, out_dir: Path) -> pd.DataFrame:
    """Fit one model on the split's training sequences, save it to out_dir/models/<name>, rank every test
    user."""
    model = get_model_class(name).build(context).fit(split)
    with atomic_path(out_dir / "models" / name) as tmp:
        model.save(tmp)
    histories = stage_inputs(split, "test")
    ranking = model.recommend(histories, TOP_K, users=split.user_ids)
    return predictions_frame(split.user_ids, ranking.items, ranking.scores, context.catalogue)


def read_staged_predictions(staging: Path, run_dir: Path, name: str) -> pd.DataFrame:
    """A staged model's predictions. Under DDP, rank 0 may move them into the run (`promote`, one rename
    per file) while another rank reads: a file gone from the staging folder is then in the run."""
    try:
        return pd.read_parquet(staging / "predictions" / f"{name}.parquet")
    except FileNotFoundError:
        return pd.read_parquet(run_dir / "predictions" / f"{name}.parquet")


def promote(staging: Path, run_dir: Path, names: list[str]) -> None:
    """Move the staged models' folders, logs, predictions and stage records into the run (after every
    model of the stage succeeded), then drop the staging folder."""
    for name in names:
        for part in (f"models/{name}", f"train/{name}", f"predictions/{name}.parquet", f"stages/model-{name}.json"):
            source, target = staging / part, run_dir / part
            if not source.exists():
                continue
            if target.is_dir():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
    shutil.rmtree(staging, ignore_errors=True)


def run_recommenders(dataset: MovieLens, run_dir: Path, cfg: RecommenderConfig, *, force: bool = False,
                     resume: bool = False) -> dict:
    """Train and evaluate every model in cfg.models on one split; returns metrics.json's content.

    A model whose stage finished before with the same inputs and settings is not trained again (its
    predictions are read back) unless `force`; `resume` continues an interrupted training. Models that
    are (re)trained go to a staging folder first, and replace the run's files only once every model has
    succeeded, just before metrics.json: an interrupted re-run with new settings leaves the previous
    models, predictions and metrics.json as they were (`--resume` continues from the staged ones).
    """
    run_dir = Path(run_dir)
    if any(run_dir.glob("seed-*/metrics.json")):
        raise ValueError(f"{run_dir} holds an evaluation over several seeds; a single-seed one needs a directory "
                         f"of its own")
    catalogue, embeddings, sids = read_run_inputs(run_dir)
    split = make_split(cfg.split, dataset.ratings, catalogue)
    log.info("%s split: %d users evaluated, %d skipped", split.name, len(split.user_ids), split.skipped_users)
    ratings_digest = table_digest(dataset.ratings)
    staging = run_dir / STAGING
    predictions, seconds, valid, staged, reused = {}, {}, {}, [], set()
    for name in cfg.models:
        start = time.perf_counter()
        final, pending = (model_stage(name, cfg, where, ratings_digest, run_dir) for where in (run_dir, staging))
        pending.promoted_to = run_dir
        # `seconds`: a model's training and ranking time, kept from the run that made it when it is reused
        if final.is_done() and not force:
            log.info("%s: finished before with the same inputs and settings, skipped (--force redoes it)", name)
            predictions[name] = pd.read_parquet(run_dir / "predictions" / f"{name}.parquet")
            seconds[name] = final.finished_seconds()
            reused.add(name)
        elif pending.is_done() and not force:  # trained by an interrupted run, or (DDP) by rank 0 just now
            predictions[name] = read_staged_predictions(staging, run_dir, name)
            seconds[name] = pending.finished_seconds()
            reused.add(name)
            staged.append(name)
        else:
            context = FitContext(catalogue, embeddings, sids, cfg, output_dir=staging / "train" / name,
                                 resume=resume and pending.can_resume(), progress=cfg.progress)
            pending.start()
            predictions[name] = fit_and_rank(name, context, split, staging)
            write_parquet(predictions[name], staging / "predictions" / f"{name}.parquet")
            seconds[name] = round(time.perf_counter() - start, 1)
            pending.finish(seconds[name])
            staged.append(name)
        # Share of recommendations that are real catalogue movies outside the user's history (must be 1).
        valid[name] = check_recommendations(predictions[name], split, catalogue, "test")
        log.info("%s: done in %.1f s", name, time.perf_counter() - start)
    if staged and process_rank() == 0:  # under DDP, rank 0 alone moves the files (as it alone writes them)
        (run_dir / "metrics.json").unlink(missing_ok=True)  # from here until it is rewritten, it would mislead
        promote(staging, run_dir, staged)
    extra = {"location": dataset.location, "seed": cfg.training.seed, "seconds": seconds,
             "reused": sorted(reused), "valid_recommendations": valid, "config": config_dict(cfg)}
    cold = split.cold_target()
    slices = {"cold target": split.user_ids[cold], "warm target": split.user_ids[~cold]} if split.cold_items.size \
        else None
    return write_evaluation(run_dir, dataset=dataset.name, split=split.name, predictions=predictions,
                            targets=targets_frame(split, catalogue, "test"), extra=extra, slices=slices)


def config_dict(cfg: RecommenderConfig) -> dict:
    out = asdict(cfg)
    out.pop("progress")
    out["training"].pop("trainer", None)
    return out


def recommender_config(overrides: dict, **base: object) -> RecommenderConfig:
    """A RecommenderConfig from flat `key=value` overrides, each checked against its field's type and
    routed to the backbone, the training or the top-level config (`rqsid.settings.route`)."""
    nested = {"backbone", "training"} & set(overrides)
    if nested:
        raise ValueError(f"set the fields of {sorted(nested)} one by one (e.g. lr=0.002), not as a whole")
    routed = route(overrides, {"backbone": BackboneConfig, "training": TrainingConfig, "top": RecommenderConfig},
                   what="recommender setting")
    top = {**base, **routed["top"]}
    if "models" in top:
        top["models"] = tuple(top["models"])
    return RecommenderConfig(backbone=BackboneConfig(**routed["backbone"]),
                             training=TrainingConfig(**routed["training"]), **top)
