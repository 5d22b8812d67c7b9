"""Rows of the lever table (results/ml-1m/ablations/) read from finished runs, one per `label=RUN[:MODEL]`.

    .venv/bin/python bench/ablation_rows.py --reference default=runs/ml-1m-levers/base-s1 \\
        recipe=runs/ml-1m-levers/recipe-s1 film=runs/ml-1m-levers/film-s1 hybrid=runs/x:sid-hybrid

Each row: the best validation NDCG@10 and its epoch, the validation NLL there, the test NDCG@10 and
R@20 (computed once, at the end of the run), a paired test against the reference on per-user test
NDCG@10 (`recsys.evaluation.significance`), the model's wall minutes, and the SIDs' figures: level-1 perplexity and
"next shares code 1", the share of consecutive training items (t -> t + 1) whose level-1 codes are equal,
beside what random codes of the same sizes would give (the codes' alignment with what people watch next).
Prints Markdown; writes nothing.

`--plot PATH` also draws every row's best validation and test NDCG@10 (means over a row's seeds) into a PNG;
`--curves PATH` each row's validation NDCG@10 and NLL over the epochs (each seed a line).

Several seeds of a row: `label=RUN1,RUN2,RUN3` with `--reference default=REF1,REF2,REF3` (seed i of the
row against seed i of the reference, the same SIDs) prints one summary line after the per-seed rows:
mean ± sd over seeds, and the paired test on each user's test NDCG@10 averaged over the seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.movielens import load_movielens
from recsys.data.splits import make_split
from recsys.evaluation.significance import paired_comparison
from recsys.runs.figures import read_log
from recsys.runs.run_dir import RunDir

DEFAULT_MODEL = "sid-generative"


def parse(spec: str) -> tuple[str, list[tuple[Path, str]]]:
    """label=RUN[:MODEL][,RUN[:MODEL]...] -> the label and its (run, model) per seed."""
    label, _, where = spec.partition("=")
    if not label or not where:
        raise SystemExit(f"ablation_rows: {spec!r} is not label=RUN[:MODEL][,RUN[:MODEL]...]")
    seeds = []
    for part in where.split(","):
        run, _, model = part.partition(":")
        seeds.append((Path(run), model or DEFAULT_MODEL))
    return label, seeds


def per_user(run: Path, model: str) -> pd.Series:
    """Test NDCG@10 per user, indexed by user id."""
    return pd.read_parquet(run / "per_user.parquet", columns=["user_id", model]).set_index("user_id")[model]


def paired_text(mine: pd.Series, theirs: pd.Series) -> str:
    joined = pd.concat([mine.rename("a"), theirs.rename("b")], axis=1, join="inner")
    result = paired_comparison(joined["a"].to_numpy(), joined["b"].to_numpy())
    p = "n/a" if result.wilcoxon_p is None else f"{result.wilcoxon_p:.3g}"
    return f"{result.mean_difference:+.4f} [{result.ci_low:+.4f}, {result.ci_high:+.4f}], p = {p}"


def seed_summary_row(label: str, seeds: list[tuple[Path, str]], reference: list[tuple[Path, str]]) -> str:
    """Mean ± sd over seeds; the paired test on per-user test NDCG@10 averaged over the seeds."""
    tests = [json.loads((run / "metrics.json").read_text())["models"][model] for run, model in seeds]
    vals = [best_validation(run, model)[0] for run, model in seeds]

    def spread(values: list[float]) -> str:
        return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"

    paired = "(reference)"
    if reference != seeds:
        if len(reference) != len(seeds):
            raise SystemExit(f"ablation_rows: {label} has {len(seeds)} seeds, the reference {len(reference)}")
        mine = pd.concat([per_user(r, m) for r, m in seeds], axis=1).mean(axis=1)
        theirs = pd.concat([per_user(r, m) for r, m in reference], axis=1).mean(axis=1)
        paired = paired_text(mine, theirs)
    return (f"| {label} | {len(seeds)} seeds | {spread(vals)} | | {spread([t['ndcg@10'] for t in tests])} | "
            f"{spread([t['recall@20'] for t in tests])} | {paired} (per-user mean over seeds) | | | |")


def best_validation(run: Path, model: str) -> tuple[float, int, float]:
    """Best val NDCG@10, its epoch (1-based) and the val NLL logged at that check."""
    log = read_log(run / "train" / model / "logs" / "metrics.csv")
    checks = log.dropna(subset=["val/ndcg@10"])
    best = checks.loc[checks["val/ndcg@10"].idxmax()]
    nll = float(best["val/nll"]) if "val/nll" in best and pd.notna(best["val/nll"]) else float("nan")
    return float(best["val/ndcg@10"]), int(best["epoch"]) + 1, nll


def next_shares_first_code(run: Path, metrics: dict) -> tuple[float, float]:
    """Share of consecutive training pairs with equal level-1 codes, and its expectation under random codes
    (sum over codes of the squared share of training items that carry it)."""
    tables = RunDir(run)  # the catalogue and SIDs only: no embeddings to read
    catalogue, sids = tables.catalogue, tables.sids
    dataset = load_movielens(metrics.get("location") or metrics["dataset"])
    split = make_split(metrics["split"], dataset.ratings, catalogue)
    sequences = split.training_sequences()
    first = sids[:, 0]
    pairs = np.concatenate([first[s[:-1]] == first[s[1:]] for s in sequences if len(s) > 1])
    share = np.bincount(first[np.concatenate(sequences)]).astype(float)
    share /= share.sum()
    return float(pairs.mean()), float((share ** 2).sum())


def row(label: str, run: Path, model: str, reference: tuple[Path, str] | None) -> str:
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["models"][model]
    val, epoch, nll = best_validation(run, model)
    paired = "(reference)"
    if reference is not None and (run, model) != reference:
        paired = paired_text(per_user(run, model), per_user(*reference))
    minutes = metrics["seconds"][model] / 60
    quality = json.loads((run / "sid_quality.json").read_text())["presets"]
    level1 = next(iter(quality.values()))["levels"][0]["perplexity"]
    aligned, chance = next_shares_first_code(run, metrics)
    return (f"| {label} | {metrics['seed']} | {val:.4f} ({epoch}) | {nll:.3f} | {test['ndcg@10']:.4f} | "
            f"{test['recall@20']:.4f} | {paired} | {minutes:.1f} | {level1:.1f} | {aligned:.3f} ({chance:.3f}) |")


def plot(specs: list[tuple[str, list[tuple[Path, str]]]], path: Path) -> None:
    """One row per label: best validation and test NDCG@10 (the mean over its seeds), as dots on one axis."""
    from matplotlib.figure import Figure

    labels = [label for label, _ in specs][::-1]
    val = [np.mean([best_validation(r, m)[0] for r, m in seeds]) for _, seeds in specs][::-1]
    test = [np.mean([json.loads((r / "metrics.json").read_text())["models"][m]["ndcg@10"] for r, m in seeds])
            for _, seeds in specs][::-1]
    fig = Figure(figsize=(7, 0.32 * len(labels) + 1.6))
    ax = fig.subplots()
    ax.scatter(val, labels, marker="o", facecolors="none", edgecolors="C0", label="best validation")
    ax.scatter(test, labels, marker="o", color="C1", label="test (computed once)")
    ax.axvline(test[-1], color="C1", linewidth=0.8, linestyle=":")  # the first row: the reference
    ax.set_xlabel("NDCG@10")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8)  # above: clear of the x label
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def curves(specs: list[tuple[str, list[tuple[Path, str]]]], path: Path) -> None:
    """Validation NDCG@10 (left) and NLL (right) against the epoch, one colour per label, one line per seed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8))
    left, right = fig.subplots(1, 2)
    for colour, (label, seeds) in enumerate(specs):
        for i, (run, model) in enumerate(seeds):
            checks = read_log(run / "train" / model / "logs" / "metrics.csv").dropna(subset=["val/ndcg@10"])
            style = {"color": f"C{colour}", "label": label if i == 0 else None, "linewidth": 1}
            left.plot(checks["epoch"] + 1, checks["val/ndcg@10"], **style)
            if "val/nll" in checks:
                right.plot(checks["epoch"] + 1, checks["val/nll"], **style)
    for ax, name in ((left, "validation NDCG@10"), (right, "validation NLL (nats per item)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="label=RUN[:MODEL]")
    parser.add_argument("--reference", help="label=RUN[:MODEL] every row is paired against")
    parser.add_argument("--plot", type=Path, help="also draw every row's validation and test NDCG@10 into this PNG")
    parser.add_argument("--curves", type=Path, help="also draw every row's validation curves into this PNG")
    args = parser.parse_args()
    specs = [parse(s) for s in ([args.reference] if args.reference else []) + args.runs]
    reference = specs[0][1] if args.reference else None
    if args.plot:
        plot(specs, args.plot)
    if args.curves:
        curves(specs, args.curves)
    print("| row | seed | best val NDCG@10 (epoch) | val NLL at best | test NDCG@10 | test R@20 | "
          "paired vs reference (test NDCG@10) | model min | level-1 perplexity | next shares code 1 (random) |")
    print("|---" * 10 + "|")
    for label, seeds in specs:
        for i, (run, model) in enumerate(seeds):
            print(row(label, run, model, None if reference is None else reference[min(i, len(reference) - 1)]))
        if len(seeds) > 1:
            print(seed_summary_row(label, seeds, reference or seeds))


if __name__ == "__main__":
    main()
