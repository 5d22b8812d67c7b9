"""The one reader of the tables the SID stage leaves in `runs/<name>/`: movies.parquet, sids.parquet and
embeddings.parquet, checked to list the same movies in the same order. The recommend stage, a finished
run (`sidrec recommend`, the notebook), the figures and the benchmarks all read them through here."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from recsys.data.splits import Catalogue

SID_TABLES = ("movies.parquet", "embeddings.parquet", "sids.parquet")
SID_COLUMN_PREFIX = "sid_"  # sids.parquet: movie_id, sid (the "3-19-1-1" text), sid_0 ... sid_{T-1}


class RunInputs(NamedTuple):
    catalogue: Catalogue
    embeddings: np.ndarray  # (N, D) float32, movies.parquet order
    sids: np.ndarray  # (N, T) int, same order


class RunDir:
    """`runs/<name>/` as the SID stage left it; each table is read once, on first use."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def require(self, *names: str) -> None:
        """A clear error naming the first missing file, before anything is read."""
        for name in names:
            if not (self.path / name).exists():
                raise FileNotFoundError(f"{self.path / name} is missing: is {self.path} a finished run "
                                        f"(sidrec run / sidrec sids)?")

    @cached_property
    def movies(self) -> pd.DataFrame:
        self.require("movies.parquet")
        return pd.read_parquet(self.path / "movies.parquet")

    @cached_property
    def catalogue(self) -> Catalogue:
        return Catalogue(self.movies["movie_id"].to_numpy())

    def _in_movie_order(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        self.require(name)
        frame = pd.read_parquet(self.path / name, columns=columns)
        if not np.array_equal(frame["movie_id"].to_numpy(), self.catalogue.movie_ids):
            raise ValueError(f"{self.path / name} does not list the movies of movies.parquet in the same order")
        return frame

    @cached_property
    def sid_table(self) -> pd.DataFrame:
        return self._in_movie_order("sids.parquet")

    @cached_property
    def sids(self) -> np.ndarray:
        """(N, T) codes, one row per movie of movies.parquet."""
        columns = [c for c in self.sid_table.columns if c.startswith(SID_COLUMN_PREFIX)]
        return self.sid_table[columns].to_numpy()

    @cached_property
    def embeddings(self) -> np.ndarray:
        """(N, D) float32 text embeddings, one row per movie of movies.parquet."""
        table = self._in_movie_order("embeddings.parquet")
        return np.stack(table["embedding"].to_numpy()).astype(np.float32)

    def inputs(self) -> RunInputs:
        self.require(*SID_TABLES)
        return RunInputs(self.catalogue, self.embeddings, self.sids)


def read_run_inputs(run_dir: Path | str) -> RunInputs:
    """Catalogue, embeddings (N, D) and SIDs (N, T), all in movies.parquet order."""
    return RunDir(run_dir).inputs()
