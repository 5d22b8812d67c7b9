"""Bad data through the real CLI: no silently wrong figures (issue 14)."""

import json
import shutil

from helpers import FAST

from recsys.app.cli import main


def test_every_rating_twice_still_evaluates_every_user(tiny_movielens, tiny_sentence_encoder, tmp_path, caplog):
    """Duplicated u.data rows used to make each test target equal the validation target, inside the
    excluded history: every metric of every model was 0.0, with exit status 0."""
    data = tmp_path / "doubled"
    shutil.copytree(tiny_movielens, data)
    rows = (data / "u.data").read_text(encoding="latin-1")
    (data / "u.data").write_text(rows + rows, encoding="latin-1")
    run = tmp_path / "run"
    with caplog.at_level("WARNING"):
        assert main(["run", "--dataset", str(data), "--encoder", str(tiny_sentence_encoder), "--run", str(run),
                     "--sid-set", "codebook_size=8", "--sid-set", "max_epochs=20", "--models", "popularity", "markov",
                     *FAST]) == 0
    assert "each user keeps only the last rating" in caplog.text
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_users"] == 60
    assert all(m["recall@20"] > 0 for m in metrics["models"].values())


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sidrec:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_damaged_json_names_its_file(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run["b"], run)
    (run / "sid_quality.json").write_text('{"dataset": "ml-100k", "presets": ')
    assert main(["recommend", "--user", "1", "--run", str(run)]) == 2
    assert f"{run / 'sid_quality.json'}: not valid JSON" in one_error_line(capsys)


def test_a_file_given_as_the_run_directory_is_refused_before_any_work(tiny_movielens, tmp_path, capsys):
    target = tmp_path / "not-a-folder"
    target.write_text("x")
    assert main(["sids", "--dataset", str(tiny_movielens), "--run", str(target)]) == 2
    assert "is a file, not a run directory" in one_error_line(capsys)


def test_a_temporal_split_without_a_cut_is_a_clear_error(tiny_movielens, tiny_sentence_encoder, tmp_path, capsys):
    data = tmp_path / "same-second"
    shutil.copytree(tiny_movielens, data)
    rows = [line.rsplit("\t", 1)[0] + "\t880000000" for line in (data / "u.data").read_text().splitlines()]
    (data / "u.data").write_text("\n".join(rows) + "\n")
    assert main(["run", "--dataset", str(data), "--encoder", str(tiny_sentence_encoder), "--run",
                 str(tmp_path / "run"), "--split", "temporal", "--sid-set", "codebook_size=8",
                 "--sid-set", "max_epochs=2", "--models", "popularity", *FAST]) == 2
    assert "temporal split: every rating falls on one side of the cut" in one_error_line(capsys)


def test_a_run_made_with_a_relative_dataset_path_opens_from_another_folder(tiny_movielens, tiny_sentence_encoder,
                                                                         tmp_path, monkeypatch):
    from recsys.runs.finished_run import FinishedRun

    run = tmp_path / "run"
    monkeypatch.chdir(tiny_movielens.parent)
    assert main(["sids", "--dataset", tiny_movielens.name, "--encoder", str(tiny_sentence_encoder), "--run", str(run),
                 "--set", "codebook_size=8", "--set", "max_epochs=2"]) == 0
    monkeypatch.chdir(tmp_path)
    assert len(FinishedRun(run).ratings) > 0  # the recorded location does not depend on the folder


def test_ctrl_c_in_a_command_is_one_line_and_status_130(tiny_run, monkeypatch, capsys):
    from recsys.app import explain
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(explain, "search", interrupted)
    assert main(["search", "robots", "--run", str(tiny_run["b"])]) == 130
    assert "interrupted" in one_error_line(capsys)


def test_a_truncated_output_makes_its_stage_run_again(tiny_run, tmp_path, caplog):
    """A finished stage is checked by its outputs' sha256, not their existence: a truncated sids.parquet
    used to count as finished and then fail inside pyarrow."""
    import pandas as pd
    from helpers import run_args

    run = tmp_path / "run"
    shutil.copytree(tiny_run["b"], run)
    sids = run / "sids.parquet"
    good = pd.read_parquet(sids)
    sids.write_bytes(sids.read_bytes()[:100])
    with caplog.at_level("INFO"):
        assert main(run_args(tiny_run, run)) == 0
    assert "sids.parquet is missing or changed since the stage finished" in caplog.text
    assert pd.read_parquet(sids).equals(good)  # the same seed gives the same SIDs back


def test_offline_fetch_of_a_grouplens_only_release_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SIDREC_OFFLINE", "1")
    monkeypatch.setenv("SIDREC_DATA", str(tmp_path))
    assert main(["fetch", "ml-latest-small"]) == 1
    line = one_error_line(capsys)
    assert "offline" in line and "--dataset" in line


def copy_release(tiny_movielens, tmp_path, name: str):
    data = tmp_path / name
    shutil.copytree(tiny_movielens, data)
    return data


def test_a_fractional_timestamp_names_its_file_and_line(tiny_movielens, tmp_path, capsys):
    data = copy_release(tiny_movielens, tmp_path, "fractional")
    lines = (data / "u.data").read_text().splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\t880001010.5"
    (data / "u.data").write_text("\n".join(lines) + "\n")
    assert main(["sids", "--dataset", str(data), "--run", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys)
    assert f"{data / 'u.data'}: line 3: timestamp is '880001010.5', not a whole number" in line


def test_utf8_titles_in_a_latin1_file_are_decoded_and_odd_ratings_warned(tiny_movielens, tmp_path, caplog):
    from recsys.data.movielens import load_movielens

    data = copy_release(tiny_movielens, tmp_path, "utf8")
    items = (data / "u.item").read_bytes().decode("latin-1").splitlines()
    fields = items[0].split("|")
    fields[1] += " Café"  # written as UTF-8 bytes below
    items[0] = "|".join(fields)
    (data / "u.item").write_bytes(("\n".join(items) + "\n").encode("utf-8"))
    rows = (data / "u.data").read_text().splitlines()
    rows[0] = "\t".join([*rows[0].split("\t")[:2], "9", rows[0].split("\t")[3]])
    (data / "u.data").write_text("\n".join(rows) + "\n")
    with caplog.at_level("WARNING"):
        release = load_movielens(data)
    assert release.movies["title"].iloc[0].endswith("Café") and "Ã" not in release.movies["title"].iloc[0]
    assert "1 title(s) were UTF-8 in a latin-1 file" in caplog.text
    assert "outside MovieLens's 0.5-5 scale (first in data row 1: 9.0)" in caplog.text
