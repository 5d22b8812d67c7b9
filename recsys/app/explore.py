"""Looking at users of a finished run: the helpers behind notebooks/explore_user_histories.ipynb.

Tables come back as pandas frames; plots draw into a matplotlib Axes the caller gives, so a notebook
lays them out as it likes. The top-k lists are the run's own evaluation (predictions/<model>.parquet:
each model's test-stage ranking, from the history without the held-out movie), so what is shown is
exactly what the metrics scored.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from recsys.evaluation.evaluate import ranked_matrix
from recsys.evaluation.metrics import ndcg_at_k
from recsys.models import MODELS
from recsys.runs.finished_run import FinishedRun

HELD_OUT = "★ "  # marks the held-out test movie in a top-k table


def evaluated_models(run: FinishedRun) -> list[str]:
    return [m for m in MODELS if (run.run_dir / "predictions" / f"{m}.parquet").exists()]


def targets(run: FinishedRun) -> pd.Series:
    """user_id -> the held-out test movie_id."""
    frame = pd.read_parquet(run.run_dir / "test_targets.parquet")
    return frame.set_index("user_id")["movie_id"]


def typical_user(run: FinishedRun) -> int:
    """An evaluated user with the median history length (a default for the notebook)."""
    lengths = run.ratings.groupby("user_id").size().reindex(targets(run).index)
    return int((lengths - lengths.median()).abs().idxmin())


def per_user_ndcg(run: FinishedRun, k: int = 10) -> pd.DataFrame:
    """One row per evaluated user: history_length (ratings before the held-out one) and NDCG@k per model."""
    target = targets(run).sort_index()
    users = target.index.to_numpy()
    lengths = run.ratings.groupby("user_id").size().reindex(users).to_numpy() - 1
    frame = pd.DataFrame({"history_length": lengths}, index=pd.Index(users, name="user_id"))
    for model in evaluated_models(run):
        predictions = pd.read_parquet(run.run_dir / "predictions" / f"{model}.parquet")
        frame[model] = ndcg_at_k(ranked_matrix(predictions, users), target.to_numpy(), k)
    return frame


def top_k_side_by_side(run: FinishedRun, user_id: int, k: int = 10) -> pd.DataFrame:
    """Rank x model table of titles for one user; the held-out movie is marked with HELD_OUT."""
    held_out = int(targets(run)[user_id])
    titles = run.movies.set_index("movie_id")["title"]
    columns = {}
    for model in evaluated_models(run):
        predictions = pd.read_parquet(run.run_dir / "predictions" / f"{model}.parquet")
        movies = predictions[predictions["user_id"] == user_id].nsmallest(k, "rank")["movie_id"]
        columns[model] = [(HELD_OUT if m == held_out else "") + titles[m] for m in movies]
    table = pd.DataFrame(columns, index=pd.RangeIndex(1, k + 1, name="rank"))
    table.attrs["held_out"] = titles[held_out]
    return table


def plot_rating_history(run: FinishedRun, user_id: int, ax: Axes) -> None:
    """Each rating over time (jittered so equal stars do not hide each other); the held-out one in red."""
    history = run.history(user_id)
    when = pd.to_datetime(history["timestamp"], unit="s")
    jitter = np.random.default_rng(user_id).uniform(-0.15, 0.15, len(history))
    ax.scatter(when, history["rating"] + jitter, s=12, alpha=0.6, label="rating")
    held = history["movie_id"] == targets(run).get(user_id, -1)
    ax.scatter(when[held], history["rating"][held], s=60, color="red", marker="*", label="held-out (test)")
    ax.set(ylabel="stars", title=f"User {user_id}: {len(history)} ratings over time")
    ax.legend(fontsize=8, loc="lower left")
    ax.tick_params(axis="x", labelrotation=30)


def plot_genre_mix(run: FinishedRun, user_id: int, ax: Axes, top: int = 10) -> None:
    """Share of the user's movies in each genre, beside the share among all ratings."""
    genres = run.movies["genres"]
    def shares(items: np.ndarray) -> pd.Series:
        return pd.Series([g for i in items for g in genres.iloc[i]]).value_counts() / len(items)
    user = shares(run.history(user_id)["item"].to_numpy())[:top][::-1]
    everyone = shares(run.ratings["item"].to_numpy()).reindex(user.index).fillna(0)
    y = np.arange(len(user))
    ax.barh(y + 0.2, user, 0.4, label=f"user {user_id}")
    ax.barh(y - 0.2, everyone, 0.4, label="all ratings", color="lightgray")
    ax.set(yticks=y, yticklabels=user.index, xlabel="share of rated movies", title="Genre mix")
    ax.legend(fontsize=8)


def tree_layout(paths: np.ndarray) -> list[dict[tuple, float]]:
    """y position of every prefix at each depth 1..T of `paths` (N, T): leaves in lexicographic order, a
    node at the mean of its children, so paths that share a prefix run together and never cross."""
    leaves = sorted({tuple(p) for p in paths.tolist()})
    layout = [{leaf: float(i) for i, leaf in enumerate(leaves)}]
    for depth in range(paths.shape[1] - 1, 0, -1):
        below: dict[tuple, list[float]] = {}
        for key, y in layout[0].items():
            below.setdefault(key[:depth], []).append(y)
        layout.insert(0, {key: float(np.mean(ys)) for key, ys in below.items()})
    return layout


def plot_sid_paths(run: FinishedRun, user_id: int, ax: Axes, labelled: int = 8) -> None:
    """The user's movies as a tree of SID prefixes: level-1 code -> level-2 -> level-3, the line width the
    number of movies on an edge; the held-out movie's path in red. The `labelled` busiest level-1
    prefixes carry their labels (sid_labels.parquet)."""
    history = run.history(user_id)
    levels = run.sids.shape[1] - 1  # learned levels; the last token only numbers collisions
    paths = run.sids[history["item"].to_numpy(), :levels]
    layout = tree_layout(paths)
    for depth in range(1, levels):
        edges = Counter(tuple(p[:depth + 1]) for p in paths.tolist())
        for edge, count in edges.items():
            ax.plot([depth, depth + 1], [layout[depth - 1][edge[:depth]], layout[depth][edge]],
                    color="tab:blue", lw=0.6 + 0.8 * count, alpha=0.6, solid_capstyle="round")
    held = history["movie_id"] == targets(run).get(user_id, -1)
    for path in paths[held.to_numpy()].tolist():
        ax.plot(range(1, levels + 1), [layout[d][tuple(path[:d + 1])] for d in range(levels)], color="red", lw=2,
                marker="*", ms=9, label="held-out movie")
    first = pd.Series(paths[:, 0]).value_counts().head(labelled)
    for code, count in first.items():
        label = run.label_of.get(str(code), "")
        ax.annotate(f"{code}: {label[:38]} ({count})", (1, layout[0][(code,)]), xytext=(-6, 0),
                    textcoords="offset points", ha="right", va="center", fontsize=7)
    ax.set(xticks=range(1, levels + 1), xticklabels=[f"level {d}" for d in range(1, levels + 1)], yticks=[],
           xlim=(-0.45, levels + 0.1), title=f"User {user_id}'s {len(paths)} movies in the SID tree")
    if held.any():
        ax.legend(fontsize=8, loc="lower right")


def plot_length_vs_ndcg(per_user: pd.DataFrame, ax: Axes, bins: int = 6) -> None:
    """Mean NDCG@10 of each model over users binned by history length (quantile bins, log x)."""
    groups = pd.qcut(per_user["history_length"], bins, duplicates="drop")
    means = per_user.drop(columns="history_length").groupby(groups, observed=True).mean()
    centres = per_user.groupby(groups, observed=True)["history_length"].median()
    for model in means:
        ax.plot(centres, means[model], marker="o", label=model)
    ax.set(xscale="log", xlabel="history length (median of the bin)", ylabel="NDCG@10 (mean over users)",
           title=f"History length vs NDCG@10 ({len(per_user)} users, {len(centres)} bins)")
    ax.legend(fontsize=8)
