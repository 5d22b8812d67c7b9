"""Layer 6, runs: everything that reads or writes `runs/<name>/`: the SID stage, the recommend stage,
stage records and locks, presets, the pipeline over seeds, reports and figures, and a finished run."""
