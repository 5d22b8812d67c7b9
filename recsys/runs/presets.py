"""Named run set-ups: what differs between a run on ML-100K and one on ML-1M, in one place.

A run preset names the dataset, the RQ-VAE preset (`rqsid.presets`) with its overrides, and flat
overrides of the recommenders' settings (`recsys.runs.recommend_stage.recommender_config`). `sidrec run
--preset ml-1m` uses it; `--set key=value` still overrides any single setting on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunPreset:
    dataset: str
    sid_preset: str = "tiger"
    sid_overrides: dict = field(default_factory=dict)
    recommender: dict = field(default_factory=dict)
    # The tokenizer's input besides the text (`recsys.data.collaborative`): SVD factors of the training
    # interactions, appended (collaborative_only False) or alone (True: collaborative IDs); 0: text only
    sid_collaborative: int = 0
    sid_collaborative_only: bool = False
    sid_unrated_factors: str = "zero"  # with factors: those of movies without training ratings
    note: str = ""


RUN_PRESETS = {
    # The library defaults (2 layers, d_model 64, the last 50 items), the count-based baselines at their best
    # validation settings on ML-100K (bench/results/tune-simple-ml-100k.json).
    "ml-100k": RunPreset(
        "ml-100k",
        recommender={"itemknn_neighbours": 1600, "itemknn_decay": 0.7, "markov_last": 20, "markov_decay": 0.7},
        note="library defaults, sized for a laptop CPU",
    ),
    # ML-1M: the last 50 items (200 costs more per epoch, mostly padding; bench/results/epoch-speed-ml-1m-*.json);
    # 5 % warmup and cosine decay, dropout 0.1, which gave both learned models a better validation NDCG@10 and
    # NLL than a constant lr 1e-3 with dropout 0.2 (results/ml-1m/ablations/README.md). 12 epochs per learned
    # model, so that the whole run fits 30 minutes on 2 CPU cores, at lr 4e-3: over 12 epochs lr 2e-3 left
    # both learned models well behind on validation (results/ml-1m-cpu-12/README.md). The GPU tables trained
    # 24 epochs at lr 2e-3 (--set max_epochs=24 --set lr=0.002). The count-based and
    # content baselines at their best validation settings (bench/results/tune-simple-ml-1m.json).
    # Collaborative IDs (the RQ-VAE on 64 SVD factors alone) gave every seed, on two machines, a better
    # validation NDCG@10 than text SIDs (results/ml-1m/ablations/README.md); on ML-100K they lost, so that
    # preset keeps text SIDs. Movies without training ratings get the factors their text predicts: on
    # validation a tie with zero factors over three comparisons of three seeds, with a SID model that trains
    # faster (no wide collision group) and an ID of its own for every cold movie (results/ml-1m-unrated-text-gpu/).
    "ml-1m": RunPreset(
        "ml-1m",
        recommender={"max_len": 50, "batch_size": 128, "max_epochs": 12, "val_every": 2, "patience": 3,
                     "lr": 4e-3, "lr_schedule": "cosine", "warmup": 0.05, "dropout": 0.1,
                     "itemknn_neighbours": 1600, "content_decay": 0.5},
        sid_collaborative=64, sid_collaborative_only=True, sid_unrated_factors="text",
        note="ML-1M at a fixed budget of 12 epochs per learned model (under 30 minutes on 2 CPU cores), "
             "collaborative IDs, unrated movies' factors from their text (--sid-collaborative 0 for text SIDs)",
    ),
    # ML-1M on one GPU, as SASRec runs it (the last 200 items), trained until early stopping or 3 minutes
    # per model: what bench/gpu_ml1m.sh ran on an H200 (results/ml-1m-gpu/).
    "ml-1m-gpu": RunPreset(
        "ml-1m",
        recommender={"max_len": 200, "batch_size": 128, "max_epochs": 200, "val_every": 4, "patience": 5,
                     "max_minutes": 3, "itemknn_neighbours": 1600, "content_decay": 0.5},
        note="SASRec's ML-1M set-up (200 items), for one GPU",
    ),
}


def get_run_preset(name: str) -> RunPreset:
    if name not in RUN_PRESETS:
        raise ValueError(f"unknown run preset {name!r}; choose one of {sorted(RUN_PRESETS)}")
    return RUN_PRESETS[name]
