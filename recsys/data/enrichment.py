"""Per-movie extras for the movie texts (plot summary, director, stars), from a file, a `datasets` folder
or a Hub dataset, keyed by MovieLens movie_id (`MovieLens.with_enrichment` joins them)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.delimited import preview
from recsys.data.releases import MovieLensFormatError

ENRICHMENT_COLUMNS = ("plot_summary", "director", "stars")
# What an enrichment source may hold besides movie_id and ENRICHMENT_COLUMNS: MovieLens's own columns, which
# the Hub's enriched copies repeat (krishnakamath/movielens-32m-movies-enriched: movie_id, title, genres,
# plot_summary, director, stars); the release's own are kept, so these are dropped.
ENRICHMENT_IGNORED = ("title", "genres")
HUB_DATASET_ID = re.compile(r"[\w.-]+/[\w.-]+")


def load_enrichment(source: str | Path) -> pd.DataFrame:
    """Read per-movie extras keyed by movie_id: plot_summary, director, stars.

    `source`: a .jsonl or .parquet file, a folder written by `datasets` (`Dataset.save_to_disk`), or a
    Hub dataset id such as krishnakamath/movielens-32m-movies-enriched (read with
    `datasets.load_dataset`, its train split). `stars` may be a list or a comma-separated string; it
    becomes a list of names. A column that is neither one of those nor MovieLens's own (title, genres) is
    an error, so that a misspelt column is never silently dropped.
    """
    frame, name = _read_enrichment(source)
    if "movie_id" not in frame.columns:
        raise MovieLensFormatError(f"{name}: no movie_id column (columns: {list(frame.columns)})")
    unknown = [c for c in frame.columns if c not in ("movie_id", *ENRICHMENT_COLUMNS, *ENRICHMENT_IGNORED)]
    if unknown:
        raise MovieLensFormatError(f"{name}: unknown column(s) {unknown}; an enrichment holds movie_id and any "
                                   f"of {list(ENRICHMENT_COLUMNS)} (and may repeat {list(ENRICHMENT_IGNORED)})")
    ids = pd.to_numeric(frame["movie_id"], errors="coerce")
    if ids.isna().any():
        row = int(ids.isna().to_numpy().argmax())
        raise MovieLensFormatError(
            f"{name}: row {row + 1}: movie_id {frame['movie_id'].iloc[row]!r} is not an id"
        )
    dupes = ids[ids.duplicated()].unique()
    if len(dupes):
        raise MovieLensFormatError(f"{name}: duplicate movie ids {preview(dupes.astype(int))}")
    columns = [c for c in ENRICHMENT_COLUMNS if c in frame.columns]
    out = frame[columns].assign(movie_id=ids.astype("int32"))[["movie_id", *columns]]
    if "stars" in out:
        out["stars"] = out["stars"].map(_names)
    return out


def _read_enrichment(source: str | Path) -> tuple[pd.DataFrame, str]:
    path = Path(source)
    readers = {".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False), ".parquet": pd.read_parquet}
    if path.is_dir():
        import datasets

        try:
            table = datasets.load_from_disk(str(path))
        except FileNotFoundError as err:
            raise MovieLensFormatError(f"{path}: not a folder written by datasets' save_to_disk ({err})") from err
        if isinstance(table, datasets.DatasetDict):
            if "train" not in table:
                raise MovieLensFormatError(f"{path}: a DatasetDict without a train split ({list(table)})")
            table = table["train"]
        return table.to_pandas(), str(path)
    if path.suffix in readers:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such enrichment file")
        return readers[path.suffix](path), str(path)
    if HUB_DATASET_ID.fullmatch(str(source)):
        import datasets

        return datasets.load_dataset(str(source), split="train").to_pandas(), f"Hub dataset {source}"
    raise MovieLensFormatError(f"{source}: an enrichment is a .jsonl or .parquet file, a datasets folder or a "
                               f"Hub dataset id (user/name)")


def _names(value: object) -> list[str] | None:
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if str(v).strip()]
    return None
