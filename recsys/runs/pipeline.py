"""`sidrec run`: the whole pipeline of one run preset, timed, ending in `runs/<name>/report.md`.

fetch + load -> text and embeddings -> RQ-VAE and SIDs -> every recommender on one split -> metrics,
then `timings.json` (wall time per stage, peak memory, device) and `report.md` beside the run's artifacts.
With several seeds (`run_seeds`), each seed is such a run in its own folder, and a summary sits beside them.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from recsys.data import movielens
from recsys.data.enrichment import load_enrichment
from recsys.models.config import RecommenderConfig, recommender_config
from recsys.runs.presets import RunPreset, get_run_preset
from recsys.runs.recommend_stage import run_recommenders
from recsys.runs.report import write_report
from recsys.runs.sid_stage import SidConfig, build_semantic_ids
from recsys.runs.stages import run_lock
from rqsid.embed import DEFAULT_MODEL
from rqsid.io import process_rank, read_json, write_json


@dataclass
class RunOptions:
    preset: str = "ml-100k"
    dataset: str | None = None  # default: the preset's dataset
    seed: int = 42
    encoder: str = DEFAULT_MODEL
    split: str = "leave-one-out"
    models: tuple[str, ...] | None = None
    compare_seed: bool = False
    sid_preset: str | None = None  # the tokenizer (`rqsid.presets`); default: the run preset's
    # SVD factors of the training interactions in the tokenizer's input (0: text only), and whether it reads
    # them alone; None: the run preset's (`RunPreset.sid_collaborative`)
    sid_collaborative: int | None = None
    sid_collaborative_only: bool | None = None
    sid_unrated_factors: str | None = None  # "zero" or "text" (`recsys.data.collaborative.UNRATED_FACTORS`)
    sid_overrides: dict = field(default_factory=dict)
    recommender_overrides: dict = field(default_factory=dict)
    trainer: dict = field(default_factory=dict)
    command: str = ""
    enrichment: str | None = None  # plot summaries etc. (`recsys.data.enrichment.load_enrichment`)
    force: bool = False  # redo finished stages too
    resume: bool = False  # continue interrupted trainings from their last checkpoints
    encode_devices: tuple[str, ...] = ()  # one sentence-transformers process per device
    seeds: tuple[int, ...] = ()  # several: one complete run per seed under runs/<name>/seed-<s>/, summarised


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024**3 if sys.platform == "darwin" else 1024**2)


def device_description(trainer: dict) -> str:
    if torch.cuda.is_available() and trainer.get("accelerator") in ("gpu", "cuda", "auto", None):
        return f"{torch.cuda.get_device_name(0)} (training); CPU for FAISS and data"
    return f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def run_seeds(run_dir: Path, options: RunOptions) -> dict:
    """One complete run per seed in run_dir/seed-<s>/ (RQ-VAE included, so SID variance counts), then the
    summary over seeds in run_dir (`recsys.runs.multiseed`); returns its metrics.json content."""
    from recsys.runs.multiseed import refuse_mixing, seed_dir, summarise_seeds

    run_dir = Path(run_dir)
    seeds = list(dict.fromkeys(options.seeds))
    refuse_mixing(run_dir)
    # one lock per seed folder, so that seeds may run in parallel processes. A seed that another process is
    # running is waited for, then finds its stages finished: a summary started beside the seeds' own
    # processes then follows the slowest one instead of failing. The summary holds the run folder.
    for seed in seeds:
        with run_lock(seed_dir(run_dir, seed), wait=True):
            run_pipeline(seed_dir(run_dir, seed), replace(options, seed=seed, seeds=()))
    with run_lock(run_dir, wait=True):
        return summarise_seeds(run_dir, seeds, extra={"command": options.command, "preset": options.preset})


def collaborative_settings(options: RunOptions, preset: RunPreset) -> dict:
    """SidConfig's collaborative settings of a run: each option the run does not set is the preset's. With
    no factors (dims 0, e.g. `--sid-collaborative 0` on a preset with collaborative IDs) the tokenizer reads
    text alone, unless the run asks for factor settings too (then SidConfig refuses them)."""
    dims = preset.sid_collaborative if options.sid_collaborative is None else options.sid_collaborative
    only, unrated = options.sid_collaborative_only, options.sid_unrated_factors
    return {"collaborative_dims": dims,
            "collaborative_only": (bool(dims) and preset.sid_collaborative_only) if only is None else only,
            "unrated_factors": (preset.sid_unrated_factors if dims else "zero") if unrated is None else unrated}


def run_configs(options: RunOptions) -> tuple[RecommenderConfig, SidConfig]:
    """The recommenders' and the SID stage's configs of a run; every setting is checked here, so call it
    before any work (a bad `--set` then fails before a folder is made)."""
    preset = get_run_preset(options.preset)
    top = {"split": options.split, **({"models": options.models} if options.models else {})}
    cfg = recommender_config({**preset.recommender, **options.recommender_overrides}, seed=options.seed,
                             trainer=dict(options.trainer), **top)
    sid_config = SidConfig(preset=options.sid_preset or preset.sid_preset, encoder=options.encoder, seed=options.seed,
                           encode_devices=options.encode_devices, **collaborative_settings(options, preset),
                           split=options.split, compare_seed=options.compare_seed, trainer=dict(options.trainer),
                           overrides={**preset.sid_overrides, **options.sid_overrides})
    return cfg, sid_config


def run_pipeline(run_dir: Path, options: RunOptions) -> dict:
    """Run every stage into run_dir; returns timings.json's content (metrics are in metrics.json)."""
    run_dir = Path(run_dir)
    if any(run_dir.glob("seed-*/metrics.json")):
        raise ValueError(f"{run_dir} holds a run over several seeds; a single-seed run needs a directory of its own")
    preset = get_run_preset(options.preset)
    begin = time.perf_counter()
    dataset = movielens.load_movielens(options.dataset or preset.dataset)
    if options.enrichment:
        dataset = dataset.with_enrichment(load_enrichment(options.enrichment))
    stages = {"fetch and load": round(time.perf_counter() - begin, 1)}
    cfg, sid_config = run_configs(options)
    quality = build_semantic_ids(dataset, run_dir, sid_config, force=options.force, resume=options.resume)
    stages.update(quality["seconds"] or {"Semantic IDs (finished before, skipped)": 0.0})
    metrics = run_recommenders(dataset, run_dir, cfg, force=options.force, resume=options.resume)
    reused = set(metrics.get("reused", ()))  # finished by an earlier run: the seconds are that run's
    stages.update({f"{name} ({'finished before' if name in reused else 'train + test'})": s
                   for name, s in metrics["seconds"].items()})
    if not quality["seconds"] and reused >= set(metrics["seconds"]) and (run_dir / "timings.json").exists():
        # nothing ran (a summary's pass over finished seeds, say): the timings stay those of the run that did
        # the work, as the models' seconds in metrics.json do
        return read_json(run_dir / "timings.json")
    timings = {"command": options.command, "preset": options.preset, "dataset": dataset.name,
               "device": device_description(options.trainer), "stages": stages,
               "total_seconds": round(time.perf_counter() - begin, 1), "peak_rss_gib": round(peak_rss_gib(), 2)}
    if torch.cuda.is_available():
        timings["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    write_json(timings, run_dir / "timings.json")
    if process_rank() == 0:  # the report reads metrics.json, which rank 0 alone writes
        write_report(run_dir)
    return timings
