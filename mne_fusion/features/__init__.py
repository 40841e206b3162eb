"""Stimulus features: containers, extractors and their plugin registry."""

from ._features import Features, concatenate_features

__all__ = ["Features", "concatenate_features"]
