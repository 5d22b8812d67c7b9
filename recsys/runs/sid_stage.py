"""The Semantic-ID stage of a run: movies -> text -> embeddings -> RQ-VAE -> unique SIDs + quality report.

Writes, under runs/<name>/:
    movies.parquet     movie_id, title, year, genres, text (every result maps back to a title)
    embeddings.parquet movie_id, embedding (the encoder's, L2-normalised; used by the dense baselines)
    sids.parquet       movie_id, sid_0 .. sid_{T-1}, sid ("12-5-33-0")
    sid_labels.parquet a label for every level-1 and level-1+2 prefix (`recsys.evaluation.labels`)
    quantizer/         the trained RQVAE in save_pretrained layout (RQVAE.from_pretrained); with text-predicted
                       factors for unrated movies also text_to_factors.safetensors (`TextToFactors`)
    rqvae/             Lightning logs (CSV, TensorBoard) and checkpoints
    sid_quality.json   the SID quality report, for the chosen preset and, with compare_seed, the seed's
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.collaborative import TEXT_TO_FACTORS, UNRATED_FACTORS, TokenizerInput, tokenizer_input
from recsys.data.movielens import MovieLens, data_home
from recsys.data.text import movie_texts
from recsys.evaluation.labels import label_prefixes
from recsys.runs.stages import Stage, table_digest
from rqsid.assign import assign_semantic_ids, sid_strings
from rqsid.embed import DEFAULT_MODEL, encode_with_cache
from rqsid.io import atomic_path, read_json, write_json, write_parquet
from rqsid.lightning import RQVAETrainingConfig, train_rqvae
from rqsid.model import RQVAE, RQVAEConfig
from rqsid.presets import get_preset
from rqsid.quality import sid_quality_report
from rqsid.rqkmeans import fit_rq_kmeans
from rqsid.settings import route

log = logging.getLogger(__name__)
SID_OUTPUTS = ("movies.parquet", "embeddings.parquet", "sids.parquet", "sid_labels.parquet", "sid_quality.json",
               "quantizer/model.safetensors")


@dataclass
class SidConfig:
    preset: str = "tiger"
    encoder: str = DEFAULT_MODEL
    seed: int = 42
    compare_seed: bool = False  # also train the seed card's preset and report it side by side
    overrides: dict = field(default_factory=dict)  # RQVAEConfig / RQVAETrainingConfig fields by name
    trainer: dict = field(default_factory=dict)  # Lightning Trainer flags (accelerator, devices, ...)
    encode_devices: tuple[str, ...] = ()  # e.g. ("cuda:0", "cuda:1"): a sentence-transformers process each
    # > 0: the tokenizer reads the text embedding with this many SVD factors of the `split`'s training
    # interactions appended (`recsys.data.collaborative`); 0: text only
    collaborative_dims: int = 0
    collaborative_only: bool = False  # with collaborative_dims: the factors alone, no text (collaborative IDs)
    # with collaborative_dims: the factors of movies without training interactions ("zero", or "text": what
    # their text predicts; `recsys.data.collaborative.UNRATED_FACTORS`)
    unrated_factors: str = "zero"
    split: str = "leave-one-out"
    progress: bool = True

    def __post_init__(self) -> None:
        # every RQ-VAE setting is type-checked here, before the texts are encoded
        route({k: v for k, v in self.overrides.items() if k != "sid_method"},
              {"model": RQVAEConfig, "training": RQVAETrainingConfig}, what="RQ-VAE setting")
        if not isinstance(self.collaborative_dims, int) or self.collaborative_dims < 0:
            raise ValueError(f"collaborative_dims must be a non-negative integer, got {self.collaborative_dims!r}")
        if self.collaborative_only and not self.collaborative_dims:
            raise ValueError("collaborative_only needs collaborative_dims > 0 (--sid-collaborative DIMS)")
        if self.unrated_factors not in UNRATED_FACTORS:
            raise ValueError(f"unrated_factors must be one of {UNRATED_FACTORS}, got {self.unrated_factors!r}")
        if self.unrated_factors != "zero" and not self.collaborative_dims:
            raise ValueError("unrated_factors needs collaborative_dims > 0 (--sid-collaborative DIMS)")


def embedding_cache_path(encoder: str, dataset: str, home: Path | None = None) -> Path:
    """One cache per dataset and encoder: movie ids are only unique within a dataset (ML-100K's movie 1 and
    ML-1M's movie 1 have different texts), and the cache is keyed by id."""
    slug = encoder.strip("/").replace("/", "--")
    return (home or data_home()) / "cache" / "embeddings" / dataset / f"{slug}.parquet"


def movie_table(dataset: MovieLens) -> pd.DataFrame:
    movies = dataset.movies.copy()
    movies["text"] = movie_texts(movies)
    return movies[[c for c in ("movie_id", "title", "year", "genres", "tags", "text") if c in movies]]


def sid_stage(dataset: MovieLens, movies: pd.DataFrame, run_dir: Path, cfg: SidConfig) -> Stage:
    """The stage's key: its settings, the movies' texts, and the ratings' movie ids (they pick the labels'
    representative titles)."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("progress", "trainer", "encode_devices")}
    if not cfg.collaborative_dims:  # the split does not reach text-only SIDs
        settings.pop("split")
    for name, default in (("collaborative_only", False), ("unrated_factors", "zero")):
        if settings[name] == default:  # the key of a run made before the setting existed
            settings.pop(name)
    ratings = dataset.ratings[["user_id", "movie_id", "timestamp"] if cfg.collaborative_dims else ["movie_id"]]
    inputs = [table_digest(movies[["movie_id", "text"]]), table_digest(ratings)]
    return Stage(run_dir, "sids", settings, inputs, SID_OUTPUTS)


def embed_movies(movies: pd.DataFrame, dataset: str, cfg: SidConfig, run_dir: Path,
                 home: Path | None) -> np.ndarray:
    embeddings = encode_with_cache(
        movies["movie_id"].tolist(), movies["text"].tolist(), model=cfg.encoder,
        cache_path=embedding_cache_path(cfg.encoder, dataset, home),
        device=list(cfg.encode_devices) or None,
    )
    table = pd.DataFrame({"movie_id": movies["movie_id"].to_numpy(), "embedding": list(embeddings)})
    write_parquet(table, run_dir / "embeddings.parquet")
    return embeddings


def train_and_assign(
    tokenized: TokenizerInput, genres: list[list[str]], preset_name: str, cfg: SidConfig, out_dir: Path,
    resume: bool = False,
) -> tuple[RQVAE, np.ndarray, dict]:
    """Fit one preset's quantiser (an RQ-VAE, or RQ-KMeans), give every movie a unique SID, measure them;
    the quantiser is saved with the map that made its input from text, if one did."""
    embeddings = tokenized.vectors
    overrides = cfg.overrides if preset_name == cfg.preset else {}
    preset = get_preset(preset_name, len(embeddings), embeddings.shape[1], **{**overrides, "seed": cfg.seed},
                        trainer=dict(cfg.trainer))
    start = time.perf_counter()
    if preset.fit == "kmeans":
        model, reseeded = fit_rq_kmeans(embeddings, preset.model, seed=cfg.seed), []
    else:
        module = train_rqvae(embeddings, preset.model, preset.training, output_dir=out_dir / "rqvae",
                             progress=cfg.progress, resume=resume)
        model, reseeded = module.model, [sum(r) for r in module.reseeded]
    seconds = time.perf_counter() - start
    semantic_ids = assign_semantic_ids(model, embeddings, method=preset.sid_method)
    report = sid_quality_report(model, embeddings, semantic_ids, genres, seed=cfg.seed)
    report = {"preset": preset_name, "sid_method": preset.sid_method, "fit": preset.fit,
              "train_seconds": round(seconds, 1), "reseeded_dead_codes": reseeded, **report,
              "model_config": asdict(preset.model)}
    with atomic_path(out_dir / "quantizer") as tmp:
        model.save_pretrained(tmp)
        if tokenized.text_to_factors is not None:
            tokenized.text_to_factors.save(tmp / TEXT_TO_FACTORS)
    return model, semantic_ids.sids, report


def sids_frame(movie_ids: np.ndarray, sids: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(sids.astype(np.int32), columns=[f"sid_{i}" for i in range(sids.shape[1])])
    frame.insert(0, "movie_id", movie_ids)
    frame["sid"] = sid_strings(sids)
    return frame


def rating_counts(dataset: MovieLens, movies: pd.DataFrame) -> np.ndarray:
    """(N,) number of ratings of each movie, in movies' row order (the most-rated represent a prefix)."""
    counts = dataset.ratings["movie_id"].value_counts()
    return counts.reindex(movies["movie_id"].to_numpy(), fill_value=0).to_numpy()


def build_semantic_ids(dataset: MovieLens, run_dir: Path, cfg: SidConfig, home: Path | None = None, *,
                       force: bool = False, resume: bool = False) -> dict:
    """Run the whole stage for one dataset into run_dir; returns the quality report.

    Skipped when it finished before with the same inputs and settings (`recsys.runs.stages`), unless `force`;
    `resume` continues an interrupted RQ-VAE training from its last checkpoint.
    """
    run_dir = Path(run_dir)
    begin = start = time.perf_counter()
    movies = movie_table(dataset)
    stage = sid_stage(dataset, movies, run_dir, cfg)
    if stage.is_done() and not force:
        log.info("Semantic IDs: finished before with the same inputs and settings, skipped (--force redoes it)")
        return {**read_json(run_dir / "sid_quality.json"), "seconds": {}}
    resume = resume and stage.can_resume()
    stage.start()
    write_parquet(movies, run_dir / "movies.parquet")
    embeddings = embed_movies(movies, dataset.name, cfg, run_dir, home)
    seconds = {"text and embeddings": round(time.perf_counter() - start, 1)}
    genres = [list(g) for g in movies["genres"]]
    reports = {}
    start = time.perf_counter()
    if cfg.collaborative_only and cfg.unrated_factors == "zero" and cfg.split == "cold-start":
        log.warning("collaborative IDs on a cold-start split: the cold movies have no training ratings, so they "
                    "share one branch of the tree; --sid-unrated-factors text or --sid-collaborative 0 gives "
                    "each its own ID")
    tokenized = TokenizerInput(embeddings)
    if cfg.collaborative_dims:
        tokenized = tokenizer_input(embeddings, dataset.ratings, movies["movie_id"].to_numpy(),
                                    dims=cfg.collaborative_dims, split=cfg.split, seed=cfg.seed,
                                    text=not cfg.collaborative_only, unrated=cfg.unrated_factors)
    _, sids, reports[cfg.preset] = train_and_assign(tokenized, genres, cfg.preset, cfg, run_dir, resume)
    write_parquet(sids_frame(movies["movie_id"].to_numpy(), sids), run_dir / "sids.parquet")
    write_parquet(label_prefixes(movies, sids, rating_counts(dataset, movies)), run_dir / "sid_labels.parquet")
    seconds["RQ-VAE and SIDs"] = round(time.perf_counter() - start, 1)
    if cfg.compare_seed and cfg.preset != "seed":
        start = time.perf_counter()
        _, seed_sids, reports["seed"] = train_and_assign(tokenized, genres, "seed", cfg, run_dir / "seed")
        write_parquet(sids_frame(movies["movie_id"].to_numpy(), seed_sids), run_dir / "seed" / "sids.parquet")
        seconds["seed preset, for comparison"] = round(time.perf_counter() - start, 1)
    quality = {"dataset": dataset.name, "source": dataset.source, "location": dataset.location,
               "encoder": cfg.encoder, "seed": cfg.seed, "seconds": seconds, "presets": reports}
    write_json(quality, run_dir / "sid_quality.json")
    stage.finish(time.perf_counter() - begin)
    return quality


def quality_table(quality: dict) -> pd.DataFrame:
    """The report as a printable table: one column per preset, one row per figure."""
    columns = {}
    for name, r in quality["presets"].items():
        row = {"SID length": r["sid_length"], "unique SIDs": r["unique_sids"],
               "learned collision rate": r["learned_collisions"]["collision_rate"],
               "largest collision group": r["learned_collisions"]["largest_collision_group"]}
        for level in r["levels"]:
            row[f"L{level['level']} used / size"] = f"{level['codes_used']} / {level['codebook_size']}"
            row[f"L{level['level']} perplexity"] = round(level["perplexity"], 1)
        row["reconstruction cosine"] = r["reconstruction"]["reconstruction_cosine"]
        row["reconstruction MSE"] = r["reconstruction"]["reconstruction_mse"]
        for key, c in r["coherence"].items():
            row[f"coherence {key}"] = c["ratio"]
        row["train seconds"] = r["train_seconds"]
        columns[name] = row
    return pd.DataFrame(columns)
