"""Layer 2, evaluation: ranking metrics as pure functions, evaluation files and per-user figures, paired
tests and seed summaries, and what a SID prefix means (labels). Reads data only."""
