"""Layer 7, app: the `sidrec` command line, `sidrec recommend`'s explanations and the notebook's helpers."""
