"""A finished run directory, read back: movies, SIDs, labels, embeddings, models and the users' histories.

Everything a person looks at after `sidrec run` (the `recommend`, `similar` and `search` commands, the
user-history notebook) reads the run through this one class, so they all see the same catalogue order,
the same SIDs and the same trained models. Models and ratings are loaded only when first asked for.
"""

from __future__ import annotations

import difflib
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsys.data.collaborative import TEXT_TO_FACTORS, TextToFactors
from recsys.data.movielens import TITLE_YEAR, load_movielens
from recsys.data.splits import chronological
from recsys.evaluation.labels import label_lookup
from recsys.models.base import SETTINGS_FILE, Recommender
from recsys.runs.run_dir import SID_TABLES, RunDir
from rqsid.io import load_pretrained, read_json


class NotFoundError(ValueError):
    """An unknown user, movie or model: the CLI prints the message and exits with status 2."""


class FinishedRun:
    def __init__(self, run_dir: Path | str, dataset: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        run = RunDir(self.run_dir)
        run.require(*SID_TABLES, "sid_quality.json")
        self.movies, self.catalogue = run.movies, run.catalogue
        self.sids, self.sid_text = run.sids, run.sid_table["sid"].to_numpy()  # (N, T), "3-19-1-1"
        self.embeddings = run.embeddings  # (N, D)
        self.info = read_json(self.run_dir / "sid_quality.json")
        self._dataset = dataset

    # ------------------------------------------------------------------ artifacts read on demand

    @cached_property
    def labels(self) -> pd.DataFrame:
        path = self.run_dir / "sid_labels.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; re-run `sidrec sids` to label the SID prefixes")
        return pd.read_parquet(path)

    @cached_property
    def label_of(self) -> dict[str, str]:
        return label_lookup(self.labels)

    def label(self, codes: np.ndarray) -> str:
        """The label of a SID prefix (labels exist for depths 1 and 2; deeper prefixes get their depth-2 one)."""
        return self.label_of.get("-".join(str(int(c)) for c in codes[:2]), "")

    @cached_property
    def metrics(self) -> dict:
        path = self.run_dir / "metrics.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; run `sidrec evaluate` on this run first")
        return read_json(path)

    @cached_property
    def ratings(self) -> pd.DataFrame:
        """The release's ratings of catalogue movies, chronological per user, with an `item` index column."""
        location = self._dataset or self.info.get("location") or self.info["dataset"]
        data = load_movielens(location)
        frame = chronological(data.ratings, self.catalogue, keep=("rating",))
        return frame

    @cached_property
    def rating_counts(self) -> np.ndarray:
        return np.bincount(self.ratings["item"].to_numpy(), minlength=self.catalogue.size)

    def recommender(self, name: str) -> Recommender:
        """A fitted model of the run (models/<name>), with the settings it was saved with."""
        from recsys.models import MODELS, REGISTRY, FitContext
        from recsys.models.config import RecommenderConfig

        path = self.run_dir / "models" / name
        if name not in REGISTRY:
            raise NotFoundError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
        if not (path / SETTINGS_FILE).exists():
            saved = sorted(p.parent.name for p in (self.run_dir / "models").glob(f"*/{SETTINGS_FILE}"))
            raise NotFoundError(f"{path} holds no saved model (re-run `sidrec run` / `sidrec evaluate` with this "
                                f"model); saved: {', '.join(saved) or 'none'}")
        context = FitContext(self.catalogue, self.embeddings, self.sids, RecommenderConfig(progress=False))
        return REGISTRY[name].load(path, context)

    def quantizer(self) -> torch.nn.Module:
        from rqsid.model import RQVAE

        path = self.run_dir / "quantizer"
        if not (path / "model.safetensors").exists():
            raise FileNotFoundError(f"{path} is missing: the run has no trained RQ-VAE")
        return load_pretrained(RQVAE, path).eval()

    def text_to_factors(self) -> TextToFactors | None:
        """The map from text embedding to the collaborative factors the quantizer read, if the run used one
        (`--sid-unrated-factors text`)."""
        path = self.run_dir / "quantizer" / TEXT_TO_FACTORS
        return TextToFactors.load(path) if path.exists() else None

    # ------------------------------------------------------------------ lookups

    def history(self, user_id: int) -> pd.DataFrame:
        """One user's ratings, oldest first (item, movie_id, timestamp, rating)."""
        rows = self.ratings[self.ratings["user_id"] == user_id]
        if rows.empty:
            users = self.ratings["user_id"]
            raise NotFoundError(f"unknown user {user_id}: this run's users are {users.min()}..{users.max()} "
                                f"({users.nunique()} users)")
        return rows.reset_index(drop=True)

    def find_movie(self, query: str) -> int:
        """Item index of the movie a title query means: exact title (with or without the year), then the
        most-rated title containing the query, then the closest fuzzy match; else an error with suggestions."""
        text = query.strip().lower()
        if not text:
            raise NotFoundError("empty title: give a movie title, e.g. 'Toy Story'")
        full = self.movies["title"].str.lower().to_numpy()
        bare = np.array([TITLE_YEAR.sub("", t) for t in full])
        for hits in (np.flatnonzero((full == text) | (bare == text)),
                     np.flatnonzero([text in t for t in full])):
            if len(hits):
                return int(hits[np.argmax(self.rating_counts[hits])])
        close = difflib.get_close_matches(text, list(bare), n=1, cutoff=0.8)
        if close:
            hits = np.flatnonzero(bare == close[0])
            return int(hits[np.argmax(self.rating_counts[hits])])
        suggestions = difflib.get_close_matches(text, list(bare), n=5, cutoff=0.5)
        named = [self.movies["title"].iloc[int(np.flatnonzero(bare == s)[0])] for s in suggestions]
        hint = f"; did you mean: {'; '.join(named)}?" if named else "; try a word of the title"
        raise NotFoundError(f"no movie title matches {query!r}{hint}")

    def describe(self, item: int) -> dict:
        """A movie as people read it: id, title, year, genres, SID."""
        row = self.movies.iloc[item]
        year = row.get("year")
        return {"movie_id": int(row["movie_id"]), "title": str(row["title"]),
                "year": None if year is None or pd.isna(year) else int(year),
                "genres": [str(g) for g in row["genres"]], "sid": str(self.sid_text[item])}
