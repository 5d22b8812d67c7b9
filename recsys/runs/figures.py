"""The run report's figures, drawn from the run's own files as PNG.

    codebook_usage.png    items per code at every SID level (sorted), against the codebook size
    prefix_tree.png       how many movies share each SID prefix, at depths 1 .. T-1
    training_curves.png   RQ-VAE losses and each recommender's train loss / validation NDCG@10 per epoch
    level_curves.png      validation NLL of the held-out movie, per SID level, and token / prefix accuracy
    metrics.png           Recall@K and NDCG@K of every model, one panel per K

Each function takes the run directory and returns the PNG's path (None when the run lacks the input).
Figures are made with matplotlib's object API (`Figure`, not pyplot), so drawing them needs no display
and never changes the backend of a notebook that imports this module.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recsys.runs.run_dir import RunDir
from rqsid.io import atomic_write

FIGURES = "figures"
log = logging.getLogger(__name__)


def _save(fig: Figure, run_dir: Path, name: str) -> Path:
    fig.tight_layout()
    return atomic_write(Path(run_dir) / FIGURES / name, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def _sid_matrix(run_dir: Path) -> np.ndarray:
    return RunDir(run_dir).sids


def codebook_usage(run_dir: Path, codebook_size: int | None = None) -> Path:
    sids = _sid_matrix(run_dir)
    levels = sids.shape[1]
    fig = Figure(figsize=(3.2 * levels, 2.8))
    axes = fig.subplots(1, levels, squeeze=False)[0]  # own y scales: the collision token dwarfs the rest
    for level, ax in enumerate(axes):
        counts = np.sort(np.bincount(sids[:, level]))[::-1]
        ax.bar(np.arange(len(counts)), counts, width=1.0, color="tab:blue")
        last = level == levels - 1
        if not last:
            ax.axhline(len(sids) / (codebook_size or len(counts)), color="k", ls="--", lw=0.8, label="uniform")
            ax.legend(fontsize=7)
        size = f" of {codebook_size}" if codebook_size and not last else ""
        ax.set_title(f"{'collision token' if last else f'level {level + 1}'}: {np.count_nonzero(counts)} codes"
                     f"{size} used", fontsize=9)
        ax.set_xlabel("code (sorted by movies)")
    axes[0].set_ylabel("movies")
    fig.suptitle(f"Codebook usage: {len(sids)} movies", fontsize=10)
    return _save(fig, run_dir, "codebook_usage.png")


def prefix_tree(run_dir: Path) -> Path:
    sids = _sid_matrix(run_dir)
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    for depth in range(1, sids.shape[1]):
        sizes = np.sort(np.unique(sids[:, :depth], axis=0, return_counts=True)[1])[::-1]
        ax.step(np.arange(1, len(sizes) + 1), sizes, where="post",
                label=f"depth {depth}: {len(sizes)} prefixes, largest {sizes[0]}")
    ax.set(xscale="log", yscale="log", xlabel="prefix (ranked by size)", ylabel="movies under the prefix",
           title="SID prefix tree: movies per prefix")
    ax.legend(fontsize=8)
    return _save(fig, run_dir, "prefix_tree.png")


def read_log(path: Path) -> pd.DataFrame:
    """A Lightning metrics.csv; a damaged one (e.g. two processes wrote it at once) is reported and read as
    empty, so the rest of the report is still made."""
    try:
        frame = pd.read_csv(path)
        if "epoch" not in frame:
            raise ValueError("no epoch column")
        return frame
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        log.warning("%s: unreadable training log (%s); its curves are left out of the figures", path, err)
        return pd.DataFrame({"epoch": []})


def _epoch_series(path: Path, column: str) -> pd.Series:
    frame = read_log(path)
    if column not in frame:
        return pd.Series(dtype=float)
    return frame.dropna(subset=[column]).groupby("epoch")[column].last()


def training_curves(run_dir: Path) -> Path | None:
    run_dir = Path(run_dir)
    rqvae = run_dir / "rqvae" / "logs" / "metrics.csv"
    models = sorted(p for p in (run_dir / "train").glob("*/logs/metrics.csv")) if (run_dir / "train").exists() else []
    if not rqvae.exists() and not models:
        return None
    fig = Figure(figsize=(13, 3.4))
    axes = fig.subplots(1, 3)
    if rqvae.exists():
        for column in ("val/reconstruction", "val/quantization", "val/loss"):
            axes[0].plot(_epoch_series(rqvae, column), label=column.removeprefix("val/"))
        axes[0].set(title="RQ-VAE (validation)", xlabel="epoch", ylabel="loss", yscale="log")
        axes[0].legend(fontsize=8)
    for path in models:
        name = path.parent.parent.name
        axes[1].plot(_epoch_series(path, "train/loss"), label=name)
        axes[2].plot(_epoch_series(path, "val/ndcg@10"), marker="o", markersize=3, label=name)
    axes[1].set(title="Recommenders: training loss", xlabel="epoch", ylabel="cross-entropy (nats per item)")
    axes[2].set(title="Recommenders: validation NDCG@10", xlabel="epoch", ylabel="NDCG@10")
    for ax in axes[1:]:
        if models:
            ax.legend(fontsize=8)
        else:  # e.g. a run of the count-based models alone: say so rather than draw an empty legend
            ax.text(0.5, 0.5, "no learned recommender in this run", ha="center", va="center",
                    transform=ax.transAxes)
    return _save(fig, run_dir, "training_curves.png")


def level_curves(run_dir: Path) -> Path | None:
    """Where the learned models' validation loss sits over training: nats per item for every model that
    logged them, and for models with SID levels each level's teacher-forced NLL and token accuracy beside
    greedy decoding's prefix accuracy (`diagnostics` of the networks, logged by `recsys.train.fit`)."""
    run_dir = Path(run_dir)
    logs = {p.parent.parent.name: read_log(p) for p in sorted((run_dir / "train").glob("*/logs/metrics.csv"))} \
        if (run_dir / "train").exists() else {}
    logs = {name: log for name, log in logs.items() if "val/nll" in log}
    if not logs:
        return None
    fig = Figure(figsize=(13, 3.4))
    axes = fig.subplots(1, 3)
    for name, log in logs.items():
        path = run_dir / "train" / name / "logs" / "metrics.csv"
        axes[0].plot(_epoch_series(path, "val/nll"), marker="o", markersize=3, label=name)
        levels = sorted(int(c.removeprefix("val/nll/level")) for c in log if c.startswith("val/nll/level"))
        for level in levels:
            line, = axes[1].plot(_epoch_series(path, f"val/nll/level{level}"), label=f"{name} level {level}")
            axes[2].plot(_epoch_series(path, f"val/acc/level{level}"), color=line.get_color(),
                         label=f"level {level}, true prefix")
            axes[2].plot(_epoch_series(path, f"val/greedy/level{level}"), color=line.get_color(), linestyle="--",
                         label=f"levels 1-{level}, greedy")
    axes[0].set(title="Validation NLL of the held-out movie", xlabel="epoch", ylabel="nats per item")
    axes[1].set(title="Per SID level (true prefix given)", xlabel="epoch", ylabel="nats")
    axes[2].set(title="Per SID level: token / prefix accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in axes:
        if ax.has_data():
            ax.legend(fontsize=7)
    return _save(fig, run_dir, "level_curves.png")


def metrics_bars(run_dir: Path, metrics: dict) -> Path:
    table = pd.DataFrame.from_dict(metrics["models"], orient="index")
    table = table.sort_values("ndcg@10")
    ks = sorted({int(c.split("@")[1]) for c in table.columns if "@" in c})
    fig = Figure(figsize=(4.2 * len(ks), 3.2))
    axes = fig.subplots(1, len(ks), sharey=True, squeeze=False)
    height = 0.38
    for ax, k in zip(axes[0], ks, strict=True):
        y = np.arange(len(table))
        ax.barh(y + height / 2, table[f"recall@{k}"], height, label=f"Recall@{k}", color="tab:blue")
        ax.barh(y - height / 2, table[f"ndcg@{k}"], height, label=f"NDCG@{k}", color="tab:orange")
        for value, pos in zip(table[f"ndcg@{k}"], y - height / 2, strict=True):
            ax.text(value, pos, f" {value:.3f}", va="center", fontsize=7)
        ax.set(yticks=y, yticklabels=table.index, title=f"K = {k}", xlabel="test metric")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{metrics['dataset']}, {metrics['split']}: {metrics['num_users']} users, full ranking", fontsize=10)
    return _save(fig, run_dir, "metrics.png")
