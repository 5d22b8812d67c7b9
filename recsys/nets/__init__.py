"""Layer 3, nets: plain torch modules (`PyTorchModelHubMixin`), importable without Lightning or FAISS:
the sequence backbone, the SID-generative model and its head, constrained decoding and exact scoring,
the dense model and the hybrid."""
