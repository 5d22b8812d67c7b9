"""Layer 4, train: the Lightning wrapper around any net of layer 3 and its data module."""
