"""Stimulus: the audio and the word/phone alignments of one story."""

import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mne.utils import logger
from scipy.io import wavfile

from ..utils import _check_finite, _check_positive, _validate_type
from ._textgrid import read_tiers

# Labels that mark silence or non-speech in forced alignments: Praat's empty label, the
# Penn / Montreal aligners' "sp"/"sil"/"spn"/"ns", and the Moth transcripts' bracketed
# noises ("{LG}" laughter, "{BR}" breath, "{NS}" noise, ...).
_SILENCES = frozenset({"", "sp", "sil", "spn", "ns", "sentence_start", "sentence_end"})
_NOISE = re.compile(r"^[{<\[].*[}>\]]$")

# The audio may end a little before the last aligned interval through rounding in the
# alignment tool; anything longer means the audio and the alignment do not match.
_DURATION_TOLERANCE = 0.01


def _missing(label):
    """Whether a label is an empty cell of a table (None, NaN)."""
    return label is None or (isinstance(label, float) and np.isnan(label))


def _is_speech(label):
    return label.lower() not in _SILENCES and not _NOISE.match(label)


@dataclass(frozen=True)
class Alignment:
    """Time intervals with a label each (words or phones), sorted by onset.

    Parameters
    ----------
    onset : array, shape (n_intervals,)
        Start of each interval in seconds from the audio onset.
    offset : array, shape (n_intervals,)
        End of each interval in seconds (greater than its onset).
    label : tuple of str
        The label of each interval (a word or an ARPAbet phone).

    See Also
    --------
    Stimulus
    """

    onset: np.ndarray
    offset: np.ndarray
    label: tuple

    def __len__(self):
        return len(self.label)

    def __repr__(self):
        end = f", {self.offset.max():.1f} s" if len(self) else ""
        return f"<Alignment | {len(self)} intervals{end}>"


def _make_alignment(onset, offset, label, name):
    """Validate and sort interval columns; drop silences and non-speech labels."""
    try:
        onset, offset = (
            np.asarray(t, dtype=np.float64).ravel() for t in (onset, offset)
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must hold (onset, offset, label) with onsets and offsets in "
            f"seconds ({exc})."
        ) from None
    onset = _check_finite(onset, f"{name} onsets")
    offset = _check_finite(offset, f"{name} offsets")
    # an empty cell of a table (None, NaN) is Praat's empty label: a silence
    label = ["" if _missing(lab) else str(lab).strip() for lab in label]
    if not len(onset) == len(offset) == len(label):
        raise ValueError(
            f"{name} must have as many onsets, offsets and labels, got {len(onset)}, "
            f"{len(offset)} and {len(label)}."
        )
    if np.any(onset < 0):
        raise ValueError(
            f"{name} onsets must be >= 0 s (the audio onset), got "
            f"{onset[onset < 0][:5]}."
        )
    bad = np.flatnonzero(offset <= onset)
    if bad.size:
        raise ValueError(
            f"{name} intervals must end after they start; interval {bad[0]} "
            f"({label[bad[0]]!r}) runs from {onset[bad[0]]} to {offset[bad[0]]} s."
        )
    keep = np.array([_is_speech(lab) for lab in label], bool)
    order = np.argsort(onset[keep], kind="stable")
    kept = np.flatnonzero(keep)[order]
    logger.debug(f"{name}: {kept.size} intervals kept, {keep.size - kept.size} silent")
    return Alignment(onset[kept], offset[kept], tuple(label[k] for k in kept))


def _alignment_from_table(table, name):
    """Alignment from rows (onset, offset, label) or columns onset/offset/label."""
    if isinstance(table, Mapping) or hasattr(table, "columns"):
        missing = [key for key in ("onset", "offset", "label") if key not in table]
        if missing:
            raise ValueError(
                f"{name} must have the columns 'onset', 'offset' and 'label'; "
                f"{missing} missing."
            )
        return _make_alignment(table["onset"], table["offset"], table["label"], name)
    _validate_type(
        table,
        (list, tuple, np.ndarray),
        name,
        "a table of (onset, offset, label) rows or a mapping of those columns",
    )
    rows = list(table)
    if any(len(row) != 3 for row in rows):
        raise ValueError(f"{name} rows must be (onset, offset, label) triples.")
    columns = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    return _make_alignment(*columns, name)


def _read_wav(path):
    """Return the rate and (memory-mapped) samples of a WAV file, or a clear error."""
    where = f"Audio file {str(path)!r}"
    with open(path, "rb") as fid:
        head = fid.read(12)
    if not head:
        raise ValueError(f"{where} is empty (0 bytes).")
    if not any(magic.startswith(head[:4]) for magic in (b"RIFF", b"RIFX", b"RF64")) or (
        len(head) > 8 and not b"WAVE".startswith(head[8:])
    ):
        raise ValueError(
            f"{where} is not a WAV file: it starts with {head[:12]!r}, expected a "
            "RIFF/WAVE header."
        )
    try:
        # memory-mapped, and mixed to mono before the float64 copy by the caller:
        # stories last an hour at 44.1 kHz
        file_sfreq, pcm = wavfile.read(path, mmap=True)
    except (ValueError, struct.error) as err:
        # scipy's messages for files that end early: a header cut in a field
        # (struct.error), in a chunk ID or chunk, or data shorter than declared (mmap)
        if isinstance(err, struct.error) or re.search(
            r"end of file|Incomplete chunk|mmap length|RIFF form type is b'\w{0,3}'$",
            str(err),
        ):
            raise ValueError(
                f"{where} is truncated: the file ({os.path.getsize(path)} bytes) "
                f"ends inside its header or before all the samples it declares ({err})."
            ) from err
        raise ValueError(f"{where} could not be read as a WAV file: {err}") from err
    if pcm.size == 0:
        raise ValueError(f"{where} holds no samples (its header is {file_sfreq} Hz).")
    return file_sfreq, pcm


def _pcm_mono(pcm):
    """Return PCM samples (n_samples[, n_channels]) as mono float64.

    Integer PCM has its full range scaled to [-1, 1) (unsigned 8-bit is offset by
    128), as audio libraries read it.
    """
    samples = pcm.mean(axis=1) if pcm.ndim == 2 else pcm.astype(np.float64)
    if np.issubdtype(pcm.dtype, np.integer):
        info = np.iinfo(pcm.dtype)
        samples -= (info.max + info.min + 1) / 2
        samples /= (info.max - info.min + 1) / 2
    return samples


def _read_audio(audio, audio_sfreq):
    """Return mono float64 audio and its sampling rate."""
    if isinstance(audio, str | Path):
        path = Path(audio).expanduser()
        if path.suffix.lower() != ".wav":
            raise ValueError(
                f"audio files must be WAV files (.wav), got {str(path)!r}; convert it "
                "or pass the samples as an array with audio_sfreq."
            )
        if not path.is_file():
            raise FileNotFoundError(f"Audio file {str(path)!r} does not exist.")
        file_sfreq, pcm = _read_wav(path)
        if audio_sfreq is not None and float(audio_sfreq) != float(file_sfreq):
            raise ValueError(
                f"audio_sfreq={audio_sfreq} does not match the {file_sfreq} Hz of "
                f"{path.name}; leave audio_sfreq=None for files."
            )
        audio_sfreq = file_sfreq
        samples = _pcm_mono(pcm)
        del pcm
    else:
        _validate_type(audio, "array-like", "audio", "a path to a WAV file or an array")
        if audio_sfreq is None:
            raise ValueError("audio_sfreq is required when audio is an array.")
        samples = np.asarray(audio)
        if samples.ndim == 2 and samples.shape[0] < samples.shape[1]:
            raise ValueError(
                f"audio must have shape (n_samples, n_channels), got {samples.shape}: "
                "channels first, as librosa and MNE store audio? Give audio.T."
            )
        if np.issubdtype(samples.dtype, np.integer):
            samples = _pcm_mono(samples)  # as read from a WAV file
    audio_sfreq = _check_positive(audio_sfreq, "audio_sfreq")
    samples = _check_finite(np.asarray(samples, dtype=np.float64), "audio")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError(
            "audio must hold samples of shape (n_samples,) or (n_samples, "
            f"n_channels), got shape {np.shape(samples)}."
        )
    return samples, audio_sfreq


class Stimulus:
    """What one story provides to the feature extractors: audio and alignments.

    Times are in seconds from the audio onset (the first audio sample), which is the
    time zero of every :class:`Features` extracted from the stimulus.

    Parameters
    ----------
    audio : path-like | array, shape (n_samples,) or (n_samples, n_channels) | None
        A WAV file or the audio samples; channels are averaged to mono. Integer
        samples (as ``scipy.io.wavfile.read`` returns them) are scaled from their
        full range to [-1, 1), as a file's are.
    audio_sfreq : float | None
        Sampling rate of an audio array in Hz (read from the file for a path).
    textgrid : path-like | praatio.textgrid.Textgrid | None
        A Praat TextGrid with word and phone interval tiers, e.g. in the LeBel /
        Moth layout (tiers ``"word"`` and ``"phone"``, silences ``"sp"`` or empty).
    words, phones : list of tuple | dict | pandas.DataFrame | None
        Alignments given as a table instead of a TextGrid: rows
        ``(onset, offset, label)`` or columns ``"onset"``, ``"offset"``,
        ``"label"``. Phone labels are ARPAbet, with or without stress digits.
    transcript : str | None
        The story's text, kept for extractors that use it.
    word_tier, phone_tier : str | None
        Names of the TextGrid tiers, matched case-insensitively (a plural such as
        ``"words"`` matches too); None skips that tier.
    name : str | None
        The story name, used in messages.

    Attributes
    ----------
    audio : array, shape (n_samples,) | None
        Mono audio (float64).
    audio_sfreq : float | None
        Sampling rate of the audio in Hz.
    words : Alignment | None
        Word intervals without silences and bracketed noises.
    phones : Alignment | None
        Phone intervals without silences.
    transcript : str | None
        The text of the story.
    duration : float
        Length of the stimulus in seconds: the audio length, else the end of the
        TextGrid or of the last aligned interval.
    name : str | None
        The story name.

    See Also
    --------
    FeatureExtractor
    extract
    """

    def __init__(
        self,
        audio=None,
        audio_sfreq=None,
        textgrid=None,
        words=None,
        phones=None,
        transcript=None,
        *,
        word_tier="word",
        phone_tier="phone",
        name=None,
    ):
        _validate_type(name, (str, None), "name")
        _validate_type(transcript, (str, None), "transcript")
        self.name = name
        self.transcript = transcript
        if textgrid is not None:
            if words is not None or phones is not None:
                raise ValueError(
                    "Give the alignments either as a textgrid or as words/phones "
                    "tables, not both."
                )
            tiers, grid_end = read_tiers(
                textgrid, [("word", word_tier), ("phone", phone_tier)]
            )
            words, phones = (
                None if rows is None else _alignment_from_table(rows, f"{kind}s")
                for kind, rows in zip(("word", "phone"), tiers, strict=True)
            )
        else:
            grid_end = 0.0
            words = None if words is None else _alignment_from_table(words, "words")
            phones = None if phones is None else _alignment_from_table(phones, "phones")
        self.words, self.phones = words, phones
        if audio is None:
            if audio_sfreq is not None:
                raise ValueError("audio_sfreq was given without audio.")
            self.audio, self.audio_sfreq = None, None
        else:
            self.audio, self.audio_sfreq = _read_audio(audio, audio_sfreq)
        ends = [a.offset.max() for a in (words, phones) if a is not None and len(a)]
        aligned_end = max(ends, default=0.0)
        if self.audio is None:
            if not ends:
                raise ValueError(
                    "A Stimulus needs audio or at least one non-empty alignment "
                    "(textgrid, words or phones)."
                )
            # a TextGrid spans the whole story, trailing silence included
            self.duration = float(max(aligned_end, grid_end))
        else:
            self.duration = self.audio.size / self.audio_sfreq
            if aligned_end > self.duration + _DURATION_TOLERANCE:
                raise ValueError(
                    f"The audio ({self.duration:.3f} s) is shorter than the alignment,"
                    f" which runs to {aligned_end:.3f} s: they do not belong together "
                    "or the audio was cut."
                )

    def n_times(self, sfreq):
        """Return the number of feature samples that cover the stimulus at ``sfreq``.

        Parameters
        ----------
        sfreq : float
            The feature sampling rate in Hz.

        Returns
        -------
        n_times : int
            ``ceil(duration * sfreq)``: sample ``k`` stands for the time ``k / sfreq``
            and the last sample covers the end of the stimulus.
        """
        sfreq = _check_positive(sfreq, "sfreq")
        # the small slack keeps float noise in duration * sfreq from adding a sample
        return max(int(np.ceil(self.duration * sfreq - 1e-6)), 1)

    def __repr__(self):
        parts = [f"{self.duration:.1f} s"]
        if self.audio is not None:
            parts.append(f"audio {self.audio_sfreq:g} Hz")
        for kind in ("words", "phones"):
            alignment = getattr(self, kind)
            if alignment is not None:
                parts.append(f"{len(alignment)} {kind}")
        name = f"{self.name!r} | " if self.name else ""
        return f"<Stimulus | {name}{', '.join(parts)}>"
