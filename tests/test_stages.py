"""Re-running a run: finished stages are skipped, stale ones redone, --force redoes all; a run killed
mid-training leaves no half-written artifact under a final name and resumes from its last checkpoint."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from helpers import hand_metrics, readable_artifacts, run_args

from recsys.app.cli import main
from recsys.models import DEFAULT_MODELS as MODELS


def test_rerun_skips_finished_stages_redoes_stale_ones_and_force_redoes_all(tiny_run, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(tiny_run["b"], run)
    weights = run / "models" / "sid-generative" / "model.safetensors"
    quantizer = run / "quantizer" / "model.safetensors"
    before = {p: p.stat().st_mtime_ns for p in (weights, quantizer)}
    written = json.loads((run / "metrics.json").read_text())
    timings = (run / "timings.json").read_text()
    with caplog.at_level("INFO"):
        assert main(run_args(tiny_run, run)) == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing was trained again
    assert (run / "timings.json").read_text() == timings  # nor timed: the times stay the training run's
    rewritten = json.loads((run / "metrics.json").read_text())
    assert rewritten["models"] == written["models"]
    # the models' times stay those of the run that made them, not the moment it took to read them back
    assert rewritten["seconds"] == written["seconds"] and rewritten["reused"] == sorted(MODELS)
    assert written["reused"] == [] and written["seconds"]["sid-generative"] > 0
    assert caplog.text.count("finished before with the same inputs and settings") == 1 + len(MODELS)  # + SIDs
    caplog.clear()
    with caplog.at_level("INFO"):  # a training setting changed: SIDs and the four unlearned baselines stay
        assert main([*run_args(tiny_run, run), "--set", "max_epochs=2"]) == 0
    assert caplog.text.count("finished before") == 5 and weights.stat().st_mtime_ns != before[weights]
    assert quantizer.stat().st_mtime_ns == before[quantizer]
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main([*run_args(tiny_run, run), "--force"]) == 0
    assert "finished before" not in caplog.text and quantizer.stat().st_mtime_ns != before[quantizer]


def test_a_killed_training_leaves_no_half_written_artifact_and_resumes(tiny_run, tmp_path):
    run = tmp_path / "run"
    argv = [*run_args(tiny_run, run), "--set", "max_epochs=25", "--set", "patience=25", "--set", "val_every=1"]
    process = subprocess.Popen([sys.executable, "-m", "recsys.app.cli", *argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    # sid-generative trains first here, into the staging folder until every model is done
    last = run / ".staging" / "train" / "sid-generative" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # at the first epoch's checkpoint: 24 of the 25 epochs are still to come
    process.wait()
    if not last.exists():
        pytest.fail("the run ended before its training could be interrupted")
    assert (run / "stages" / "sids.json").exists()  # the SID stage had finished
    assert not (run / "stages" / "model-sid-generative.json").exists()
    assert not (run / "models" / "sid-generative").exists() and not (run / "metrics.json").exists()
    readable_artifacts(run)

    done = subprocess.run([sys.executable, "-m", "recsys.app.cli", *argv, "--resume"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr and "Semantic IDs: finished before" in done.stderr
    readable_artifacts(run)
    metrics = json.loads((run / "metrics.json").read_text())
    targets = pd.read_parquet(run / "test_targets.parquet")
    predictions = pd.read_parquet(run / "predictions" / "sid-generative.parquet")
    assert hand_metrics(predictions, targets) == pytest.approx(metrics["models"]["sid-generative"])


def test_resuming_from_a_damaged_checkpoint_is_a_clear_error(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run["b"], run)
    staged = run / ".staging"  # as if the models had been interrupted while training into the staging folder
    (staged / "stages").mkdir(parents=True)
    for record in (run / "stages").glob("model-*.json"):
        record.rename(staged / "stages" / (record.stem + ".started.json"))
    (staged / "train").mkdir()
    (run / "train" / "sid-generative").rename(staged / "train" / "sid-generative")
    last = staged / "train" / "sid-generative" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    assert main([*run_args(tiny_run, run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{last}: damaged checkpoint" in err and "Traceback" not in err


def test_sigterm_during_training_exits_143_with_one_line_and_keeps_nothing_final(tiny_run, tmp_path):
    """A scheduler's SIGTERM must not look like success (Lightning turns it into a status-0 SystemExit)."""
    run = tmp_path / "run"
    argv = [*run_args(tiny_run, run), "--set", "max_epochs=200", "--set", "patience=200", "--set", "val_every=1"]
    process = subprocess.Popen([sys.executable, "-m", "recsys.app.cli", *argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    log = run / ".staging" / "train" / "sid-generative" / "logs" / "metrics.csv"  # sid-generative trains first
    deadline = time.time() + 300
    def epochs_logged() -> int:
        return len(log.read_text().splitlines()) - 1 if log.exists() else 0

    while process.poll() is None and time.time() < deadline and epochs_logged() < 2:
        time.sleep(0.05)  # two epochs logged: training is under way
    if process.poll() is not None:
        pytest.fail("the run ended before its training could be interrupted")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143
    lines = [line for line in err.splitlines() if line.startswith("sidrec:")]
    assert len(lines) == 1 and "SIGTERM" in lines[0] and "Traceback" not in err
    assert not (run / "models" / "sid-generative").exists() and not (run / "metrics.json").exists()
    readable_artifacts(run)


def test_a_diverging_training_stops_with_a_clear_error_and_keeps_the_good_model(tiny_run, tmp_path, capsys):
    """A huge learning rate drives the loss to NaN/inf: the training stops at that step with one line, and
    the finished run's model and metrics stay as they were (issue 14, defect 8)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run["b"], run)
    weights = run / "models" / "sid-generative" / "model.safetensors"
    before, metrics = weights.read_bytes(), (run / "metrics.json").read_text()
    assert main([*run_args(tiny_run, run), "--set", "lr=1e30"]) == 2
    err = capsys.readouterr().err
    assert "the training loss became" in err and "lower lr" in err
    assert weights.read_bytes() == before and (run / "metrics.json").read_text() == metrics


def test_a_second_process_into_the_same_run_is_refused_naming_the_holder(tiny_run, tmp_path):
    """Two runs into one directory would interleave their logs and checkpoints (issue 14, defect 6)."""
    from recsys.runs.stages import run_lock

    run = tmp_path / "run"
    shutil.copytree(tiny_run["b"], run)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom recsys.runs.stages import run_lock\n"
                               f"with run_lock({str(run)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run([sys.executable, "-m", "recsys.app.cli", *run_args(tiny_run, run)], capture_output=True,
                                text=True, check=False)
        assert second.returncode == 2
        lines = [line for line in second.stderr.splitlines() if line.startswith("sidrec:")]
        assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and "Traceback" not in second.stderr
    finally:
        holder.kill()
        holder.wait()
    with run_lock(run):  # released with its process
        pass


def test_a_waiting_lock_takes_the_run_once_its_holder_lets_go(tmp_path):
    """A summary over seeds that finish together waits for the other's summary instead of failing."""
    from recsys.runs.stages import run_lock

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom recsys.runs.stages import run_lock\n"
                               f"with run_lock({str(run)!r}):\n    print('held', flush=True)\n    time.sleep(1.5)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        held_at = time.monotonic()
        with pytest.raises(ValueError, match=f"pid {holder.pid}"):
            with run_lock(run):
                pass
        with run_lock(run, wait=True):
            assert time.monotonic() - held_at > 1.0  # taken only once the holder let go
            assert (run / ".lock").read_text() == str(os.getpid())
    finally:
        holder.kill()
        holder.wait()


def test_a_summary_over_seeds_waits_for_a_seed_another_process_runs(tmp_path, monkeypatch):
    """The summary job of a GPU batch starts once the last seed's run ends, while an earlier seed may still
    run in its own process: it waits for that seed instead of failing (it failed so on 2026-12-04)."""
    from recsys.runs import pipeline

    run = tmp_path / "run"
    ran = []
    monkeypatch.setattr(pipeline, "run_pipeline", lambda folder, options: ran.append((folder.name, time.monotonic())))
    monkeypatch.setattr("recsys.runs.multiseed.summarise_seeds", lambda run_dir, seeds, extra: {"seeds": seeds})
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom recsys.runs.stages import run_lock\n"
                               f"with run_lock({str(run / 'seed-2')!r}):\n    print('held', flush=True)\n"
                               "    time.sleep(1.5)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        held_at = time.monotonic()
        assert pipeline.run_seeds(run, pipeline.RunOptions(seeds=(1, 2))) == {"seeds": [1, 2]}
    finally:
        holder.kill()
        holder.wait()
    assert [name for name, _ in ran] == ["seed-1", "seed-2"]
    assert ran[1][1] - held_at > 1.0  # seed 2 only once its holder let go


def test_the_report_survives_a_damaged_training_log(tiny_run, tmp_path, caplog):
    from recsys.runs.report import write_report

    run = tmp_path / "run"
    shutil.copytree(tiny_run["b"], run)
    log = run / "train" / "faiss-dense" / "logs" / "metrics.csv"
    log.write_text(log.read_text() + "3,17,0.5,extra,columns,that,do,not,fit,the,header,at,all,1,2,3,4,5\n\x00\x00")
    with caplog.at_level("WARNING"):
        write_report(run)
    assert "unreadable training log" in caplog.text and (run / "report.md").exists()


def test_an_interrupted_rerun_with_new_settings_leaves_the_run_as_it_was(tiny_run, tmp_path):
    """Re-run a finished run with another lr and kill it while the second learned model trains: the first
    model's new version stays staged, and the run's models, predictions and metrics.json still agree
    (issue 14, defect 5). The interrupted re-run then resumes and promotes both."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run["b"], run)
    models = run / "models"
    before = {p: p.read_bytes() for p in models.rglob("*") if p.is_file()}
    metrics = (run / "metrics.json").read_text()
    argv = [*run_args(tiny_run, run), "--set", "lr=0.002", "--set", "max_epochs=25", "--set", "patience=25",
            "--set", "val_every=1"]
    process = subprocess.Popen([sys.executable, "-m", "recsys.app.cli", *argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    second = run / ".staging" / "train" / "faiss-dense" / "logs" / "metrics.csv"  # trains after sid-generative
    deadline = time.time() + 300
    while not second.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if not second.exists():
        pytest.fail("the re-run ended before its second model could be interrupted")
    assert (run / ".staging" / "models" / "sid-generative").exists()  # the first model's new version, staged
    assert {p: p.read_bytes() for p in models.rglob("*") if p.is_file()} == before
    assert (run / "metrics.json").read_text() == metrics
    recorded = json.loads(metrics)["models"]
    targets = pd.read_parquet(run / "test_targets.parquet")
    for name in recorded:
        predictions = pd.read_parquet(run / "predictions" / f"{name}.parquet")
        assert hand_metrics(predictions, targets) == pytest.approx(recorded[name])

    done = subprocess.run([sys.executable, "-m", "recsys.app.cli", *argv, "--resume"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (run / ".staging").exists()
    new = json.loads((run / "metrics.json").read_text())
    assert new["config"]["training"]["lr"] == 0.002
    for name in new["models"]:
        predictions = pd.read_parquet(run / "predictions" / f"{name}.parquet")
        assert hand_metrics(predictions, targets) == pytest.approx(new["models"][name])


def test_staged_predictions_promoted_meanwhile_are_read_from_the_run(tmp_path):
    """Under DDP, rank 0 may move a staged model's predictions into the run while another rank reads."""
    from recsys.runs.recommend_stage import read_staged_predictions

    staging, run = tmp_path / "run" / ".staging", tmp_path / "run"
    frame = pd.DataFrame({"user_id": [1], "rank": [1], "movie_id": [7], "score": [0.5]})
    (staging / "predictions").mkdir(parents=True)
    frame.to_parquet(staging / "predictions" / "markov.parquet")
    pd.testing.assert_frame_equal(read_staged_predictions(staging, run, "markov"), frame)
    (run / "predictions").mkdir()
    (staging / "predictions" / "markov.parquet").replace(run / "predictions" / "markov.parquet")
    pd.testing.assert_frame_equal(read_staged_predictions(staging, run, "markov"), frame)
