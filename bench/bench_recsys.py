"""Benchmark of the recommendation stage: training time per epoch and test-stage inference throughput.

    .venv/bin/python bench/bench_recsys.py --dataset ml-100k --run runs/demo [--device cpu] [--epochs 3]

Builds the split and both learned models exactly as `recsys.runs.recommend_stage.run_recommenders` does (default
RecommenderConfig), fits each for exactly --epochs epochs without validation, then times the pipeline's
test-stage recommenders for all evaluated users. Result: bench/results/recsys-<dataset>.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import lightning as L
import numpy as np
import torch
from common import Timer, median_seconds, peak_rss_mib, quiet, rate, sync, trainer_flags, write_result
from torch import nn

from recsys.data.movielens import load_movielens
from recsys.data.splits import Catalogue, SequenceSplit, make_split
from recsys.evaluation.evaluate import TOP_K
from recsys.models import REGISTRY, FitContext
from recsys.models.config import RecommenderConfig
from recsys.models.neural import NeuralRecommender
from recsys.models.ranking import build_index, content_recommend
from recsys.nets.dense import DenseSequentialModel
from recsys.nets.generative import SidGenerativeModel
from recsys.runs.run_dir import read_run_inputs
from recsys.train.batches import SequenceDataModule, left_pad
from recsys.train.fit import RecommenderModule, recommend_batch

BATCH = 256  # inference batch (users)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="MovieLens release or folder (load_movielens)")
    parser.add_argument("--run", required=True, type=Path, help="a run folder with movies/embeddings/sids")
    parser.add_argument("--device", default="cpu", help="torch device for training (inference is CPU)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each timed fit")
    parser.add_argument("--beam", type=int, default=20, help="beam size of the generative model (0 = exact scoring)")
    parser.add_argument("--repeats", type=int, default=3, help="inference timings: median of this many")
    return parser.parse_args()


class EpochTimer(L.Callback):
    """Wall time of each training epoch (data loading included, GPU synchronised)."""

    def __init__(self, device: str) -> None:
        self.device, self.seconds, self.start = device, [], 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sync(self.device)
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sync(self.device)
        self.seconds.append(time.perf_counter() - self.start)


def bench_training(model: nn.Module, split: SequenceSplit, catalogue: Catalogue, cfg: RecommenderConfig,
                   epochs: int, device: str) -> dict:
    """A Lightning fit of exactly `epochs` epochs, validation disabled; seconds per epoch."""
    L.seed_everything(cfg.training.seed, workers=True, verbose=False)
    data = SequenceDataModule(split, max_len=model.config.max_len, batch_size=cfg.training.batch_size,
                              seed=cfg.training.seed)
    timer = EpochTimer(device)
    with tempfile.TemporaryDirectory(prefix="bench-recsys-") as tmp:
        trainer = L.Trainer(max_epochs=epochs, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[timer], deterministic=True, default_root_dir=tmp, **trainer_flags(device))
        with Timer(device) as fit:
            trainer.fit(RecommenderModule(model, split, catalogue.size, cfg.training), datamodule=data)
    steady = timer.seconds[1:]
    per_epoch = statistics.mean(steady) if steady else None
    return {"epochs": epochs, "training_windows": len(data.train_set), "batch_size": cfg.training.batch_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "epoch_seconds": [round(s, 3) for s in timer.seconds], "fit_seconds": round(fit.seconds, 2),
            "seconds_per_epoch_all": round(statistics.mean(timer.seconds), 3),
            "seconds_per_epoch_excluding_first": round(per_epoch, 3) if per_epoch is not None else None,
            "windows_per_second": rate(len(data.train_set), per_epoch or statistics.mean(timer.seconds)),
            "peak_rss_mib_after": peak_rss_mib()}


def wrapped(name: str, model: torch.nn.Module, context: FitContext) -> NeuralRecommender:
    """The registered recommender around an already trained network (what the test stage ranks with)."""
    recommender = REGISTRY[name](context)
    recommender.net = model.cpu().eval()
    return recommender


def test_histories(split: SequenceSplit) -> list[np.ndarray]:
    return [split.test_inputs(u) for u in range(len(split.user_ids))]


def bench_generative(model: SidGenerativeModel, split: SequenceSplit, context: FitContext, beam: int,
                     repeats: int) -> dict:
    """SID-generative ranking of all test users (beam search of width `beam`, 0 = exact scoring), after a
    warm-up batch."""
    model.config.beam_size = beam
    recommender = wrapped("sid-generative", model, context)
    users, histories = len(split.user_ids), test_histories(split)
    with Timer() as warm:  # builds the SID trie on first use
        recommend_batch(model, split, np.arange(min(BATCH, users)), "test", TOP_K, context.catalogue.size)
    seconds = median_seconds(lambda: recommender.recommend(histories, TOP_K, users=split.user_ids), repeats)
    return {"users": users, "k": TOP_K, "beam_size": beam, "batch_size": BATCH,
            "warmup_batch_seconds": round(warm.seconds, 3), "seconds": round(seconds, 3),
            "users_per_second": rate(users, seconds)}


def bench_dense(model: DenseSequentialModel, split: SequenceSplit, context: FitContext, repeats: int) -> dict:
    """The dense test ranking (user vectors + FAISS + exclusions), and the raw IndexFlatIP.search of
    precomputed vectors."""
    recommender = wrapped("faiss-dense", model, context)
    users, histories = len(split.user_ids), test_histories(split)
    recommender.recommend(histories, TOP_K)  # warm-up
    path = median_seconds(lambda: recommender.recommend(histories, TOP_K), repeats)
    items = torch.as_tensor(left_pad(histories, model.config.max_len))
    queries = torch.cat([model.user_vectors(b) for b in items.split(BATCH)]).numpy().astype(np.float32)
    index = build_index(model.item.weight.detach().cpu().numpy())
    depth = min(TOP_K + max(len(h) for h in histories), index.ntotal)  # what dense_topk searches

    def search(k: int) -> None:
        for start in range(0, users, BATCH):
            index.search(queries[start:start + BATCH], k)

    search(TOP_K)  # warm-up
    raw_k = median_seconds(lambda: search(TOP_K), repeats)
    raw_depth = median_seconds(lambda: search(depth), repeats)
    return {"users": users, "k": TOP_K, "dense_topk_seconds": round(path, 4),
            "dense_topk_users_per_second": rate(users, path), "raw_search_batch_size": BATCH,
            "raw_search_k_seconds": round(raw_k, 5), "raw_search_k_users_per_second": rate(users, raw_k),
            "raw_search_depth": depth, "raw_search_depth_seconds": round(raw_depth, 5),
            "raw_search_depth_users_per_second": rate(users, raw_depth)}


def bench_content(split: SequenceSplit, embeddings: np.ndarray, cfg: RecommenderConfig, repeats: int) -> dict:
    """The FAISS content baseline (content_recommend: user vectors, index build, search, exclusions)."""
    users = len(split.user_ids)
    content_recommend(split, embeddings, "test", TOP_K, decay=cfg.content_decay)  # warm-up
    seconds = median_seconds(lambda: content_recommend(split, embeddings, "test", TOP_K, decay=cfg.content_decay),
                             repeats)
    return {"users": users, "k": TOP_K, "seconds": round(seconds, 4), "users_per_second": rate(users, seconds)}


NOTES = [
    "models are only fitted for --epochs epochs (not converged, no checkpoint selection): fine for throughput, "
    "which does not depend on the weights",
    "training: Lightning fit, validation disabled (limit_val_batches=0), deterministic=True as in the pipeline; "
    "epoch_seconds from on_train_epoch_start/end hooks, data loading included",
    "inference runs on CPU whatever --device, as in the pipeline (train_recommender returns the model on CPU; "
    "the recommenders' `recommend` takes and returns CPU arrays)",
    "the dense ranking computes user vectors in batches of 256 and searches depth = k + longest history; "
    "the raw search uses precomputed user vectors in batches of 256",
    "content_recommend scores all users in one call (the pipeline's function has no batching)",
    "timings: median of --repeats runs after one warm-up; peak_rss_mib: ru_maxrss of the whole process",
]


def main() -> None:
    args = parse_args()
    quiet()
    cfg = RecommenderConfig()
    catalogue, embeddings, sids = read_run_inputs(args.run)
    split = make_split(cfg.split, load_movielens(args.dataset).ratings, catalogue)
    figures: dict = {"split": split.name, "users": len(split.user_ids), "items": catalogue.size,
                     "faiss_threads": faiss.omp_get_max_threads(), "training": {}, "inference": {}}
    models, context = {}, FitContext(catalogue, embeddings, sids, cfg)
    for name in ("faiss-dense", "sid-generative"):
        models[name] = REGISTRY[name].build(context).build_module()
        figures["training"][name] = bench_training(models[name], split, catalogue, cfg, args.epochs, args.device)
    figures["inference"]["sid-generative"] = bench_generative(models["sid-generative"], split, context,
                                                              args.beam, args.repeats)
    figures["inference"]["faiss-dense"] = bench_dense(models["faiss-dense"], split, context, args.repeats)
    figures["inference"]["faiss-content"] = bench_content(split, embeddings, cfg, args.repeats)
    figures["peak_rss_mib"] = peak_rss_mib()
    print(write_result(f"recsys-{Path(args.dataset).name}", args.device, figures, NOTES))


if __name__ == "__main__":
    main()
