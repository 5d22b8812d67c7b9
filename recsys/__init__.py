"""Generative retrieval over Semantic IDs on MovieLens, beside dense retrieval and simple baselines.

The subpackages follow the data flow, bottom to top; a module imports only from its own layer or lower
ones (tests/test_layers.py checks it):
`data` -> `evaluation` -> `nets` -> `train` -> `models` -> `runs` -> `app`.
"""
