"""Utilities shared by all modules: checks, docs, configuration, system info."""

from ._atomic import write_atomic
from ._checks import (
    _check_alphas,
    _check_compensation,
    _check_finite,
    _check_number,
    _check_option,
    _check_positive,
    _check_span,
    _float_array,
    _validate_type,
)
from ._logging import verbose_method
from ._resampling import nearest_whole, onset_margin
from .config import get_cache_dir, get_data_root
from .docs import docdict, fill_doc
from .sys_info import sys_info

__all__ = [
    "_check_alphas",
    "_check_compensation",
    "_check_finite",
    "_check_number",
    "_check_span",
    "_float_array",
    "_check_option",
    "_check_positive",
    "_validate_type",
    "docdict",
    "fill_doc",
    "get_cache_dir",
    "get_data_root",
    "nearest_whole",
    "onset_margin",
    "sys_info",
    "verbose_method",
    "write_atomic",
]
