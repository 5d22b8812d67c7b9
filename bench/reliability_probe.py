"""Every bad-input and interruption case of issue 14 through the real `sidrec` command: exit status and the
first line of the message, as a Markdown table.

    .venv/bin/python bench/reliability_probe.py > bench/results/reliability-probe.md

Works in a temporary folder on a tiny synthetic release in the exact ML-100K format (60 users, 48 movies)
and a tiny random sentence encoder (as the tests build them), so it needs no download and takes a few
minutes. Each case runs `python -m recsys.app.cli ...` in a fresh process; the expected status is 0 for the
cases that must succeed (with a warning), 1 for a failure outside the user's control, 2 for a refused
input, 130 / 143 for Ctrl-C / SIGTERM. A row whose status differs from the expected one is marked.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
FAST = ["--set", "d_model=16", "--set", "n_layers=1", "--set", "max_len=10", "--set", "max_epochs=3",
        "--set", "patience=2", "--set", "batch_size=32"]
NOTES = ("re-rate", "changed since the stage finished")
SID_FAST = ["--sid-set", "codebook_size=8", "--sid-set", "max_epochs=20"]


def tiny_release(root: Path) -> Path:
    import numpy as np

    rng = np.random.default_rng(7)
    root.mkdir(parents=True)
    words = ["toy", "story", "comedy", "drama", "the", "night", "space", "love"]
    items = []
    for movie in range(1, 49):
        flags = ["1" if g == (movie - 1) % 4 + 1 else "0" for g in range(19)]
        title = f"{words[movie % 8].title()} {words[(movie // 8) % 8]} {movie} ({1980 + movie % 20})"
        items.append("|".join([str(movie), title, "01-Jan-1995", "", "http://example.org", *flags]))
    (root / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    rows = []
    for user in range(1, 61):
        favourites = [m for m in range(1, 49) if (m - 1) % 4 == user % 4]
        others = [m for m in range(1, 49) if (m - 1) % 4 != user % 4]
        seen = list(rng.permutation(favourites))[: int(rng.integers(9, 17))] + list(rng.choice(others, 3, False))
        rows += [f"{user}\t{m}\t{int(rng.integers(1, 6))}\t{880000000 + 1000 * t + user}" for t, m in enumerate(seen)]
    (root / "u.data").write_text("\n".join(rows) + "\n", encoding="latin-1")
    return root


def tiny_encoder(root: Path) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789().,:;'!?-&")
             + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"])
    bert = root / "bert"
    bert.mkdir(parents=True)
    (bert / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(bert)
    BertTokenizerFast(vocab_file=str(bert / "vocab.txt")).save_pretrained(bert)
    model = SentenceTransformer(modules=[Transformer(str(bert), max_seq_length=48), Pooling(16)], device="cpu")
    model.save(str(root / "encoder"))
    return root / "encoder"


def sidrec(*argv: str, env: dict | None = None, stop_when: Path | None = None,
           stop: int = signal.SIGTERM) -> tuple[int, str]:
    """Run `sidrec argv` in a fresh process; with stop_when, send `stop` once that file exists."""
    process = subprocess.Popen([sys.executable, "-m", "recsys.app.cli", *argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    if stop_when is not None:
        deadline = time.time() + 300
        while not stop_when.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        process.send_signal(stop)
    _, err = process.communicate(timeout=900)
    lines = [line for line in err.splitlines() if re.match(r"sidrec( \w+)?: ", line)]  # ours, or argparse's
    # a run that succeeds says what it repaired in a log line (time, logger, message)
    notes = [line.split(": ", 1)[-1] for line in err.splitlines() if any(w in line for w in NOTES)]
    first = lines[0] if lines else notes[0] if notes else ("Traceback!" if "Traceback" in err else "")
    return process.returncode, first


def edited(release: Path, work: Path, name: str, edit) -> Path:
    copy = work / name
    shutil.copytree(release, copy)
    edit(copy)
    return copy


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="latin-1").splitlines()


def cases(work: Path, release: Path, encoder: Path) -> list[tuple[str, int, list[str], dict]]:
    common = ["--dataset", str(release), "--encoder", str(encoder)]
    good = work / "good"
    assert sidrec("run", *common, "--run", str(good), *SID_FAST, *FAST)[0] == 0, "the reference run failed"

    def doubled(d: Path) -> None:
        (d / "u.data").write_text((d / "u.data").read_text() * 2)

    def same_second(d: Path) -> None:
        (d / "u.data").write_text("\n".join(r.rsplit("\t", 1)[0] + "\t880000000" for r in lines_of(d / "u.data")))

    def fractional(d: Path) -> None:
        rows = lines_of(d / "u.data")
        rows[2] = rows[2].rsplit("\t", 1)[0] + "\t880001010.5"
        (d / "u.data").write_text("\n".join(rows) + "\n")

    damaged_json = work / "damaged-json"
    shutil.copytree(good, damaged_json)
    (damaged_json / "sid_quality.json").write_text('{"presets": ')
    truncated = work / "truncated-sids"
    shutil.copytree(good, truncated)
    (truncated / "sids.parquet").write_bytes((truncated / "sids.parquet").read_bytes()[:100])
    a_file = work / "a-file"
    a_file.write_text("x")
    rerun = ["run", *common, *SID_FAST, *FAST]
    return [
        ("duplicate (user, movie) rows", 0,
         ["run", "--dataset", str(edited(release, work, "doubled", doubled)), "--encoder", str(encoder),
          "--run", str(work / "doubled-run"), *SID_FAST, *FAST, "--models", "popularity", "markov"], {}),
        ("SIGTERM during training", 143,
         [*rerun, "--run", str(work / "sigterm"), "--set", "max_epochs=200", "--set", "patience=200"],
         {"stop_when": work / "sigterm" / ".staging" / "train" / "faiss-dense" / "checkpoints" / "last.ckpt"}),
        ("Ctrl-C during training", 130,
         [*rerun, "--run", str(work / "sigint"), "--set", "max_epochs=200", "--set", "patience=200"],
         {"stop_when": work / "sigint" / ".staging" / "train" / "faiss-dense" / "checkpoints" / "last.ckpt",
          "stop": signal.SIGINT}),
        ("--set max_epochs=1 (val_every 2)", 2, [*rerun, "--run", str(work / "e1"), "--set", "max_epochs=1"], {}),
        ("--set lr=Infinity", 2, [*rerun, "--run", str(work / "inf"), "--set", "lr=Infinity"], {}),
        ("--set lr=1e30 (diverges)", 2, [*rerun, "--run", str(good), "--set", "lr=1e30"], {}),
        ("--set lr=abc", 2, [*rerun, "--run", str(work / "x1"), "--set", "lr=abc"], {}),
        ("--set batch_size=abc", 2, [*rerun, "--run", str(work / "x2"), "--set", "batch_size=abc"], {}),
        ("--set max_epochs=1.5", 2, [*rerun, "--run", str(work / "x3"), "--set", "max_epochs=1.5"], {}),
        ("--set max_epochs=true", 2, [*rerun, "--run", str(work / "x4"), "--set", "max_epochs=true"], {}),
        ("--set item_embedding=abc", 2, [*rerun, "--run", str(work / "x5"), "--set", "item_embedding=abc"], {}),
        ("--set models=foo", 2, [*rerun, "--run", str(work / "x6"), "--set", "models=foo"], {}),
        ("--set max_minutes=NaN", 2, [*rerun, "--run", str(work / "x7"), "--set", "max_minutes=NaN"], {}),
        ("--sid-set codebook_size=abc", 2, [*rerun, "--run", str(work / "x8"), "--sid-set", "codebook_size=abc"], {}),
        ("invalid JSON in sid_quality.json", 2, ["recommend", "--user", "1", "--run", str(damaged_json)], {}),
        ("truncated sids.parquet (re-made)", 0, [*rerun, "--run", str(truncated)], {}),
        ("sids --run <a file>", 2, ["sids", *common, "--run", str(a_file)], {}),
        ("offline fetch ml-latest-small", 1, ["fetch", "ml-latest-small"],
         {"env": {"SIDREC_OFFLINE": "1", "SIDREC_DATA": str(work / "home")}}),
        ("temporal split, all timestamps equal", 2,
         ["run", "--dataset", str(edited(release, work, "same-second", same_second)), "--encoder", str(encoder),
          "--run", str(work / "same-second-run"), "--split", "temporal", *SID_FAST, *FAST], {}),
        ("timestamp 880001010.5", 2,
         ["sids", "--dataset", str(edited(release, work, "fractional", fractional)), "--run", str(work / "frac")], {}),
        ("unknown user", 2, ["recommend", "--user", "99999", "--run", str(good)], {}),
        ("unknown model", 2, ["recommend", "--user", "1", "--model", "foo", "--run", str(good)], {}),
    ]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sidrec-probe-"))
    try:
        release, encoder = tiny_release(work / "ml-100k-tiny"), tiny_encoder(work / "enc")
        print("| case | expected | exit status | first line of the message |\n|---|---|---|---|")
        for name, expected, argv, options in cases(work, release, encoder):
            status, line = sidrec(*argv, **options)
            mark = "" if status == expected else " **(unexpected)**"
            shown = line.replace(str(work), "<tmp>").replace("|", "\\|")
            print(f"| {name} | {expected} | {status}{mark} | {shown} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
