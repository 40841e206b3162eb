"""Plain PyTorch modules of the fusion encoding model (no MNE inside).

Private: the public entry point is :class:`mne_fusion.FusionEncoder`.
"""

from .attention import LocalCausalAttention
from .heads import FMRIHead, MEGHead, canonical_hrf, tr_pooling
from .losses import (
    correlation_loss,
    gaussian_loss,
    pattern_correlation_loss,
    pearson_r,
    power_penalty,
    smoothness_penalty,
    spatial_penalty,
)
from .network import EncoderLayer, FusionNetwork, InputLayer, SourceLayer
from .training import (
    FusionModel,
    Objective,
    SegmentArrays,
    TrainingConfig,
    batch_loss,
    batches,
    collate,
    evaluate,
    predict_batch,
    train,
)

__all__ = [
    "EncoderLayer",
    "FMRIHead",
    "FusionModel",
    "FusionNetwork",
    "InputLayer",
    "LocalCausalAttention",
    "MEGHead",
    "Objective",
    "SegmentArrays",
    "SourceLayer",
    "TrainingConfig",
    "batch_loss",
    "batches",
    "canonical_hrf",
    "collate",
    "correlation_loss",
    "evaluate",
    "gaussian_loss",
    "pattern_correlation_loss",
    "pearson_r",
    "power_penalty",
    "predict_batch",
    "smoothness_penalty",
    "spatial_penalty",
    "tr_pooling",
    "train",
]
