"""Whole-sequence windows vs one sampled prefix per user: validation NDCG@10 per minute of training.

    .venv/bin/python bench/sampling.py --dataset ml-1m --run runs/ml-1m --preset ml-1m --minutes 5

Both ways train the same model (built as `sidrec run --preset` builds it) for the same wall-clock budget
(Lightning's max_time, validation included), with validation NDCG@10 measured along the way and plotted
against training time alone. Result:
bench/results/sampling-<dataset>.json and a plot beside it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import matplotlib
import numpy as np
from common import RESULTS_DIR, peak_rss_mib, quiet, trainer_flags, write_result

from recsys.data.movielens import load_movielens
from recsys.data.splits import make_split
from recsys.models import REGISTRY, FitContext
from recsys.models.config import recommender_config
from recsys.runs.presets import get_run_preset
from recsys.runs.run_dir import read_run_inputs
from recsys.train.batches import SequenceDataModule
from recsys.train.fit import MONITOR, RecommenderModule

matplotlib.use("Agg")
import matplotlib.pyplot as plt


class Curve(L.Callback):
    """Records (training seconds so far, validation NDCG@10) at every validation; validation time excluded."""

    def __init__(self) -> None:
        self.train_seconds, self.points, self.start = 0.0, [], None

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def _stop_clock(self) -> None:
        if self.start is not None:
            self.train_seconds += time.perf_counter() - self.start
            self.start = None

    # Lightning validates inside the training epoch, before on_train_epoch_end: stop the clock at either.
    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._stop_clock()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._stop_clock()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        ndcg = float(trainer.callback_metrics[MONITOR])
        self.points.append({"epoch": trainer.current_epoch + 1, "train_seconds": round(self.train_seconds, 1),
                            "ndcg@10": round(ndcg, 4)})


def measure(model_name: str, sampling: str, args: argparse.Namespace, split, catalogue, embeddings,
            sids) -> dict:
    cfg = recommender_config(get_run_preset(args.preset).recommender)
    cfg.training.sampling = sampling
    L.seed_everything(cfg.training.seed, workers=True, verbose=False)
    model = REGISTRY[model_name].build(FitContext(catalogue, embeddings, sids, cfg)).build_module()
    data = SequenceDataModule(split, max_len=cfg.backbone.max_len, batch_size=cfg.training.batch_size,
                              seed=cfg.training.seed, sampling=sampling)
    curve = Curve()
    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as tmp:
        trainer = L.Trainer(max_time={"minutes": args.minutes}, max_epochs=-1, num_sanity_val_steps=0,
                            check_val_every_n_epoch=args.val_every[sampling], logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[curve], deterministic=True, default_root_dir=tmp,
                            **trainer_flags(args.device))
        trainer.fit(RecommenderModule(model, split, catalogue.size, cfg.training), datamodule=data)
    best = max(curve.points, key=lambda p: p["ndcg@10"]) if curve.points else None
    return {"examples_per_epoch": len(data.train_set), "epochs": trainer.current_epoch, "curve": curve.points,
            "best": best}


def plot(results: dict, path: Path, dataset: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, r in results.items():
        xs = [p["train_seconds"] / 60 for p in r["curve"]]
        ax.plot(xs, [p["ndcg@10"] for p in r["curve"]], marker="o", markersize=3, label=key)
    ax.set(xlabel="training minutes (validation excluded)", ylabel="validation NDCG@10",
           title=f"{dataset}: whole-sequence windows vs sampled prefixes")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--run", required=True, type=Path, help="a run folder with movies/embeddings/sids")
    parser.add_argument("--preset", default="ml-1m")
    parser.add_argument("--models", nargs="+", default=["faiss-dense"])
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget of each fit")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    # A prefix epoch is one example per user, a window epoch every target once: validate at similar cost.
    args.val_every = {"windows": 1, "prefixes": 4}
    quiet()
    dataset = load_movielens(args.dataset)
    catalogue, embeddings, sids = read_run_inputs(args.run)
    split = make_split("leave-one-out", dataset.ratings, catalogue)
    results = {f"{m} / {s}": measure(m, s, args, split, catalogue, embeddings, sids)
               for m in args.models for s in ("windows", "prefixes")}
    name = f"sampling-{dataset.name}"
    plot(results, RESULTS_DIR / f"{name}.png", dataset.name)
    per_minute = {k: round(r["best"]["ndcg@10"], 4) if r["best"] else float(np.nan) for k, r in results.items()}
    write_result(name, args.device, {"minutes_each": args.minutes, "best_ndcg@10_within_budget": per_minute,
                                     "runs": results, "peak_rss_mib": peak_rss_mib()},
                 notes=[f"each fit: {args.minutes} min of training; plot: {name}.png"])


if __name__ == "__main__":
    main()
