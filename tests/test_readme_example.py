"""The README's Python example runs as printed, on the tiny release with a tiny encoder and tiny sizes."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- python-example -->\n```python\n(.*?)```\n<!-- /python-example -->", text, re.S)
    assert match, "README.md lost its marked Python example"
    return match.group(1)


def test_the_readme_python_example_trains_ranks_and_scores_both_models(tiny_movielens, tiny_sentence_encoder,
                                                                       tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a model fitted without output_dir must leave nothing in the working folder
    code = readme_example()
    swaps = {
        'load_movielens("ml-100k")': f"load_movielens({str(tiny_movielens)!r})",
        'Path("runs/python")': f"Path({str(tmp_path / 'run')!r})",
        "SidConfig()": f"SidConfig(encoder={str(tiny_sentence_encoder)!r}, "
                       "overrides={'max_epochs': 20, 'codebook_size': 8}, progress=False)",
        '{"max_epochs": 40}': '{"max_epochs": 2, "val_every": 1, "d_model": 16, "n_layers": 1, "max_len": 10, '
                              '"progress": False}',
    }
    for old, new in swaps.items():
        assert old in code, f"the README example no longer says {old}"
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, str(tmp_path / "README example"), "exec"), namespace)
    out = re.split(r"[\r\n]+", capsys.readouterr().out)  # progress bars share stdout
    printed = [line for line in out if re.match(r"(sid-generative|faiss-dense) \{'recall@10'", line)]
    assert [line.split()[0] for line in printed] == ["sid-generative", "faiss-dense"]
    catalogue, ranking = namespace["catalogue"], namespace["ranking"]
    assert ranking.items.shape == (len(namespace["split"].user_ids), 10)
    assert set(namespace["top_movies"]) <= set(catalogue.movie_ids) and len(set(namespace["top_movies"])) == 10
    assert np.all(np.diff(ranking.scores, axis=1) <= 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
