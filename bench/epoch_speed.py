"""Seconds per training epoch and per validation of the two learned models, with a torch.profiler summary.

    .venv/bin/python bench/epoch_speed.py --dataset ml-1m --run runs/ml-1m --preset ml-1m --label after

Builds each model exactly as `sidrec run --preset` does, iterates the real training DataLoader and times
`batches` optimiser steps (forward, backward, AdamW) after `warmup` untimed ones; an epoch's time is the
per-step median times the number of steps per epoch, in wall seconds and in this process's CPU seconds
(with OMP_NUM_THREADS=1 the CPU figure is the fair one on a machine that is busy with other work).
Validation time is one ranking of every validation user by the model's own `recommend` (what Lightning's
validation step calls). The profile of a few steps goes to
bench/results/epoch-profile-<dataset>-<label>-<model>.txt; figures to
bench/results/epoch-speed-<dataset>-<label>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS_DIR, quiet, write_result
from torch.profiler import ProfilerActivity, profile

from recsys.data.movielens import load_movielens
from recsys.data.splits import make_split
from recsys.models.config import recommender_config
from recsys.runs.presets import get_run_preset
from recsys.runs.run_dir import read_run_inputs
from recsys.train.batches import SequenceDataModule
from recsys.train.fit import recommend_batch


def build(name: str, cfg, catalogue, embeddings, sids) -> torch.nn.Module:
    import recsys.runs.recommend_stage as stage

    if hasattr(stage, "model_builders"):  # the code before the model registry, for "before" figures (a worktree)
        return stage.model_builders(cfg, catalogue, sids)[name]()
    from recsys.models import REGISTRY, FitContext

    return REGISTRY[name].build(FitContext(catalogue, embeddings, sids, cfg)).build_module()


def trained_by(model: torch.nn.Module, cfg):  # -> RecommenderModule (imported here: Lightning)
    """The pipeline's LightningModule around `model`: its training_step (the loss with any future targets)
    and the optimiser it configures."""
    from recsys.train.fit import RecommenderModule

    # The learning-rate schedule needs a Trainer's step count and costs nothing per step: left out here
    training = dataclasses.replace(cfg.training, lr_schedule="constant", warmup=0.0)
    return RecommenderModule(model, None, 0, training)


def time_steps(model: torch.nn.Module, data: SequenceDataModule, cfg, warmup: int, batches: int) -> dict:
    module = trained_by(model, cfg)
    optimiser = module.configure_optimizers()
    loader = iter(data.train_dataloader())
    times, cpu_times = [], []
    model.train()
    for step in range(warmup + batches):
        start, cpu_start = time.perf_counter(), time.process_time()
        inputs, targets, users = next(loader)
        loss = module.training_step([inputs, targets, users], 0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    steps = len(data.train_dataloader())
    per_step, cpu_per_step = statistics.median(times), statistics.median(cpu_times)
    # CPU seconds of this process: with one thread, less sensitive than wall time to other work on the machine
    return {"steps_per_epoch": steps, "seconds_per_step": round(per_step, 4),
            "epoch_seconds": round(per_step * steps, 1), "cpu_seconds_per_step": round(cpu_per_step, 4),
            "epoch_cpu_seconds": round(cpu_per_step * steps, 1)}


def profile_steps(model: torch.nn.Module, data: SequenceDataModule, cfg, steps: int, path) -> None:
    module = trained_by(model, cfg)
    optimiser = module.configure_optimizers()
    loader = iter(data.train_dataloader())
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            inputs, targets, users = next(loader)
            loss = module.training_step([inputs, targets, users], 0)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    path.write_text(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def time_validation(model: torch.nn.Module, split, num_items: int, batch: int = 256) -> float:
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, len(split.user_ids), batch):
            rows = np.arange(first, min(first + batch, len(split.user_ids)))
            extra = {"beam_size": 20} if "beam_size" in inspect.signature(recommend_batch).parameters else {}
            recommend_batch(model, split, rows, "valid", 10, num_items, **extra)
    return round(time.perf_counter() - start, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--run", required=True, help="a run directory with the SID stage done")
    parser.add_argument("--preset", default="ml-1m")
    parser.add_argument("--label", default="after", help="e.g. before / after, in the output file names")
    parser.add_argument("--models", nargs="+", default=["faiss-dense", "sid-generative"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-validation", action="store_true")
    args = parser.parse_args()
    quiet()
    from recsys.app.cli import parse_overrides

    cfg = recommender_config({**get_run_preset(args.preset).recommender, **parse_overrides(args.set)}, progress=False)
    catalogue, embeddings, sids = read_run_inputs(Path(args.run))
    split = make_split("leave-one-out", load_movielens(args.dataset).ratings, catalogue)
    results = {}
    for name in args.models:
        torch.manual_seed(0)
        model = build(name, cfg, catalogue, embeddings, sids)
        data = SequenceDataModule(split, max_len=cfg.backbone.max_len, batch_size=cfg.training.batch_size,
                                  seed=0, sampling=cfg.training.sampling)
        data.setup()
        results[name] = time_steps(model, data, cfg, args.warmup, args.batches)
        profile_steps(model, data, cfg, 5, RESULTS_DIR / f"epoch-profile-{args.dataset}-{args.label}-{name}.txt")
        if not args.no_validation:
            results[name]["validation_seconds"] = time_validation(model, split, catalogue.size)
        print(name, results[name], flush=True)
    write_result(f"epoch-speed-{args.dataset}-{args.label}", "cpu", {
        "preset": args.preset, "overrides": args.set, "torch_threads": torch.get_num_threads(),
        "models": results})


if __name__ == "__main__":
    main()
