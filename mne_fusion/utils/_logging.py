"""Logging levels for estimators that take ``verbose`` in their constructor."""

import functools

from mne.utils import use_log_level


def verbose_method(method):
    """Run a method at its ``verbose`` argument's level, else at ``self.verbose``.

    :func:`mne.utils.verbose` only reads the call's argument; estimators such as
    :class:`mne_fusion.FusionEncoder` also take ``verbose`` in their constructor,
    which sets the level of every call that gives None.
    """

    @functools.wraps(method)
    def wrapper(self, *args, verbose=None, **kwargs):
        level = getattr(self, "verbose", None) if verbose is None else verbose
        if level is None:
            return method(self, *args, **kwargs)
        with use_log_level(level):
            return method(self, *args, **kwargs)

    return wrapper
