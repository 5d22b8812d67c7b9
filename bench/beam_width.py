"""Test metrics and speed of a trained SID-generative model at several beam widths (no retraining).

    .venv/bin/python bench/beam_width.py --dataset ml-1m --run runs/ml-1m [--beams 20 40 80]

Reads runs/<name>/models/sid-generative (from_pretrained) and the run's split; the run's own metrics.json
was made at the training config's beam (20). The search keeps at least k = 20 beams, so smaller beams give
the beam-20 figures. Result: bench/results/beam-width-<dataset>.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import Timer, quiet, rate, write_result

from recsys.evaluate import TOP_K
from recsys.generative import SidGenerativeModel
from recsys.metrics import ranking_metrics
from recsys.movielens import load_movielens
from recsys.recommenders import model_topk, read_run_inputs
from recsys.sequences import make_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--beams", nargs="+", type=int, default=[20, 40, 80])
    args = parser.parse_args()
    quiet()
    dataset = load_movielens(args.dataset)
    catalogue, _, _ = read_run_inputs(args.run)
    split = make_split("leave-one-out", dataset.ratings, catalogue)
    model = SidGenerativeModel.from_pretrained(args.run / "models" / "sid-generative").eval()
    figures = {}
    for beam in args.beams:
        with Timer() as t:
            ranked, _ = model_topk(model, split, catalogue, TOP_K, beam)
        metrics = {k: round(v, 4) for k, v in ranking_metrics(ranked, split.test_target).items()}
        figures[f"beam {beam}"] = {**metrics, "users_per_second": rate(len(split.user_ids), t.seconds)}
        print(beam, figures[f"beam {beam}"])
    write_result(f"beam-width-{dataset.name}", "cpu", figures, notes=[f"model: {args.run}/models/sid-generative"])


if __name__ == "__main__":
    main()
