"""recsys's subpackages are layers in the order of the data flow: none imports a higher one, at module level
or inside a function; rqsid never imports recsys."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("data", "evaluation", "nets", "train", "models", "runs", "app")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if parts[0] == "recsys" and len(parts) > 1 and parts[1] in LAYERS else None


SOURCES = sorted((ROOT / "recsys").rglob("*.py"))


def test_every_module_of_recsys_lives_in_a_layer():
    assert [p.relative_to(ROOT).as_posix() for p in SOURCES if len(p.relative_to(ROOT / "recsys").parts) < 2] \
        == ["recsys/__init__.py"]
    assert {p.relative_to(ROOT / "recsys").parts[0] for p in SOURCES} - {"__init__.py"} == set(LAYERS)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_imports_a_higher_layer(path):
    own = layer_of("recsys." + ".".join(path.relative_to(ROOT / "recsys").with_suffix("").parts))
    if own is None:
        return
    upward = sorted(m for m in imported_modules(path) if (layer_of(m) or -1) > own)
    assert not upward, f"{path.relative_to(ROOT)} (layer {LAYERS[own]}) imports {upward}"


def test_rqsid_never_imports_recsys():
    for path in sorted((ROOT / "rqsid").rglob("*.py")):
        assert not [m for m in imported_modules(path) if m.split(".")[0] == "recsys"], path


@pytest.mark.slow
def test_loading_a_quantizer_or_a_recommender_imports_neither_lightning_nor_faiss():
    """Inference (a seed-card quantizer, a saved SID-generative or dense net, the model registry) must
    not pay for the training and search libraries; training and FAISS search import them when called."""
    code = ("import sys\nfrom rqsid import RQVAE, ResidualQuantizer, assign_semantic_ids\n"
            "import recsys.nets.generative, recsys.nets.dense, recsys.nets.hybrid\n"
            "import recsys.models, recsys.models.config\n"
            "print(sorted({'lightning', 'faiss'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert done.stdout.strip() == "[]"
