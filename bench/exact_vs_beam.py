"""Exact full-catalogue scoring vs constrained beam search for the SID-generative model (no retraining).

Trained run (test users of the run's leave-one-out split, top 20, metrics on item indices):

    .venv/bin/python bench/exact_vs_beam.py --dataset ml-1m --run runs/ml-1m [--beams 20 50 100]

reads runs/<name>/models/sid-generative (save_pretrained) and movies.parquet, rebuilds the split with
make_split("leave-one-out", ...), and scores every test user exactly, by `full_exact_topk` (every prefix)
and by `pruned_exact_topk` (beam-bounded pruning, same result), and by `ConstrainedBeamSearch` at each
width: NDCG/Recall@5/10/20, users/s, peak memory, head rows per user, each beam's overlap with the exact
top-k and whether pruned equals full. Result: bench/results/exact-vs-beam-<dataset>.json.

Synthetic catalogue (untrained model, random unique SIDs: speed and memory only, metrics meaningless):

    OMP_NUM_THREADS=1 .venv/bin/python bench/exact_vs_beam.py --synthetic-catalogue 87585 --users 64
    OMP_NUM_THREADS=1 .venv/bin/python bench/exact_vs_beam.py --synthetic-catalogue 3883 --vocab 64 64 64 8
    OMP_NUM_THREADS=1 .venv/bin/python bench/exact_vs_beam.py --synthetic-catalogue 3883 --vocab 64 64 64 8 \
        --sharpen 8

(3 random levels + a collision level, d_model 64): bench/results/exact-vs-beam-synthetic-<N>[-sharp<s>].json.
An untrained head is near-uniform, the worst case for pruning; `--sharpen 8` scales its output weights
x8 (as tests/test_exact_scoring.py does): peaked, but at random, so the few codes that exist under a prefix
still score like random codes. `--fit-head 1000` instead fits the head to a random teacher for 1000 Adam
steps (`fit_head`): like a trained head, it learns which codes exist below each prefix, which is what
pruning feeds on. Suffix -sharp<s> / -fit<steps> on the result name.
`--tiny` runs the trained-run code path on a small random model and prints, writing nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from common import Timer, quiet, rate, write_result

from recsys.data.inputs import exclusion_mask, left_pad
from recsys.data.splits import SequenceSplit
from recsys.evaluation.metrics import ranking_metrics
from recsys.nets.decoding import BeamResult, ConstrainedBeamSearch, SidTrie
from recsys.nets.exact_scoring import (
    MEMORY_BUDGET_BYTES,
    PruneStats,
    full_exact_topk,
    head_sizes,
    prefix_links,
    pruned_exact_topk,
    users_per_chunk,
)
from recsys.nets.generative import GenerativeConfig, SidGenerativeModel

TOP_K = 20
Decode = Callable[[torch.Tensor, torch.Tensor], BeamResult]


class PeakMemory:
    """Peak memory above the start, in MiB: CUDA allocator peak, or resident set sampled every 2 ms."""

    def __init__(self, device: str) -> None:
        self.device, self.mib, self._stop = device, float("nan"), threading.Event()

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, self._rss())

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._peak = self._rss()
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._rss())
        self.mib = round((peak - self._start) / 2**20, 1)


@torch.no_grad()
def ranked_by(model: SidGenerativeModel, split: SequenceSplit, decode: Decode, batch_size: int, device: str,
              count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items and scores of the first `count` (default: every) test users: encoder state, then
    `decode(state, exclude)`."""
    ranked, scores = [], []
    total = len(split.user_ids) if count is None else min(count, len(split.user_ids))
    for start in range(0, total, batch_size):
        rows = range(start, min(start + batch_size, total))
        histories = [split.test_inputs(u) for u in rows]
        items = torch.as_tensor(left_pad(histories, model.config.max_len), device=device)
        users = torch.as_tensor(split.user_ids[list(rows)].astype(np.int64), device=device)
        state = model.decoder_state(items, users)  # (B, D')
        result = decode(state, exclusion_mask(histories, model.config.num_items).to(device))
        ranked.append(result.items.cpu().numpy())
        scores.append(result.scores.cpu().numpy())
    return np.concatenate(ranked), np.concatenate(scores)


def overlap(beam: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of the exact top-k that the beam's top-k also holds."""
    return round(float(np.mean([len(np.intersect1d(b[:k], e[:k])) / k for b, e in zip(beam, exact, strict=True)])), 4)


def compare(model: SidGenerativeModel, split: SequenceSplit, beams: list[int], batch_size: int, device: str,
            with_metrics: bool = True) -> dict:
    """Each beam width, then exact pruned, then exact full: metrics (optional), users/s, peak memory, head
    rows per user; beams and pruned also against exact full.

    Exact full runs last so that its peak memory is not hidden by memory an earlier pass left resident."""
    trie = SidTrie(model.item_sids.cpu().numpy()).to(device)
    stats = {"now": PruneStats()}  # the pruned pass's counters, fresh after the warm-up
    decoders: dict[str, Decode] = {
        f"beam {beam}": partial(ConstrainedBeamSearch(trie, beam).__call__, model, k=TOP_K) for beam in beams}
    decoders["exact pruned"] = lambda s, ex: pruned_exact_topk(model, s, trie, ex, TOP_K, stats=stats["now"])
    decoders["exact full"] = lambda s, ex: full_exact_topk(model, s, trie, ex, TOP_K)
    for decode in decoders.values():  # warm-up
        ranked_by(model, split, decode, 2, device, count=2)
    stats["now"] = PruneStats()
    figures, results = {}, {}
    for name, decode in decoders.items():
        with PeakMemory(device) as memory, Timer(device) as timer:
            results[name] = ranked_by(model, split, decode, batch_size, device)
        ranked = results[name][0]
        row = {k: round(v, 4) for k, v in ranking_metrics(ranked, split.test_target).items()} if with_metrics else {}
        figures[name] = {**row, "users_per_second": rate(len(ranked), timer.seconds), "peak_memory_mib": memory.mib}
        print(name, json.dumps(figures[name]), flush=True)
    exact, exact_scores = results["exact full"]
    for beam in beams:
        ranked, scores = results[f"beam {beam}"]
        figures[f"beam {beam}"].update({f"overlap@{k}": overlap(ranked, exact, k) for k in (10, TOP_K)},
                                       same_top20=round(float((ranked == exact).all(1).mean()), 4),
                                       head_rows_per_user=1 + max(beam, TOP_K) * (trie.depth - 1),
                                       beam_missed_better=round(float((scores[:, -1] < exact_scores[:, -1] - 1e-5)
                                                                      .mean()), 4))
    pruned, pruned_scores = results["exact pruned"]
    figures["exact pruned"].update(
        same_items_as_full=round(float((pruned == exact).all(1).mean()), 4),
        max_score_difference=float(np.abs(pruned_scores - exact_scores).max()),
        head_rows_per_user=round(stats["now"].rows_per_user(), 1),
        beam_head_rows_per_user=round(stats["now"].beam_rows / stats["now"].users, 1),
        head_rows_per_level_per_user=[round(r / stats["now"].users, 1) for r in stats["now"].head_rows],
        fallback_users=stats["now"].fallback_users)
    return {"exact full": figures.pop("exact full"), "exact pruned": figures.pop("exact pruned"), **figures}


def random_unique_sids(count: int, vocab: list[int], rng: np.random.Generator) -> np.ndarray:
    """(count, len(vocab)) SIDs: random codes at every level but the last, which numbers the items that
    share those codes (0, 1, ...), as the real SID stage's collision level does."""
    codes = rng.integers(0, vocab[:-1], size=(count, len(vocab) - 1))
    _, group = np.unique(codes, axis=0, return_inverse=True)
    order = np.argsort(group.ravel(), kind="stable")
    rank = np.empty(count, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(group.ravel()[order])) + 1]
    rank[order] = np.arange(count) - np.repeat(starts, np.diff(np.r_[starts, count]))
    if rank.max() >= vocab[-1]:
        raise ValueError(f"{rank.max() + 1} items share a prefix; raise the collision level above {vocab[-1]}")
    return np.column_stack([codes, rank])


def synthetic_setup(count: int, vocab: list[int], users: int, d_model: int, seed: int = 0,
                    sharpen: float = 1.0) -> tuple[SidGenerativeModel, SequenceSplit]:
    """An untrained model over `count` random unique SIDs (head output weights x `sharpen`), and `users`
    random 50-item histories."""
    rng = np.random.default_rng(seed)
    sids = random_unique_sids(count, vocab, rng)
    # vocabularies = codes used, as recsys.models.SidGenerative.build_module sets them (ConstrainedBeamSearch
    # needs the logits exactly as wide as the trie's tables)
    config = GenerativeConfig(d_model=d_model, n_layers=2, n_heads=2, dropout=0.0, max_len=50,
                              vocab_sizes=tuple(int(v) + 1 for v in sids.max(0)), num_items=count)
    torch.manual_seed(seed)
    model = SidGenerativeModel(config, item_sids=sids).eval()
    with torch.no_grad():  # sharpen > 1: peaked level distributions, as a trained head has
        for out in model.head.out:
            out.weight.mul_(sharpen)
    train = [rng.choice(count, 49, replace=False) for _ in range(users)]
    split = SequenceSplit("synthetic", np.arange(users), train, rng.integers(0, count, users),
                          rng.integers(0, count, users), [], 0)
    return model, split


def fit_head(model: SidGenerativeModel, steps: int, seed: int = 0, batch: int = 256) -> float:
    """Fit the head (backbone frozen) for `steps` Adam steps to a random teacher; returns the last loss.

    States: the last state of 4,096 random 49-item histories. Targets: drawn from softmax(h . E_i / 8 +
    log Zipf popularity_i) with random item vectors E and a random popularity order."""
    count = model.config.num_items
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed + 1)
    histories = torch.as_tensor(np.stack([rng.choice(count, 49, replace=False) for _ in range(4096)]))
    with torch.no_grad():
        states = torch.cat([model.decoder_state(part) for part in histories.split(512)])  # (4096, D')
    teacher = torch.randn(count, states.shape[1], generator=gen) / states.std()  # (N, D)
    popularity = -torch.log(torch.arange(1, count + 1).float())[torch.randperm(count, generator=gen)]  # (N,)
    optimiser, loss = torch.optim.Adam(model.head.parameters(), lr=3e-3), torch.zeros(())
    for _ in range(steps):
        h = states[torch.randint(0, len(states), (batch,), generator=gen)]  # (B, D)
        with torch.no_grad():
            target = torch.multinomial(torch.softmax(h @ teacher.T / 8 + popularity, -1), 1, generator=gen)
        loss = model.head.teacher_forced_loss(h, model.item_sids[target.ravel()])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return round(float(loss.detach()), 3)


def trie_costs(model: SidGenerativeModel) -> dict:
    """Distinct prefixes per level, head rows per user (exact vs a beam of 20) and the chunk size."""
    trie = SidTrie(model.item_sids.cpu().numpy())
    links = prefix_links(trie)
    prefixes = [len(link.parent) for link in links]
    hidden, vocab = head_sizes(model, trie, model.config.d_model)
    return {"prefixes_per_level": prefixes, "exact_head_rows_per_user": 1 + sum(prefixes[:-1]),
            "beam20_head_rows_per_user": 1 + 20 * (trie.depth - 1), "memory_budget_mib": MEMORY_BUDGET_BYTES // 2**20,
            "users_per_chunk": users_per_chunk(links, vocab, model.config.d_model, hidden)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset")
    parser.add_argument("--run", type=Path)
    parser.add_argument("--beams", nargs="+", type=int, default=[20, 50, 100])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="small random model through the run code path")
    parser.add_argument("--synthetic-catalogue", type=int, help="untrained model over this many random SIDs")
    parser.add_argument("--vocab", nargs="+", type=int, default=[256, 256, 256, 8])
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--sharpen", type=float, default=1.0, help="scale the synthetic head's output weights")
    parser.add_argument("--fit-head", type=int, default=0, help="fit the synthetic head to a teacher, steps")
    args = parser.parse_args()
    quiet()
    if args.tiny:
        model, split = synthetic_setup(300, [16, 16, 8, 4], 40, 16)
        print(json.dumps(compare(model, split, args.beams, 16, args.device), indent=1))
    elif args.synthetic_catalogue:
        synthetic(args)
    elif args.dataset and args.run:
        trained_run(args)
    else:
        parser.error("give --dataset and --run, or --synthetic-catalogue N, or --tiny")


def trained_run(args: argparse.Namespace) -> None:
    from recsys.data.movielens import load_movielens
    from recsys.data.splits import make_split
    from recsys.runs.run_dir import read_run_inputs
    from rqsid.io import load_pretrained

    dataset = load_movielens(args.dataset)
    catalogue, _, _ = read_run_inputs(args.run)
    split = make_split("leave-one-out", dataset.ratings, catalogue)
    path = args.run / "models" / "sid-generative"
    model = load_pretrained(SidGenerativeModel, path).eval().to(args.device)
    figures = {"users": len(split.user_ids), **trie_costs(model),
               **compare(model, split, args.beams, args.batch_size, args.device)}
    write_result(f"exact-vs-beam-{dataset.name}", args.device, figures,
                 notes=[f"model: {path}", f"top {TOP_K} of every test user; the search keeps max(beam, 20) beams",
                        "beam_missed_better: share of users whose exact 20th score beats the beam's 20th",
                        "exact pruned: pruned_exact_topk (beam-20 bound); same_items_as_full should be 1.0"])


def synthetic(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    model, split = synthetic_setup(args.synthetic_catalogue, args.vocab, args.users, args.d_model,
                                   sharpen=args.sharpen)
    fitted = {"head_fit_steps": args.fit_head, "head_fit_loss": fit_head(model, args.fit_head)} if args.fit_head else {}
    model.to(args.device)
    figures = {"movies": args.synthetic_catalogue, "vocab_sizes": list(model.config.vocab_sizes),
               "d_model": args.d_model, "users": args.users, "head_output_scale": args.sharpen, **fitted,
               **trie_costs(model)}
    print(json.dumps(figures), flush=True)
    figures.update(compare(model, split, args.beams, args.batch_size, args.device, with_metrics=False))
    full, pruned = figures["exact full"]["users_per_second"], figures["exact pruned"]["users_per_second"]
    beam = figures[f"beam {args.beams[0]}"]["users_per_second"]
    figures["exact_seconds_per_1000_users"] = round(1000 / full, 1)
    figures["pruned_seconds_per_1000_users"] = round(1000 / pruned, 1)
    figures["pruned_speedup_over_full"] = round(pruned / full, 1)
    figures["beam_speedup_over_exact"] = round(beam / full, 1)
    figures["beam_speedup_over_pruned"] = round(beam / pruned, 1)
    figures["bench_seconds"] = round(time.perf_counter() - started, 1)
    suffix = "" if args.sharpen == 1.0 else f"-sharp{args.sharpen:g}"
    suffix += f"-fit{args.fit_head}" if args.fit_head else ""
    write_result(f"exact-vs-beam-synthetic-{args.synthetic_catalogue}{suffix}", args.device, figures,
                 notes=["untrained model over uniformly random unique SIDs (the bushiest trie: an upper bound "
                        "on the distinct prefixes real RQ-VAE SIDs give); speed and memory only",
                        f"head output weights x{args.sharpen:g} (1 = as initialised: near-uniform, the worst "
                        "case for pruning; 8: peaked at random)",
                        "head_fit_steps: head fitted to a random teacher (fit_head), the trained-like case",
                        "peak_memory_mib: peak resident set above the start of each pass, sampled every 2 ms",
                        f"torch threads: {torch.get_num_threads()}"])


if __name__ == "__main__":
    main()
