"""Runs over several seeds: `runs/<name>/seed-<s>/` each a complete run, and their summary beside them.

    runs/<name>/seed-<s>/...   one finished run per seed (SIDs, models, predictions, per_user.parquet)
    runs/<name>/metrics.json   "models": mean over seeds; "sd": sample sd; "per_seed": every seed's figures;
                               "paired": SID-generative vs each model on per-user NDCG@10 averaged over seeds;
                               "slices" (a cold-start split): each slice's mean and sd over seeds
    runs/<name>/per_user.parquet   per-user NDCG@10 averaged over seeds (user_id, one column per model)
    runs/<name>/report.md      mean ± sd table, paired tests, one figure with every seed's point

Every figure is recomputable from the seed folders' predictions and targets.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recsys.evaluation.evaluate import paired_tests
from recsys.evaluation.significance import format_mean_sd, seed_summary
from recsys.runs.report import METRIC_ORDER, paired_lines, to_markdown
from rqsid.io import atomic_write, process_rank, read_json, write_json, write_parquet

# What `sidrec evaluate --seeds` shares between the seeds of one SID stage (linked into each seed folder).
SID_STAGE_FILES = ("movies.parquet", "embeddings.parquet", "sids.parquet", "sid_labels.parquet",
                   "sid_quality.json")


def seed_dir(run_dir: Path, seed: int) -> Path:
    return Path(run_dir) / f"seed-{seed}"


def refuse_mixing(run_dir: Path) -> None:
    """A directory holds one evaluation: a single-seed one or a summary over seeds, never both."""
    path = Path(run_dir) / "metrics.json"
    if path.exists() and "seeds" not in read_json(path):
        raise ValueError(f"{path} is a single-seed evaluation; give --seeds a run directory of its own")


def evaluate_seeds(dataset, run_dir: Path, cfg, seeds: list[int], *, force: bool = False,
                   resume: bool = False) -> dict:
    """`sidrec evaluate --seeds`: the recommenders once per seed on the run's one SID stage, each in
    run_dir/seed-<s>/ (the SID-stage files linked in), then the summary. Only model variance counts here;
    `sidrec run --seeds` also re-trains the RQ-VAE per seed."""
    from recsys.runs.recommend_stage import run_recommenders

    run_dir = Path(run_dir)
    refuse_mixing(run_dir)
    for seed in seeds:
        folder = seed_dir(run_dir, seed)
        folder.mkdir(parents=True, exist_ok=True)
        for name in SID_STAGE_FILES:
            if (run_dir / name).exists():
                (folder / name).unlink(missing_ok=True)
                os.link(run_dir / name, folder / name)
        run_recommenders(dataset, folder, replace(cfg, training=replace(cfg.training, seed=seed)), force=force,
                         resume=resume)
    return summarise_seeds(run_dir, seeds, extra={"sids": "one SID stage shared by every seed"})


def _read_seed(run_dir: Path, seed: int) -> tuple[dict, pd.DataFrame]:
    folder = seed_dir(run_dir, seed)
    metrics_path, per_user_path = folder / "metrics.json", folder / "per_user.parquet"
    for path in (metrics_path, per_user_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: seed {seed} of {run_dir} has not finished")
    return read_json(metrics_path), pd.read_parquet(per_user_path).set_index("user_id")


def summarise_seeds(run_dir: Path, seeds: list[int], extra: dict[str, Any] | None = None) -> dict:
    """Write the summary of finished seed runs into run_dir; returns its metrics.json content ({} on a DDP
    rank other than 0: rank 0 alone writes the seeds' files, so another rank may not read them yet)."""
    if process_rank() != 0:
        return {}
    run_dir = Path(run_dir)
    read = {s: _read_seed(run_dir, s) for s in seeds}
    first = read[seeds[0]][0]
    for s, (m, _) in read.items():
        for key in ("dataset", "split", "num_users"):
            if m[key] != first[key]:
                raise ValueError(f"seed {s} of {run_dir} has {key} {m[key]!r}, seed {seeds[0]} has {first[key]!r}")
    summary = seed_summary({s: m["models"] for s, (m, _) in read.items()})
    tables = [t for _, t in read.values()]
    if any(not t.index.equals(tables[0].index) for t in tables):
        raise ValueError(f"the seed runs of {run_dir} evaluated different users")
    per_user = sum(tables) / len(tables)  # (users, models): per-user NDCG@10 averaged over seeds
    metrics = {
        "dataset": first["dataset"], "split": first["split"], "num_users": first["num_users"], "seeds": seeds,
        "models": {m: {k: v["mean"] for k, v in by.items()} for m, by in summary.items()},
        "sd": {m: {k: v["sd"] for k, v in by.items()} for m, by in summary.items()},
        "per_seed": {str(s): m["models"] for s, (m, _) in read.items()},
        "paired": paired_tests(per_user),
        "paired_per_seed": {str(s): m.get("paired", []) for s, (m, _) in read.items()},
        **({"slices": seed_slices({s: m["slices"] for s, (m, _) in read.items()})} if "slices" in first else {}),
        "seconds_per_seed": {str(s): m.get("seconds", {}) for s, (m, _) in read.items()},
        **(extra or {}),
    }
    write_parquet(per_user.reset_index().astype({"user_id": np.int32}), run_dir / "per_user.parquet")
    write_json(metrics, run_dir / "metrics.json")
    write_seed_report(run_dir, metrics)
    return metrics


def seed_slices(slices_by_seed: dict[int, dict]) -> dict:
    """Each slice of the users (e.g. the cold-start split's cold and warm targets) over seeds: its users,
    every model's mean and sd, as the summary holds them for all users. The slices are the split's, so
    every seed has the same users in each."""
    first = next(iter(slices_by_seed.values()))
    out = {}
    for name, part in first.items():
        summary = seed_summary({s: by[name]["models"] for s, by in slices_by_seed.items()})
        out[name] = {"num_users": part["num_users"],
                     "models": {m: {k: v["mean"] for k, v in by.items()} for m, by in summary.items()},
                     "sd": {m: {k: v["sd"] for k, v in by.items()} for m, by in summary.items()}}
    return out


def mean_sd_table(metrics: dict) -> pd.DataFrame:
    """Models x metrics, 'mean ± sd' cells, NDCG@10 descending."""
    order = sorted(metrics["models"], key=lambda m: -metrics["models"][m]["ndcg@10"])
    rows = {m: {k: format_mean_sd({"mean": metrics["models"][m][k], "sd": metrics["sd"][m][k]})
                for k in METRIC_ORDER if k in metrics["models"][m]} for m in order}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "model"
    return frame


def seeds_figure(run_dir: Path, metrics: dict) -> Path:
    """NDCG@10 per model: every seed's value as a dot, the mean as a bar with ± sd."""
    order = sorted(metrics["models"], key=lambda m: metrics["models"][m]["ndcg@10"])
    fig = Figure(figsize=(6.4, 0.45 * len(order) + 1.4))
    ax = fig.subplots()
    y = np.arange(len(order))
    means = [metrics["models"][m]["ndcg@10"] for m in order]
    sds = [metrics["sd"][m]["ndcg@10"] or 0.0 for m in order]
    ax.barh(y, means, xerr=sds, color="tab:orange", alpha=0.6, capsize=3)
    for row, model in enumerate(order):
        values = [by[model]["ndcg@10"] for by in metrics["per_seed"].values() if model in by]
        ax.scatter(values, np.full(len(values), row), color="black", s=10, zorder=3)
    ax.set(yticks=y, yticklabels=order, xlabel="test NDCG@10 (bar: mean ± sd; dots: seeds)",
           title=f"{metrics['dataset']}, {metrics['split']}: {len(metrics['seeds'])} seeds")
    fig.tight_layout()
    path = Path(run_dir) / "figures" / "seeds_ndcg10.png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def write_seed_report(run_dir: Path, metrics: dict) -> Path:
    figure = seeds_figure(run_dir, metrics)
    per_seed = pd.DataFrame({f"seed {s}": {m: v["ndcg@10"] for m, v in by.items()}
                             for s, by in metrics["per_seed"].items()}).round(4)
    per_seed.index.name = "model"
    parts = [
        f"# sidrec run `{Path(run_dir).name}`: {metrics['dataset']}, {metrics['split']}, seeds "
        f"{', '.join(map(str, metrics['seeds']))}",
        *([f"Command: `{metrics['command']}`."] if metrics.get("command") else []),
        f"{metrics['num_users']} users evaluated, full ranking over all movies. Each seed is a complete run "
        "(RQ-VAE and SIDs included) in `seed-<s>/`, with its own report.",
        "## Test metrics, mean ± sd over seeds", to_markdown(mean_sd_table(metrics)),
        paired_lines(metrics).replace("per-user NDCG@10", "per-user NDCG@10 averaged over seeds"),
        f"![NDCG@10 per seed]({figure.relative_to(run_dir).as_posix()})",
        "## NDCG@10 of every seed", to_markdown(per_seed),
    ]
    for name, part in (metrics.get("slices") or {}).items():
        if part["models"]:
            parts += [f"## Slice: {name} ({part['num_users']} users), mean ± sd over seeds",
                      to_markdown(mean_sd_table(part))]
    text = "\n\n".join(p for p in parts if p) + "\n"
    path = Path(run_dir) / "report.md"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
