"""Stimulus features: containers, extractors and their plugin registry."""

from ._acoustic import Envelope, Mel
from ._align import align_to_recording, crop_to_stimulus
from ._base import FeatureExtractor
from ._features import Features, concatenate_features
from ._linguistic import Phonemes, WordOnsets, WordRate
from ._lm import LanguageModel
from ._registry import available_extractors, extract, get_extractor
from ._stimulus import Alignment, Stimulus

__all__ = [
    "Alignment",
    "Envelope",
    "FeatureExtractor",
    "Features",
    "LanguageModel",
    "Mel",
    "Phonemes",
    "Stimulus",
    "WordOnsets",
    "WordRate",
    "align_to_recording",
    "available_extractors",
    "concatenate_features",
    "crop_to_stimulus",
    "extract",
    "get_extractor",
]
