"""Layer 1, data: MovieLens releases and loaders, movie text, splits into training / validation / test
sequences, padded inputs, and collaborative item vectors from the training interactions."""
