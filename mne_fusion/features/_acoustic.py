"""Acoustic extractors: broadband envelope and log-mel spectrum."""

import numpy as np
from scipy.fft import next_fast_len, rfft, rfftfreq
from scipy.signal import hilbert
from scipy.signal.windows import hann

from ..utils import _check_positive, _validate_type
from ._base import FeatureExtractor
from ._features import resample

# frames of the mel spectrogram are windowed in blocks to bound memory on long stories
_BLOCK = 1024
# the analytic signal is computed in blocks of this many audio samples, overlapping by
# one second on each side, so that an hour of 44.1 kHz audio needs no 2.5 GB FFT
_HILBERT_BLOCK = 2**22


def _hilbert_envelope(audio, margin):
    """Magnitude of the analytic signal, blockwise with ``margin`` samples overlap."""
    n_samples = audio.size
    step = max(_HILBERT_BLOCK - 2 * margin, margin)
    envelope = np.empty(n_samples)
    for start in range(0, n_samples, step):
        stop = min(start + step, n_samples)
        low, high = max(start - margin, 0), min(stop + margin, n_samples)
        block = hilbert(audio[low:high], N=next_fast_len(high - low))
        envelope[start:stop] = np.abs(block[start - low : stop - low])
    return envelope


def _hz_to_mel(freq):
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(freq, float) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, float) / 2595.0) - 1.0)


def _mel_filterbank(n_bands, n_fft, sfreq, fmin, fmax):
    """Triangular filters (peak 1) equally spaced on the mel scale.

    Returns an array (n_bands, n_fft // 2 + 1).
    """
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_bands + 2))
    freqs = rfftfreq(n_fft, 1.0 / sfreq)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - low) / (centre - low)
    falling = (high - freqs) / (high - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    empty = np.flatnonzero(weights.sum(axis=1) == 0)
    if empty.size:
        k = empty[0]
        raise ValueError(
            f"Mel band {k} ({edges[k]:.1f}-{edges[k + 2]:.1f} Hz) holds no frequency "
            f"bin of the {n_fft}-point spectrum ({sfreq / n_fft:.1f} Hz apart): use "
            "fewer bands, a higher fmin or a longer window."
        )
    return weights


class Envelope(FeatureExtractor):
    """Broadband amplitude envelope of the audio.

    The magnitude of the analytic signal (Hilbert transform), low-pass filtered and
    resampled to the feature rate by a polyphase anti-aliasing filter, so the
    features hold the envelope's fluctuations below ``sfreq / 2``. Column:
    ``"envelope"``.

    See Also
    --------
    Mel
    """

    name = "envelope"
    requires = ("audio",)

    def compute(self, stimulus, sfreq):
        """Compute the envelope."""
        margin = int(round(stimulus.audio_sfreq))
        envelope = resample(
            _hilbert_envelope(stimulus.audio, margin),
            stimulus.audio_sfreq,
            sfreq,
            stimulus.n_times(sfreq),
        )
        # the anti-aliasing filter rings below zero at sharp onsets; amplitude cannot
        return np.maximum(envelope, 0.0)


class Mel(FeatureExtractor):
    """Log-mel spectrum of the audio.

    Power spectra of Hann-windowed frames centred on each feature sample, pooled
    by triangular filters equally spaced on the HTK mel scale, in decibels. Columns:
    ``"mel_00"``, ``"mel_01"``, ... from low to high frequency.

    Parameters
    ----------
    n_bands : int
        Number of mel bands.
    fmin : float
        Lowest frequency in Hz (lower edge of the first band).
    fmax : float | None
        Highest frequency in Hz; None means half the audio sampling rate.
    window : float | None
        Frame length in seconds; None means two feature samples (``2 / sfreq``), so
        that the frames overlap by half and the band power is smoothed over one
        sample period before it is sampled.

    See Also
    --------
    Envelope
    """

    name = "mel"
    requires = ("audio",)

    def __init__(self, n_bands=40, fmin=0.0, fmax=None, window=None):
        self.n_bands = _check_positive(n_bands, "n_bands", integer=True)
        self.fmin = _check_positive(fmin, "fmin", allow_zero=True)
        self.fmax = None if fmax is None else _check_positive(fmax, "fmax")
        _validate_type(window, ("numeric", None), "window")
        self.window = None if window is None else _check_positive(window, "window")
        if self.fmax is not None and self.fmax <= self.fmin:
            raise ValueError(
                f"fmax must be above fmin, got fmin={self.fmin} and fmax={self.fmax}."
            )

    def compute(self, stimulus, sfreq):
        """Compute the log-mel spectrum."""
        audio, audio_sfreq = stimulus.audio, stimulus.audio_sfreq
        fmax = audio_sfreq / 2 if self.fmax is None else self.fmax
        if fmax > audio_sfreq / 2:
            raise ValueError(
                f"fmax={fmax} Hz is above the Nyquist frequency of the "
                f"{audio_sfreq:g} Hz audio."
            )
        n_window = int(round((self.window or 2.0 / sfreq) * audio_sfreq))
        if n_window < 4:
            raise ValueError(
                f"The mel window ({n_window} audio samples) is too short; use a longer "
                "window or a lower feature sfreq."
            )
        n_fft = next_fast_len(n_window, real=True)
        weights = _mel_filterbank(self.n_bands, n_fft, audio_sfreq, self.fmin, fmax)
        taper = hann(n_window, sym=False)
        n_times = stimulus.n_times(sfreq)
        # frame k covers audio[c - n_window // 2 : c + n_window - n_window // 2] with
        # c the audio sample nearest to k / sfreq; zeros stand in beyond the edges
        padded = np.pad(audio, (n_window // 2, n_window))
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_window)
        centres = np.round(np.arange(n_times) * audio_sfreq / sfreq).astype(int)
        power = np.empty((n_times, self.n_bands))
        for start in range(0, n_times, _BLOCK):
            block = frames[centres[start : start + _BLOCK]] * taper
            spectrum = np.abs(rfft(block, n_fft, axis=1)) ** 2
            power[start : start + _BLOCK] = spectrum @ weights.T
        # 100 dB below the loudest band keeps silent stretches finite
        floor = max(power.max() * 1e-10, np.finfo(float).tiny)
        return 10.0 * np.log10(np.maximum(power, floor))
