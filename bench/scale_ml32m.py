"""Does the pipeline hold at ML-32M's size? Times and peak memory on a synthetic ML-32M-shaped release.

    .venv/bin/python bench/synthetic_movielens.py --out data/synthetic/ml-32m-shaped
    .venv/bin/python bench/scale_ml32m.py --dataset data/synthetic/ml-32m-shaped --stages data
    .venv/bin/python bench/scale_ml32m.py --dataset data/synthetic/ml-32m-shaped --stages sids search

Stages (each in its own process, so that peak memory is the stage's own):
- data: load the CSV release, leave-one-out split (sort, per-user sequences), training windows.
- sids: movie texts -> embeddings with a small random 1-layer BERT of the real width (768) through the
  embedding cache, the real encoder timed on a sample and extrapolated, the default (`tiger`) RQ-VAE
  trained for the catalogue's size, SIDs assigned and checked unique.
- search: constrained beam search over all movies' SIDs (an untrained model of the default size) and
  FAISS top-k over the 768-d text embeddings, exact (flat) and approximate (HNSW), with HNSW's recall@K
  against flat.
Results: bench/results/scale-ml-32m-<stage>.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import peak_rss_mib, quiet, rate, write_result


def stage_data(dataset: Path, max_len: int) -> dict:
    from recsys.data.movielens import load_movielens
    from recsys.data.splits import Catalogue, make_split
    from recsys.train.batches import training_windows

    figures, begin = {}, time.perf_counter()
    data = load_movielens(dataset)
    figures["load_seconds"] = round(time.perf_counter() - begin, 1)
    figures["after_load_peak_rss_mib"] = peak_rss_mib()
    start = time.perf_counter()
    split = make_split("leave-one-out", data.ratings, Catalogue(data.movies["movie_id"].to_numpy()))
    figures["split_seconds"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    windows = training_windows(split.training_sequences(), max_len)
    figures["windows_seconds"] = round(time.perf_counter() - start, 1)
    figures.update(
        ratings=len(data.ratings), movies=len(data.movies), users=len(split.user_ids),
        windows=len(windows), windows_mib=round(windows.nbytes / 2**20, 1),
        targets_per_epoch=int((windows[:, 1:] >= 0).sum()),
        total_seconds=round(time.perf_counter() - begin, 1), peak_rss_mib=peak_rss_mib(),
    )
    return figures


def small_encoder(root: Path) -> Path:
    """A bag-of-words sentence encoder from the real one: all-mpnet-base-v2's own token embeddings (768-d),
    no transformer layer, mean pooling, saved as a sentence-transformers folder. Same code path, vocabulary
    and output size as the real encoder, with lexical (not contextual) meaning, at a fraction of the cost."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    from rqsid.encoder import load_encoder

    real = load_encoder()
    folder = root / "bert"
    config = BertConfig(vocab_size=len(real.tokenizer), hidden_size=768, num_hidden_layers=0,
                        num_attention_heads=12, max_position_embeddings=514)
    bert = BertModel(config, add_pooling_layer=False)
    words = real[0].auto_model.embeddings.word_embeddings.weight
    with torch.no_grad():  # centred: the raw token vectors share one large common direction
        bert.embeddings.word_embeddings.weight[: len(words)] = words - words.mean(0)
        bert.embeddings.position_embeddings.weight.zero_()
        bert.embeddings.token_type_embeddings.weight.zero_()
    bert.save_pretrained(folder)
    real.tokenizer.save_pretrained(folder)  # the real tokenizer: its ids index the real token vectors
    model = SentenceTransformer(modules=[Transformer(str(folder), max_seq_length=128), Pooling(768)],
                                device="cpu")
    model.save(str(root / "encoder"))
    return root / "encoder"


def real_encoder_rate(texts: list[str], sample: int) -> float:
    """Texts per second of all-mpnet-base-v2 on a sample (after one warm-up batch)."""
    from rqsid.encoder import load_encoder

    encoder = load_encoder()
    encoder.encode(texts[:64], batch_size=64)
    start = time.perf_counter()
    encoder.encode(texts[:sample], batch_size=64)
    return sample / (time.perf_counter() - start)


def stage_sids(dataset: Path, work: Path, sample: int, rqvae_epochs: int | None) -> dict:
    from recsys.data.movielens import load_movielens
    from recsys.data.text import movie_texts
    from recsys.runs.sid_stage import SidConfig, build_semantic_ids

    data = load_movielens(dataset)
    figures = {"movies": len(data.movies)}
    texts = movie_texts(data.movies)
    figures["real_encoder_texts_per_second"] = round(real_encoder_rate(texts, sample), 1)
    figures["real_encoder_extrapolated_minutes"] = round(len(texts) / figures["real_encoder_texts_per_second"] / 60, 1)
    encoder = small_encoder(work / "small-encoder")
    run = work / "run"
    overrides = {"max_epochs": rqvae_epochs} if rqvae_epochs else {}
    quality = build_semantic_ids(data, run, SidConfig(encoder=str(encoder), progress=False, overrides=overrides),
                                 home=work, force=True)
    report = quality["presets"]["tiger"]
    figures.update(
        small_encoder_embedding_seconds=quality["seconds"]["text and embeddings"],
        rqvae_and_sids_seconds=quality["seconds"]["RQ-VAE and SIDs"],
        rqvae_train_seconds=report["train_seconds"], rqvae_epochs=rqvae_epochs or "preset default",
        rqvae_seconds_per_epoch=round(report["train_seconds"] / (rqvae_epochs or 1), 1) if rqvae_epochs else None,
        codebook_size=report["model_config"]["codebook_size"],
        unique_sids=report["unique_sids"], sid_length=report["sid_length"],
        codes_used=[lv["codes_used"] for lv in report["levels"]],
        learned_collision_rate=report["learned_collisions"]["collision_rate"],
        largest_collision_group=report["learned_collisions"]["largest_collision_group"],
        peak_rss_mib=peak_rss_mib(),
    )
    sids = pd.read_parquet(run / "sids.parquet")
    figures["sid_rows_unique"] = bool(sids["sid"].is_unique and len(sids) == len(data.movies))
    return figures


def zipf_histories(num_items: int, users: int, length: int, rng: np.random.Generator) -> list[np.ndarray]:
    weights = 1.0 / np.arange(1, num_items + 1)
    return [rng.choice(num_items, length, replace=False, p=weights / weights.sum()) for _ in range(users)]


def beam_throughput(sids: np.ndarray, histories: list[np.ndarray], k: int, beam: int) -> dict:
    import torch

    from recsys.data.inputs import exclusion_mask, left_pad
    from recsys.nets.generative import GenerativeConfig, SidGenerativeModel

    config = GenerativeConfig(vocab_sizes=tuple(int(v) + 1 for v in sids.max(0)), num_items=len(sids))
    model = SidGenerativeModel(config, item_sids=sids).eval()
    batch = 256
    def run(rows: list[np.ndarray]) -> None:
        items = torch.as_tensor(left_pad(rows, config.max_len))
        model.recommend(items, exclusion_mask(rows, len(sids)), k, beam)
    run(histories[:batch])  # warm-up (builds the trie)
    start = time.perf_counter()
    for i in range(0, len(histories), batch):
        run(histories[i:i + batch])
    seconds = time.perf_counter() - start
    return {"users": len(histories), "seconds": round(seconds, 1), "users_per_second": rate(len(histories), seconds),
            "beam": beam, "k": k, "d_model": config.d_model}


def faiss_flat_vs_hnsw(embeddings: np.ndarray, queries: np.ndarray, k: int) -> dict:
    """Exact search against HNSW at several efSearch (the project's default is HNSW_EF_SEARCH)."""
    import faiss

    from recsys.models.ranking import build_index

    def timed_search(index: faiss.Index) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        _, found = index.search(queries, k)
        return found, time.perf_counter() - start

    start = time.perf_counter()
    flat_index = build_index(embeddings, "flat")
    out = {"flat": {"build_seconds": round(time.perf_counter() - start, 1)}, "threads": faiss.omp_get_max_threads()}
    exact, seconds = timed_search(flat_index)
    out["flat"].update(search_seconds=round(seconds, 2), queries_per_second=rate(len(queries), seconds))
    start = time.perf_counter()
    hnsw = build_index(embeddings, "hnsw")
    out["hnsw_build_seconds"] = round(time.perf_counter() - start, 1)
    for ef in (16, 32, 64, 128):
        hnsw.hnsw.efSearch = ef
        found, seconds = timed_search(hnsw)
        hits = [len(np.intersect1d(a, b)) for a, b in zip(exact, found, strict=True)]
        out[f"hnsw_ef{ef}"] = {"search_seconds": round(seconds, 2), "queries_per_second": rate(len(queries), seconds),
                               f"recall@{k}_vs_flat": round(float(np.mean(hits)) / k, 4)}
    return out


def stage_search(work: Path, users: int, k: int, beam: int) -> dict:
    from recsys.models.ranking import content_user_vectors

    run = work / "run"
    sids_frame = pd.read_parquet(run / "sids.parquet")
    sids = sids_frame[[c for c in sids_frame.columns if c.startswith("sid_")]].to_numpy()
    embeddings = np.stack(pd.read_parquet(run / "embeddings.parquet")["embedding"].to_numpy()).astype(np.float32)
    rng = np.random.default_rng(0)
    histories = zipf_histories(len(sids), users, 50, rng)
    figures = {"movies": len(sids), "beam_search": beam_throughput(sids, histories, k, beam)}
    queries = content_user_vectors(histories, embeddings)
    figures["faiss_768d"] = faiss_flat_vs_hnsw(embeddings, queries, k)
    figures["peak_rss_mib"] = peak_rss_mib()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="a synthetic (or real) ml-32m folder")
    parser.add_argument("--stages", nargs="+", default=["data", "sids", "search"], choices=["data", "sids", "search"])
    parser.add_argument("--work", type=Path, default=Path("data/cache/scale-ml-32m"))
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--sample", type=int, default=512, help="texts for timing the real encoder")
    parser.add_argument("--users", type=int, default=4096, help="users for the search throughput")
    parser.add_argument("--rqvae-epochs", type=int, default=None,
                        help="cap the RQ-VAE's epochs (default: the preset's, up to 300 with early stopping)")
    args = parser.parse_args()
    if len(args.stages) > 1:  # one process per stage: each stage's peak memory is its own
        for stage in args.stages:
            subprocess.run([sys.executable, *sys.argv[:1], *[a for a in sys.argv[1:] if a not in args.stages
                            and a != "--stages"], "--stages", stage], check=True)
        return
    quiet()
    stage = args.stages[0]
    if stage == "data":
        figures = stage_data(args.dataset, args.max_len)
    elif stage == "sids":
        figures = stage_sids(args.dataset, args.work, args.sample, args.rqvae_epochs)
    else:
        figures = stage_search(args.work, args.users, k=20, beam=20)
    print(figures)
    write_result(f"scale-ml-32m-{stage}", "cpu", figures, notes=[f"dataset: {args.dataset}"])


if __name__ == "__main__":
    main()
