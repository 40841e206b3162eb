"""Plain PyTorch modules of the fusion encoding model (no MNE inside).

Private: the public entry point is :class:`mne_fusion.FusionEncoder`.
"""

from .attention import LocalCausalAttention
from .heads import FMRIHead, MEGHead, canonical_hrf, tr_pooling
from .losses import (
    correlation_loss,
    gaussian_loss,
    laplacian,
    pattern_correlation_loss,
    pearson_r,
)
from .network import (
    EncoderLayer,
    FusionNetwork,
    InputLayer,
    LaggedFeatures,
    SourceLayer,
    raised_cosines,
)
from .readout import (
    map_source_readout,
    readout_snr,
    ridge_readouts,
    weighted_minimum_norm,
)
from .training import (
    FusionModel,
    Objective,
    SegmentArrays,
    TrainingConfig,
    batch_loss,
    batches,
    calibrate_fmri_gains,
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
    "LaggedFeatures",
    "LocalCausalAttention",
    "MEGHead",
    "Objective",
    "SegmentArrays",
    "SourceLayer",
    "TrainingConfig",
    "batch_loss",
    "batches",
    "calibrate_fmri_gains",
    "canonical_hrf",
    "collate",
    "correlation_loss",
    "evaluate",
    "gaussian_loss",
    "laplacian",
    "map_source_readout",
    "pattern_correlation_loss",
    "pearson_r",
    "predict_batch",
    "raised_cosines",
    "readout_snr",
    "ridge_readouts",
    "tr_pooling",
    "train",
    "weighted_minimum_norm",
]
