"""Semantic IDs from item embeddings: a residual quantizer (the seed model card's API and checkpoint
layout), an RQ-VAE around it, RQ-KMeans, and the assignment of a unique SID to every item. Knows nothing
of MovieLens. Importing it loads neither Lightning nor faiss; training (`rqsid.lightning.train_rqvae`)
and k-means initialisation import them when called."""

from rqsid.assign import SemanticIds, assign_semantic_ids, sid_strings
from rqsid.model import RQVAE, RQVAEConfig
from rqsid.quality import sid_quality_report
from rqsid.quantizer import ResidualQuantizer
from rqsid.rqkmeans import fit_rq_kmeans

__all__ = ["RQVAE", "RQVAEConfig", "ResidualQuantizer", "SemanticIds", "assign_semantic_ids", "fit_rq_kmeans",
           "sid_quality_report", "sid_strings"]
