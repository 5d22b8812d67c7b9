"""Does torch.compile speed up a training step of a learned model on this CPU? Eager vs compiled.

    OMP_NUM_THREADS=1 .venv/bin/python bench/compile_check.py --model sid-generative --mode eager
    OMP_NUM_THREADS=1 .venv/bin/python bench/compile_check.py --model sid-generative --mode compile

Builds the model as the ml-1m preset does from a run with the SID stage done (--run), times `--steps`
optimiser steps after 5 untimed ones (median CPU seconds of this process per step, times 177 steps per
epoch) and reports the first step's wall time, which holds the compilation. Prints; writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import quiet
from epoch_speed import build, optimiser_of

from recsys.data.movielens import load_movielens
from recsys.data.splits import make_split
from recsys.models.config import recommender_config
from recsys.runs.presets import get_run_preset
from recsys.runs.run_dir import read_run_inputs
from recsys.train.batches import SequenceDataModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sid-generative")
    parser.add_argument("--mode", choices=["eager", "compile"], default="eager")
    parser.add_argument("--run", default="runs/ml-1m-base")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    quiet()
    cfg = recommender_config(get_run_preset("ml-1m").recommender, progress=False)
    catalogue, embeddings, sids = read_run_inputs(Path(args.run))
    split = make_split("leave-one-out", load_movielens("ml-1m").ratings, catalogue)
    torch.manual_seed(0)
    model = build(args.model, cfg, catalogue, embeddings, sids)
    data = SequenceDataModule(split, max_len=cfg.backbone.max_len, batch_size=cfg.training.batch_size, seed=0)
    data.setup()
    optimiser = optimiser_of(model, cfg)
    loss_of = torch.compile(model.loss, dynamic=True) if args.mode == "compile" else model.loss
    loader = iter(data.train_dataloader())
    model.train()
    cpu_seconds, begin = [], time.perf_counter()
    for step in range(5 + args.steps):
        start = time.process_time()
        loss = loss_of(*next(loader))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step == 0:
            print(f"first step (compilation included): {time.perf_counter() - begin:.1f} s wall", flush=True)
        if step >= 5:
            cpu_seconds.append(time.process_time() - start)
    median = statistics.median(cpu_seconds)
    print(f"{args.model} {args.mode}: {median:.4f} CPU s per step, {median * len(loader):.1f} per epoch")


if __name__ == "__main__":
    main()
