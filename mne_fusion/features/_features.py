"""Features: a stimulus feature time series with its sampling rate and column names."""

from fractions import Fraction

import numpy as np
from mne import create_info
from mne.io import RawArray
from mne.utils import verbose
from scipy.signal import resample_poly

from ..utils import _check_finite, _check_number, _check_positive, _validate_type


def resample(data, sfreq_from, sfreq_to, n_times):
    """Resample along the first axis (polyphase, anti-aliased) to ``n_times`` samples.

    The polyphase filter grows with the terms of the rate ratio: they are kept small
    (denominator at most 1000) unless that moves the last sample by half a sample or
    more (49.97 Hz from 50 Hz over a long story), and never large (at most 100 000).
    The signal is mirrored beyond its ends. The output is cropped or edge-padded to
    ``n_times``.
    """
    exact = Fraction(sfreq_to) / Fraction(sfreq_from)
    ratio = exact.limit_denominator(1000)
    if abs(ratio - exact) * len(data) >= 0.5:
        ratio = exact.limit_denominator(100_000)
    # mirrored at the ends, not padded with zeros (dB and other offset features were
    # pulled towards 0 there) nor with the line between the first and last samples
    # (a noisy envelope's last sample would set the level at its first)
    out = resample_poly(
        data, ratio.numerator, ratio.denominator, axis=0, padtype="symmetric"
    )
    if len(out) >= n_times:
        return out[:n_times]
    pad = [(0, n_times - len(out))] + [(0, 0)] * (out.ndim - 1)
    return np.pad(out, pad, mode="edge")


def nearest_samples(times, sfreq, n_times=None):
    """Return the sample nearest each time (s from the first sample).

    Halfway between two samples counts as the later one, within a millionth of a
    sample (aligners' times on a 10 ms grid are halfway at 50 Hz, give or take the
    rounding of their decimals: rounding half to even moved them 10 ms earlier or
    later by the sample's parity). Clipped to ``[0, n_times)`` unless ``n_times`` is
    None.
    """
    samples = np.floor(np.asarray(times, float) * sfreq + 0.5 + 1e-6).astype(int)
    return samples if n_times is None else np.clip(samples, 0, n_times - 1)


class Features:
    """Stimulus features sampled on a regular time axis.

    Parameters
    ----------
    data : array, shape (n_times, n_features)
        The feature values; one column per feature.
    sfreq : float
        Sampling rate in Hz.
    names : list of str | None
        One name per column. None names them ``"f0"``, ``"f1"``, ...
    tmin : float
        Time of the first sample in seconds, relative to the stimulus onset.
    extractors : list of str | str | None
        The extractor that made each column (one name applies to all columns).
        None marks the columns as ``"custom"``.

    Attributes
    ----------
    data : array, shape (n_times, n_features)
        The feature values (float64).
    sfreq : float
        Sampling rate in Hz.
    names : list of str
        Column names.
    tmin : float
        Time of the first sample (s).
    extractors : list of str
        The extractor of each column.

    See Also
    --------
    mne_fusion.features.extract : Compute features from a stimulus.
    concatenate_features : Put features side by side.
    """

    def __init__(self, data, sfreq, names=None, tmin=0.0, extractors=None):
        try:
            if np.iscomplexobj(data):
                raise TypeError("complex values are not features")
            data = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"data must be an array of numbers, shape (n_times, n_features), got "
                f"{type(data).__name__}: {err}."
            ) from None
        if data.ndim == 1:
            data = data[:, np.newaxis]
        if data.ndim != 2:
            raise ValueError(
                f"data must be an array of shape (n_times, n_features), got shape "
                f"{data.shape}."
            )
        _check_finite(data, "data")
        n_features = data.shape[1]
        if names is None:
            names = [f"f{k}" for k in range(n_features)]
        _validate_type(names, (list, tuple), "names")
        names = [str(n) for n in names]
        if len(names) != n_features:
            raise ValueError(
                f"names must hold one name per column ({n_features}), got {len(names)}."
            )
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"names must be unique, got {repeated} more than once.")
        if extractors is None or isinstance(extractors, str):
            extractors = [extractors or "custom"] * n_features
        extractors = [str(e) for e in extractors]
        if len(extractors) != n_features:
            raise ValueError(
                f"extractors must hold one name per column ({n_features}), got "
                f"{len(extractors)}."
            )
        self.tmin = tmin
        self.data = data
        self.sfreq = _check_positive(sfreq, "sfreq")
        self.names = names
        self.extractors = extractors

    @property
    def tmin(self):
        """Time of the first sample in seconds (a finite number)."""
        return self._tmin

    @tmin.setter
    def tmin(self, tmin):
        self._tmin = _check_number(tmin, "tmin")

    @property
    def n_times(self):
        """Number of time samples."""
        return self.data.shape[0]

    @property
    def n_features(self):
        """Number of feature columns."""
        return self.data.shape[1]

    @property
    def times(self):
        """Time of each sample in seconds."""
        return self.tmin + np.arange(self.n_times) / self.sfreq

    @property
    def duration(self):
        """Duration covered by the samples, in seconds."""
        return self.n_times / self.sfreq

    def copy(self):
        """Return a deep copy.

        Returns
        -------
        features : Features
            An independent copy.
        """
        return Features(
            self.data.copy(),
            self.sfreq,
            list(self.names),
            self.tmin,
            list(self.extractors),
        )

    def pick(self, names):
        """Return the columns named in ``names``, in that order.

        Parameters
        ----------
        names : str | list of str
            Column names.

        Returns
        -------
        features : Features
            The picked columns.
        """
        _validate_type(names, (str, list, tuple), "names")
        names = [names] if isinstance(names, str) else list(names)
        for k, name in enumerate(names):
            _validate_type(name, str, f"names[{k}]")
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ValueError(
                f"names {missing} are not among the features {self.names}."
            )
        idx = [self.names.index(n) for n in names]
        return Features(
            self.data[:, idx],
            self.sfreq,
            names,
            self.tmin,
            [self.extractors[i] for i in idx],
        )

    def crop(self, tmin=None, tmax=None):
        """Return the samples from the one nearest ``tmin`` to the one nearest ``tmax``.

        The sample nearest ``tmax`` is left out (``tmin <= time < tmax`` on the
        sample grid), so that crops at consecutive times share no sample; times
        between samples round to the nearest, halfway to the later one (a window of
        ``d`` seconds keeps ``round(d * sfreq)`` samples wherever it starts).

        Parameters
        ----------
        tmin, tmax : float | None
            Time limits in seconds; None keeps that end.

        Returns
        -------
        features : Features
            The cropped features, with ``tmin`` the time of their first sample.
        """
        for name, value in (("tmin", tmin), ("tmax", tmax)):
            if value is not None:
                _check_number(value, name)
        times = self.times
        keep = np.ones(self.n_times, bool)
        # nearest samples, halfway to the later one (as word onsets): a window of
        # d seconds keeps round(d * sfreq) samples wherever it starts
        sample = np.arange(self.n_times)
        if tmin is not None:
            keep &= sample >= nearest_samples(tmin - self.tmin, self.sfreq)
        if tmax is not None:
            keep &= sample < nearest_samples(tmax - self.tmin, self.sfreq)
        if not keep.any():
            raise ValueError(
                f"crop(tmin={tmin}, tmax={tmax}) leaves no sample of features that "
                f"span {times[0]:.3f}-{times[-1]:.3f} s."
            )
        first = int(np.flatnonzero(keep)[0])
        return Features(
            self.data[keep],
            self.sfreq,
            list(self.names),
            times[first],
            list(self.extractors),
        )

    def resample(self, sfreq):
        """Return the features at a new sampling rate (polyphase, anti-aliased).

        Parameters
        ----------
        sfreq : float
            The new sampling rate in Hz.

        Returns
        -------
        features : Features
            The resampled features; ``n_times`` becomes
            ``ceil(n_times * sfreq / self.sfreq)``.
        """
        sfreq = _check_positive(sfreq, "sfreq")
        if sfreq == self.sfreq:
            return self.copy()
        n_times = max(int(np.ceil(self.n_times * sfreq / self.sfreq - 1e-6)), 1)
        data = resample(self.data, self.sfreq, sfreq, n_times)
        return Features(data, sfreq, list(self.names), self.tmin, list(self.extractors))

    def to_raw(self, *, verbose=None):
        """Return the features as an :class:`mne.io.RawArray` of ``misc`` channels.

        Parameters
        ----------
        verbose : bool | str | int | None
            Verbosity of MNE's messages.

        Returns
        -------
        raw : mne.io.RawArray
            One misc channel per feature, with ``first_samp`` at ``tmin``.
        """
        info = create_info(self.names, self.sfreq, "misc")
        first_samp = int(round(self.tmin * self.sfreq))
        if abs(first_samp - self.tmin * self.sfreq) > 1e-3:
            raise ValueError(
                f"tmin ({self.tmin} s) is not on the sample grid (multiples of "
                f"1 / sfreq = {1 / self.sfreq:g} s), where a Raw's first sample lies; "
                "crop or shift the features onto it."
            )
        return RawArray(self.data.T, info, first_samp=first_samp, verbose=verbose)

    def __len__(self):
        return self.n_times

    def __repr__(self):
        sources = ", ".join(dict.fromkeys(self.extractors))
        return (
            f"<Features | {self.n_features} features x {self.n_times} samples, "
            f"{self.sfreq:g} Hz, {self.duration:.1f} s, from {sources}>"
        )


@verbose
def concatenate_features(features, *, verbose=None):
    """Put several feature sets side by side (column-wise).

    Parameters
    ----------
    features : list of Features
        Feature sets with the same ``sfreq``, ``tmin`` and ``n_times``.
    %(verbose)s

    Returns
    -------
    features : Features
        All columns, in order. Column names must be unique across the inputs.

    See Also
    --------
    Features
    """
    _validate_type(features, (list, tuple), "features")
    if not features:
        raise ValueError("features must hold at least one Features, got an empty list.")
    for k, feat in enumerate(features):
        _validate_type(feat, Features, f"features[{k}]")
    first = features[0]
    for k, feat in enumerate(features[1:], 1):
        # one sample grid: tmin to a thousandth of a sample, however far from 0
        if (feat.sfreq, feat.n_times) != (first.sfreq, first.n_times) or not np.isclose(
            feat.tmin, first.tmin, rtol=0, atol=1e-3 / first.sfreq
        ):
            raise ValueError(
                f"features[{k}] has sfreq={feat.sfreq}, n_times={feat.n_times}, "
                f"tmin={feat.tmin}; expected those of features[0] (sfreq={first.sfreq},"
                f" n_times={first.n_times}, tmin={first.tmin})."
            )
    return Features(
        np.concatenate([f.data for f in features], axis=1),
        first.sfreq,
        [n for f in features for n in f.names],
        first.tmin,
        [e for f in features for e in f.extractors],
    )
