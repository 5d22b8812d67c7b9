"""Benchmark of the Semantic-ID stage on a finished run: encoder throughput, RQ-VAE training, quantisation.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_sids.py --dataset ml-100k --run runs/demo [--device cpu]

Reads runs/<run>/movies.parquet (texts) and embeddings.parquet (RQ-VAE input); writes nothing into the run.
Result: bench/results/sids-<dataset>.json.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import Timer, median_seconds, peak_rss_mib, quiet, rate, trainer_flags, write_result

from rqsid.assign import assign_semantic_ids, quantize_in_order
from rqsid.encoder import DEFAULT_MODEL, load_encoder
from rqsid.lightning import RQVAEModule, train_rqvae
from rqsid.presets import get_preset

PRESET = "tiger"
SEED = 42  # the pipeline's default (SidConfig.seed)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="dataset name, used to name the result file")
    parser.add_argument("--run", required=True, type=Path, help="a finished run folder (movies, embeddings)")
    parser.add_argument("--device", default="cpu", help="torch device for the encoder and RQ-VAE training")
    parser.add_argument("--sample", type=int, default=512, help="movie texts to encode")
    parser.add_argument("--batch-size", type=int, default=64, help="encoder batch size")
    parser.add_argument("--encoder", default=DEFAULT_MODEL)
    parser.add_argument("--min-rows", type=int, default=50_000, help="rows to quantise (catalogue tiled)")
    parser.add_argument("--repeats", type=int, default=3, help="quantisation timings: median of this many")
    return parser.parse_args()


def bench_encoder(texts: list[str], name: str, device: str, batch_size: int) -> dict:
    """Load time of the encoder, then texts/s over `texts` after one warm-up batch (no embedding cache)."""
    with Timer(device) as load:
        encoder = load_encoder(name, device=device)
    encoder.encode(texts[:batch_size], batch_size=batch_size, show_progress_bar=False)  # warm-up
    with Timer(device) as run:
        emb = encoder.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
    del encoder
    gc.collect()
    return {"model": name, "model_load_seconds": round(load.seconds, 2), "texts": len(texts),
            "batch_size": batch_size, "mean_text_chars": round(float(np.mean([len(t) for t in texts])), 1),
            "embedding_dim": int(emb.shape[1]), "encode_seconds": round(run.seconds, 2),
            "texts_per_second": rate(len(texts), run.seconds), "peak_rss_mib_after": peak_rss_mib()}


def bench_rqvae(embeddings: np.ndarray, device: str) -> tuple[RQVAEModule, dict]:
    """Full tiger-preset training with early stopping, as the pipeline runs it, into a temporary folder."""
    preset = get_preset(PRESET, len(embeddings), embeddings.shape[1], seed=SEED)
    preset.training.trainer = trainer_flags(device)
    with tempfile.TemporaryDirectory(prefix="bench-rqvae-") as tmp, Timer(device) as t:
        module = train_rqvae(embeddings, preset.model, preset.training, output_dir=Path(tmp), progress=False)
    epochs = int(module.trainer.current_epoch)
    return module, {
        "preset": PRESET, "rows": len(embeddings), "max_epochs": preset.training.max_epochs,
        "patience": preset.training.patience, "batch_size": preset.training.batch_size,
        "epochs_run": epochs, "seconds": round(t.seconds, 2), "seconds_per_epoch": round(t.seconds / epochs, 3),
        "peak_rss_mib_after": peak_rss_mib(),
    }


def bench_quantize(module: RQVAEModule, embeddings: np.ndarray, method: str, min_rows: int, repeats: int) -> dict:
    """assign_semantic_ids and quantize_in_order alone over the catalogue tiled to >= min_rows rows (CPU)."""
    tiled = np.tile(embeddings, (-(-min_rows // len(embeddings)), 1))
    model = module.model
    assign_semantic_ids(model, embeddings, method=method)  # warm-up
    assign = median_seconds(lambda: assign_semantic_ids(model, tiled, method=method), repeats)
    quantize = median_seconds(lambda: quantize_in_order(model, tiled), repeats)
    return {"rows": len(tiled), "sid_method": method, "repeats": repeats,
            "assign_seconds": round(assign, 3), "assign_movies_per_second": rate(len(tiled), assign),
            "quantize_in_order_seconds": round(quantize, 3),
            "quantize_in_order_movies_per_second": rate(len(tiled), quantize),
            "peak_rss_mib_after": peak_rss_mib()}


def main() -> None:
    args = parse_args()
    quiet()
    movies = pd.read_parquet(args.run / "movies.parquet", columns=["movie_id", "text"])
    texts = movies["text"].tolist()
    embeddings = np.stack(pd.read_parquet(args.run / "embeddings.parquet")["embedding"].to_numpy())
    embeddings = embeddings.astype(np.float32)
    sample = [texts[i % len(texts)] for i in range(args.sample)]
    figures: dict = {"catalogue_items": len(movies)}
    figures["encoder"] = bench_encoder(sample, args.encoder, args.device, args.batch_size)
    module, figures["rqvae_training"] = bench_rqvae(embeddings, args.device)
    method = get_preset(PRESET, len(embeddings), embeddings.shape[1]).sid_method
    figures["quantisation"] = bench_quantize(module, embeddings, method, args.min_rows, args.repeats)
    figures["peak_rss_mib"] = peak_rss_mib()
    notes = [
        "encoder: texts are the first --sample movie texts of the run, encoded directly (no embedding cache); "
        "model_load_seconds includes resolving the model (instant with HF_HUB_OFFLINE=1)",
        "rqvae_training: seconds include setup, k-means init and validation; seconds_per_epoch = seconds / epochs",
        "quantisation runs on CPU (the trained model is returned on CPU); tiled rows repeat each movie, "
        "so every learned code is shared by >= rows / catalogue_items rows",
        "peak_rss_mib_after: ru_maxrss after each phase (a running peak of the whole process)",
    ]
    print(write_result(f"sids-{args.dataset}", args.device, figures, notes))


if __name__ == "__main__":
    main()
