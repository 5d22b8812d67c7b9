"""Seeds and significance: summaries over seeds, and paired tests on per-user figures.

- Over seeds, each metric is reported as mean ± sample standard deviation (ddof = 1) of the per-seed
  means: the spread a re-run on another machine (other SIDs, other initial weights) is expected to show.
- Between two models on the same users, the paired difference d_u = a_u - b_u of per-user NDCG@10
  (averaged over seeds first when there are several) is summarised by its mean with a bootstrap
  confidence interval (percentile, users resampled with replacement, `scipy.stats.bootstrap`) and the Wilcoxon
  signed-rank test's two-sided p-value (`scipy.stats.wilcoxon`, zero differences dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

RESAMPLES = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedComparison:
    model: str
    baseline: str
    metric: str
    users: int
    mean_difference: float  # mean over users of model - baseline
    ci_low: float
    ci_high: float
    wilcoxon_p: float | None  # None when every difference is zero

    def sentence(self) -> str:
        """e.g. 'sid-generative vs faiss-dense: -0.0090 [-0.0150, -0.0030], Wilcoxon p = 0.004'."""
        p = "no user differs" if self.wilcoxon_p is None else f"Wilcoxon p = {self.wilcoxon_p:.2g}"
        return (f"{self.model} vs {self.baseline}: {self.mean_difference:+.4f} "
                f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}], {p}")

    def to_json(self) -> dict:
        return asdict(self)


def paired_comparison(a: np.ndarray, b: np.ndarray, *, model: str = "a", baseline: str = "b",
                      metric: str = "ndcg@10", seed: int = 0, resamples: int = RESAMPLES,
                      confidence: float = CONFIDENCE) -> PairedComparison:
    """Paired test of per-user figures a (U,) against b (U,) of the same users in the same order."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"paired figures need two (users,) arrays of equal length >= 2, got {a.shape} and {b.shape}")
    d = a - b
    mean = float(d.mean())
    if np.all(d == d[0]):  # no spread: the bootstrap interval is the point itself
        return PairedComparison(model, baseline, metric, len(d), mean, mean, mean,
                                None if d[0] == 0 else 0.0)
    interval = stats.bootstrap((d,), np.mean, n_resamples=resamples, confidence_level=confidence,
                               method="percentile", rng=np.random.default_rng(seed), batch=500).confidence_interval
    p = float(stats.wilcoxon(d, zero_method="wilcox").pvalue) if np.any(d != 0) else None
    return PairedComparison(model, baseline, metric, len(d), mean, float(interval.low), float(interval.high), p)


def seed_summary(per_seed: Mapping[int, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, dict]]:
    """{seed: {model: {metric: value}}} -> {model: {metric: {"mean", "sd", "values"}}}, seeds in key order.

    sd is the sample standard deviation (ddof = 1); None for a single seed. A model must have the same
    metrics in every seed it appears in; a model missing from some seed is summarised over the others.
    """
    if not per_seed:
        raise ValueError("no seeds to summarise")
    seeds = sorted(per_seed)
    models = list(dict.fromkeys(m for s in seeds for m in per_seed[s]))
    out: dict[str, dict[str, dict]] = {}
    for model in models:
        present = [s for s in seeds if model in per_seed[s]]
        metrics = list(per_seed[present[0]][model])
        out[model] = {}
        for metric in metrics:
            values = np.array([per_seed[s][model][metric] for s in present], dtype=np.float64)
            out[model][metric] = {"mean": float(values.mean()),
                                  "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
                                  "values": {str(s): float(v) for s, v in zip(present, values, strict=True)}}
    return out


def format_mean_sd(summary: Mapping[str, object], digits: int = 4) -> str:
    """'0.1234 ± 0.0056' (or just the mean for one seed)."""
    mean, sd = summary["mean"], summary["sd"]
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"
