"""Print one Markdown table per benchmark result file (default: every bench/results/*.json).

    .venv/bin/python bench/report.py [bench/results/sids-ml-100k.json ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def flatten(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested figures as (dotted.key, value) rows, in file order."""
    rows = []
    for key, value in figures.items():
        name = f"{prefix}{key}"
        rows.extend(flatten(value, f"{name}.") if isinstance(value, dict) else [(name, value)])
    return rows


def cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "–" if value is None else str(value)


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    machine = f"{m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads), device {m['device']}"
    lines = [f"### {result['name']}", "", f"`{result['command']}`  ", f"{result['date']}; {machine}", "",
             "| figure | value |", "| --- | --- |"]
    lines += [f"| {key} | {cell(value)} |" for key, value in flatten(result["figures"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="result JSON files (default: bench/results/*.json)")
    files = parser.parse_args().files or sorted(RESULTS_DIR.glob("*.json"))
    print("\n".join(table(json.loads(path.read_text())) for path in files), end="")


if __name__ == "__main__":
    main()
