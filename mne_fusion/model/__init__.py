"""Plain PyTorch modules of the fusion encoding model (no MNE inside).

Private: the public entry point is :class:`mne_fusion.FusionEncoder`.
"""

from .attention import LocalCausalAttention
from .batching import (
    SegmentArrays,
    batches,
    collate,
    load_batches,
    segment_lengths,
)
from .checkpoint import Checkpoint, TrainingState
from .distributed import Shard, process_group
from .heads import FMRIHead, MEGHead, tr_pooling
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
    NetworkConfig,
    SourceLayer,
    raised_cosines,
)
from .readout import (
    READOUT_RANKS,
    READOUT_SNRS,
    map_source_readout,
    reduce_rank,
    subject_cv,
    weighted_minimum_norm,
)
from .readout_penalty import story_cv_alpha
from .sensor_maps import ridge_sensor_maps, sensor_map_snr
from .training import (
    FusionModel,
    Objective,
    TrainingConfig,
    batch_loss,
    calibrate_fmri_gains,
    predict_batch,
    score_segments,
    train,
)

__all__ = [
    "READOUT_RANKS",
    "READOUT_SNRS",
    "EncoderLayer",
    "Checkpoint",
    "FMRIHead",
    "FusionModel",
    "FusionNetwork",
    "InputLayer",
    "LaggedFeatures",
    "LocalCausalAttention",
    "MEGHead",
    "NetworkConfig",
    "Objective",
    "SegmentArrays",
    "Shard",
    "SourceLayer",
    "TrainingConfig",
    "TrainingState",
    "batch_loss",
    "batches",
    "calibrate_fmri_gains",
    "collate",
    "correlation_loss",
    "gaussian_loss",
    "laplacian",
    "load_batches",
    "map_source_readout",
    "reduce_rank",
    "pattern_correlation_loss",
    "pearson_r",
    "predict_batch",
    "process_group",
    "raised_cosines",
    "score_segments",
    "segment_lengths",
    "sensor_map_snr",
    "subject_cv",
    "story_cv_alpha",
    "ridge_sensor_maps",
    "tr_pooling",
    "train",
    "weighted_minimum_norm",
]
