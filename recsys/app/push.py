"""`sidrec push`: a finished run's three publishable parts, each as its own Hugging Face Hub repository
with a generated card.

- `<repo>-rqvae` (model): the RQ-VAE that turns a movie's input (the all-mpnet-base-v2 embedding, or
  collaborative factors) into a SID (`rqsid.RQVAE.from_pretrained`; its quantizer keeps the seed card's
  `ResidualQuantizer` layout), with the text-to-factors map when the run made one.
- `<repo>-sid-generative` (model): the generative-retrieval net (`recsys.nets.generative`), its
  `recommender.json` settings, and the run's metrics.
- `<repo>-sids` (dataset): movie_id -> SID, as parquet (`datasets.load_dataset`).

MovieLens may not be redistributed, so nothing here holds titles, ratings or per-user files: the SID
table is movie ids and codes only, and the cards say where to get MovieLens. `--to-dir` writes exactly the
folders that would be uploaded; the upload is one `HfApi.upload_folder` call per folder.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData, HfApi, ModelCard, ModelCardData

from recsys.data.collaborative import TEXT_TO_FACTORS
from recsys.evaluation.evaluate import metrics_table
from recsys.models.base import SETTINGS_FILE
from recsys.runs.multiseed import mean_sd_table
from recsys.runs.report import to_markdown
from recsys.runs.run_dir import RunDir
from rqsid.io import atomic_path, read_json

MODEL_NAME = "sid-generative"
LICENCE_NOTE = (
    "MovieLens is © GroupLens Research, University of Minnesota, and may not be redistributed without "
    "permission (https://grouplens.org/datasets/movielens/). These files hold no titles, ratings or "
    "user data, only MovieLens movie ids and what was learned from them; get the dataset itself from "
    "GroupLens and join on `movie_id`."
)


def repo_names(repo: str) -> dict[str, str]:
    """The three Hub repositories a push writes, by part."""
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"--repo must be <user or organisation>/<name>, got {repo!r}")
    return {"rqvae": f"{repo}-rqvae", MODEL_NAME: f"{repo}-{MODEL_NAME}", "sids": f"{repo}-sids"}


def metrics_markdown(run_dir: Path) -> str:
    """The run's test metrics (and, when the run is one seed of a multi-seed run, the seeds' summary)."""
    parts = []
    metrics = read_json(run_dir / "metrics.json")
    parts.append(f"Test metrics of this run (seed {metrics.get('seed')}, {metrics['dataset']}, "
                 f"{metrics['split']} split, {metrics['num_users']} users, full ranking):\n\n"
                 + to_markdown(metrics_table(metrics)))
    parent = run_dir.parent / "metrics.json"
    if parent.exists() and "seeds" in read_json(parent):
        summary = read_json(parent)
        parts.append(f"Over seeds {', '.join(map(str, summary['seeds']))} (mean ± sd, one complete run per "
                     f"seed):\n\n" + to_markdown(mean_sd_table(summary)))
    return "\n\n".join(parts)


def _require(run_dir: Path) -> None:
    RunDir(run_dir).require("quantizer/config.json", "quantizer/model.safetensors", "sids.parquet",
                            "sid_quality.json", "metrics.json", f"models/{MODEL_NAME}/{SETTINGS_FILE}",
                            f"models/{MODEL_NAME}/model.safetensors")


def rqvae_input(run_dir: Path, input_dim: int, encoder: str) -> str:
    """What the run's RQ-VAE reads, in words: the text embedding, with or without collaborative factors,
    or the factors alone (collaborative IDs), and how a new movie gets factors when the run kept the map."""
    text_dim = RunDir(run_dir).embeddings.shape[1]
    factors = input_dim - text_dim
    words = f"a movie's text embedding ({encoder}, {text_dim} dimensions)"
    if factors > 0:
        words += f" with {factors} SVD factors of the training ratings appended"
    elif factors < 0:
        words = f"{factors + text_dim} SVD factors of a movie's training ratings (collaborative IDs; no text)"
    if (run_dir / "quantizer" / TEXT_TO_FACTORS).exists():
        words += (f". `{TEXT_TO_FACTORS}` (`weight` (factors, {text_dim}), `bias`) predicts the factors from the "
                  "text embedding x as normalise(weight x + bias): how movies without ratings, and free-text "
                  "queries, got theirs (`recsys.data.collaborative.TextToFactors`)")
    return words


def write_rqvae(run_dir: Path, out: Path, repos: dict[str, str]) -> None:
    quality = read_json(run_dir / "sid_quality.json")
    encoder = quality.get("encoder", "sentence-transformers/all-mpnet-base-v2")
    input_dim = read_json(run_dir / "quantizer" / "config.json")["input_dim"]
    for path in (run_dir / "quantizer").iterdir():  # the RQ-VAE's config and weights, and the map if any
        if path.name in ("config.json", "model.safetensors", TEXT_TO_FACTORS):
            (out / path.name).write_bytes(path.read_bytes())
    card = ModelCard.from_template(
        ModelCardData(license="mit", library_name="pytorch", tags=["semantic-ids", "rq-vae", "movielens"]),
        template_str=RQVAE_CARD, repo=repos["rqvae"], dataset=quality.get("dataset", "MovieLens"),
        input=rqvae_input(run_dir, input_dim, encoder), input_dim=input_dim,
        config=(run_dir / "quantizer" / "config.json").read_text().strip(), licence=LICENCE_NOTE,
        sids=repos["sids"])
    card.save(out / "README.md")


def write_sid_model(run_dir: Path, out: Path, repos: dict[str, str]) -> None:
    folder = run_dir / "models" / MODEL_NAME
    for path in folder.iterdir():
        if path.is_file() and path.suffix in {".json", ".safetensors"}:
            (out / path.name).write_bytes(path.read_bytes())
    card = ModelCard.from_template(
        ModelCardData(license="mit", library_name="pytorch", tags=["semantic-ids", "generative-retrieval",
                                                                   "recommendation", "movielens"]),
        template_str=SID_MODEL_CARD, repo=repos[MODEL_NAME], rqvae=repos["rqvae"], sids=repos["sids"],
        settings=(folder / SETTINGS_FILE).read_text().strip(), metrics=metrics_markdown(run_dir),
        licence=LICENCE_NOTE)
    card.save(out / "README.md")


def write_sid_table(run_dir: Path, out: Path, repos: dict[str, str]) -> None:
    table = RunDir(run_dir).sid_table
    codes = [c for c in table.columns if c.startswith("sid_")]
    (out / "data").mkdir()
    table[["movie_id", "sid", *codes]].to_parquet(out / "data" / "sids.parquet", index=False)
    card = DatasetCard.from_template(
        DatasetCardData(license="other", tags=["semantic-ids", "movielens"], pretty_name="MovieLens SIDs",
                        configs=[{"config_name": "default", "data_files": "data/sids.parquet"}]),
        template_str=SID_TABLE_CARD, repo=repos["sids"], rqvae=repos["rqvae"], movies=len(table),
        levels=len(codes), licence=LICENCE_NOTE)
    card.save(out / "README.md")


WRITERS = {"rqvae": write_rqvae, MODEL_NAME: write_sid_model, "sids": write_sid_table}


def export_run(run_dir: Path | str, repo: str, to_dir: Path | str) -> dict[str, Path]:
    """Write what `push_run` uploads: one folder per Hub repository under to_dir, each complete or absent."""
    run_dir, to_dir, repos = Path(run_dir), Path(to_dir), repo_names(repo)
    _require(run_dir)
    written = {}
    for part, write in WRITERS.items():
        with atomic_path(to_dir / repos[part].split("/")[1]) as tmp:
            tmp.mkdir(parents=True)
            write(run_dir, tmp, repos)
        written[part] = to_dir / repos[part].split("/")[1]
    return written


def push_run(run_dir: Path | str, repo: str, *, private: bool, staging: Path) -> dict[str, str]:
    """Export to `staging`, then create and upload each repository; returns their Hub ids."""
    folders, repos, api = export_run(run_dir, repo, staging), repo_names(repo), HfApi()
    for part, folder in folders.items():
        kind = "dataset" if part == "sids" else "model"
        api.create_repo(repos[part], repo_type=kind, private=private, exist_ok=True)
        api.upload_folder(repo_id=repos[part], repo_type=kind, folder_path=folder,
                          commit_message="sidrec push")
    return repos


RQVAE_CARD = """---
{{ card_data }}
---

# {{ repo }}

An RQ-VAE that turns a movie's input into a Semantic ID: one code per level, coarse to fine. Its input:
{{ input }}. Trained by sidrec on {{ dataset }} (movie texts: title, year, genres, tags).
The SIDs it gave every movie are in
[{{ sids }}](https://huggingface.co/datasets/{{ sids }}).

## Load it

```python
from rqsid import RQVAE
model = RQVAE.from_pretrained("{{ repo }}").eval()
codes = model(inputs).semantic_ids   # (B, {{ input_dim }}) float -> (B, levels) int
```

`model.quantizer` is a `rqsid.ResidualQuantizer` in the seed card's layout
(`quantizers.{i}.embedding.weight`), applied to the encoder's latent rather than to the raw embedding.

## Settings

```json
{{ config }}
```

## Licence

The weights: MIT. {{ licence }}
"""

SID_MODEL_CARD = """---
{{ card_data }}
---

# {{ repo }}

A generative-retrieval recommender: a causal transformer reads a user's rating history (each movie as
the sum of its SID token embeddings and an id embedding) and predicts the next movie's Semantic ID token
by token, scored exactly over every real movie. SIDs from [{{ rqvae }}](https://huggingface.co/{{ rqvae }});
the table of every movie's SID is [{{ sids }}](https://huggingface.co/datasets/{{ sids }}).

## Load it

```python
from recsys.nets.generative import SidGenerativeModel
net = SidGenerativeModel.from_pretrained("{{ repo }}").eval()   # no Lightning, no FAISS
```

Histories are item indices in the order of the SID table (`recsys.models` wraps it behind the
`Recommender` contract: `REGISTRY["sid-generative"].load(folder, context)`).

## Metrics

{{ metrics }}

## Settings (`recommender.json`)

```json
{{ settings }}
```

## Licence

The weights: MIT. {{ licence }}
"""

SID_TABLE_CARD = """---
{{ card_data }}
---

# {{ repo }}

The Semantic ID of each of {{ movies }} MovieLens movies: `movie_id` (MovieLens's own id), `sid` (the codes
joined by "-") and `sid_0` ... `sid_{{ levels - 1 }}` (the last is the token that tells apart movies whose
other codes collide). Made by [{{ rqvae }}](https://huggingface.co/{{ rqvae }}).

```python
from datasets import load_dataset
sids = load_dataset("{{ repo }}", split="train")
```

## Licence

{{ licence }}
"""
