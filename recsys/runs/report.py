"""`runs/<name>/report.md`: the run's headline table, published anchors, SID quality, labels, figures
and wall times.

Everything in the report is read back from the run's own files (metrics.json, sid_quality.json,
sid_labels.parquet, timings.json, the Lightning logs), so the report and its PNG figures
(`recsys.runs.figures`, in runs/<name>/figures/) can be rebuilt at any time with `write_report(run_dir)`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys.evaluation.significance import PairedComparison
from recsys.runs import figures
from rqsid.io import atomic_write, read_json

# Full-ranking leave-one-out figures published for other code on the same protocol (Recall@10, NDCG@10),
# as listed in the README of facebookresearch/generative-recommenders. Not reproduced here.
PUBLISHED = {
    "ml-1m": {
        "SASRec": (0.2853, 0.1603),
        "BERT4Rec": (0.2843, 0.1537),
        "GRU4Rec": (0.2811, 0.1648),
        "HSTU": (0.3097, 0.1720),
        "HSTU-large": (0.3294, 0.1893),
    },
}
METRIC_ORDER = ["recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20"]


def results_table(metrics: dict) -> pd.DataFrame:
    """Our models (measured) and the dataset's published anchors in one table, NDCG@10 descending."""
    ours = pd.DataFrame.from_dict(metrics["models"], orient="index")[METRIC_ORDER].round(4)
    ours.insert(0, "source", "this run")
    rows = [ours]
    # the anchors were measured under leave-one-out: no other split is comparable with them
    comparable = metrics.get("split", "leave-one-out") == "leave-one-out"
    published = PUBLISHED.get(metrics["dataset"], {}) if comparable else {}
    if published:
        anchors = pd.DataFrame({"source": "published", "recall@10": [r for r, _ in published.values()],
                                "ndcg@10": [n for _, n in published.values()]}, index=list(published))
        rows.append(anchors)
    table = pd.concat(rows).sort_values("ndcg@10", ascending=False)
    table.index.name = "model"
    return table


def slices_section(metrics: dict) -> str:
    """Every model on each slice of the users (the cold-start split's cold and warm test targets)."""
    parts = []
    for name, part in (metrics.get("slices") or {}).items():
        if not part["models"]:
            parts.append(f"**{name}**: no users.")
            continue
        table = pd.DataFrame.from_dict(part["models"], orient="index")[METRIC_ORDER].round(4)
        table = table.sort_values("ndcg@10", ascending=False)
        table.index.name = "model"
        parts += [f"**{name}** ({part['num_users']} users):", to_markdown(table)]
    return "\n\n".join(["## Slices", *parts]) if parts else ""


def cell(value: object) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4f}" if abs(value) < 1 else f"{value:g}"
    return str(value)


def to_markdown(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' own needs tabulate, which we do not depend on)."""
    frame = frame.reset_index()
    cells = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def gap_sentence(metrics: dict) -> str:
    models = metrics["models"]
    if not {"sid-generative", "faiss-dense"} <= set(models):
        return ""
    gen, dense = models["sid-generative"]["ndcg@10"], models["faiss-dense"]["ndcg@10"]
    change = (gen - dense) / dense if dense else float("nan")
    side = "ahead of" if change >= 0 else "behind"
    return (f"SID-generative is {abs(change):.1%} {side} the equal-capacity dense baseline on NDCG@10 "
            f"({gen:.4f} vs {dense:.4f}).")


def paired_lines(metrics: dict) -> str:
    """The paired tests of metrics.json as a list: 'SID-generative vs dense: -0.0090 [-0.0150, -0.0030]'."""
    paired = metrics.get("paired") or []
    if not paired:
        return ""
    lines = [f"- {PairedComparison(**row).sentence()}" for row in paired]
    head = (f"Paired differences in per-user {paired[0]['metric'].upper()} ({paired[0]['users']} users; mean, "
            f"95 % bootstrap interval, Wilcoxon signed-rank), from `per_user.parquet`:")
    return "\n".join([head, "", *lines])


def sid_summary(quality: dict) -> pd.DataFrame:
    rows = {}
    for name, r in quality["presets"].items():
        rows[name] = {
            "unique SIDs": r["unique_sids"], "SID length": r["sid_length"],
            "codes used per level": ", ".join(f"{lv['codes_used']}/{lv['codebook_size']}" for lv in r["levels"]),
            "learned collision rate": round(r["learned_collisions"]["collision_rate"], 3),
            "L1 coherence": round(r["coherence"]["level_1"]["ratio"], 2),
            "reconstruction cosine": round(r["reconstruction"]["reconstruction_cosine"], 3),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "RQ-VAE preset"
    return frame


def timings_table(timings: dict) -> pd.DataFrame:
    seconds = pd.Series({**timings["stages"], "total": timings["total_seconds"]})
    frame = pd.DataFrame({"seconds": seconds.map("{:.1f}".format), "minutes": (seconds / 60).map("{:.1f}".format)})
    frame.index.name = "stage"
    return frame


def largest_prefixes(run_dir: Path, count: int = 8) -> pd.DataFrame | None:
    """The `count` largest level-1 prefixes with their labels and most-rated movies."""
    path = Path(run_dir) / "sid_labels.parquet"
    if not path.exists():
        return None
    labels = pd.read_parquet(path)
    top = labels[labels["level"] == 1].nlargest(count, "size")
    frame = pd.DataFrame({"prefix": top["prefix"], "movies": top["size"], "label": top["label"],
                          "most rated": top["titles"].map(lambda t: "; ".join(t))}).set_index("prefix")
    return frame


def draw_figures(run_dir: Path, metrics: dict, quality: dict) -> dict[str, Path | None]:
    size = next(iter(quality["presets"].values()))["model_config"].get("codebook_size")
    return {"metrics": figures.metrics_bars(run_dir, metrics),
            "codebook": figures.codebook_usage(run_dir, size),
            "tree": figures.prefix_tree(run_dir),
            "curves": figures.training_curves(run_dir),
            "levels": figures.level_curves(run_dir)}


def image(path: Path | None, run_dir: Path, alt: str) -> str:
    return f"![{alt}]({path.relative_to(run_dir).as_posix()})" if path else ""


def build_report(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    metrics = read_json(run_dir / "metrics.json")
    quality = read_json(run_dir / "sid_quality.json")
    timings = read_json(run_dir / "timings.json")
    drawn = draw_figures(run_dir, metrics, quality)
    prefixes = largest_prefixes(run_dir)
    parts = [
        f"# sidrec run `{run_dir.name}`: {metrics['dataset']}, {metrics['split']}",
        f"Command: `{timings['command']}`; seed {metrics['seed']}; data source: {quality.get('source', '?')}; "
        f"{metrics['num_users']} users evaluated, full ranking over all movies; device: {timings['device']}.",
        "## Results", to_markdown(results_table(metrics)),
        "`this run`: measured here, recomputable from `predictions/` and `test_targets.parquet`. `published`: "
        "other code on the same protocol (leave-one-out, full ranking), from the generative-recommenders "
        "README; not re-run here.",
        gap_sentence(metrics), paired_lines(metrics), image(drawn["metrics"], run_dir, "Recall@K and NDCG@K per model"),
        slices_section(metrics),
        "## Semantic IDs", to_markdown(sid_summary(quality)),
        image(drawn["codebook"], run_dir, "codebook usage per level"),
        image(drawn["tree"], run_dir, "movies per SID prefix"),
        *(["The largest level-1 prefixes and their labels (`sid_labels.parquet`, every level-1 and level-1+2 "
           "prefix):", to_markdown(prefixes)] if prefixes is not None else []),
        "## Training", image(drawn["curves"], run_dir, "training curves"),
        image(drawn["levels"], run_dir, "validation NLL per SID level"),
        "## Wall time", to_markdown(timings_table(timings)),
        f"Peak resident memory: {timings['peak_rss_gib']:.2f} GiB.",
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def write_report(run_dir: Path) -> Path:
    path = Path(run_dir) / "report.md"
    text = build_report(run_dir)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
