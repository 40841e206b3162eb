"""Put features and recordings on one time axis.

Features start at the stimulus (audio) onset; a recording starts wherever it was
switched on. These functions find the onset in the recording (a time, an annotation
or an event) and either cut the recording to the features or place the features on
the recording's samples, so that both can be fitted sample by sample.
"""

import numpy as np
from mne import find_events
from mne.io import BaseRaw
from mne.utils import logger, verbose

from ..utils import _check_number, _validate_type, fill_doc, nearest_whole, onset_margin
from ._features import Features


def _onset_sample(raw, features, onset, annotation, event_id, stim_channel):
    """Check the recording and the features; find the stimulus onset in the recording.

    Returns
    -------
    sample : int
        Index of the raw sample at the stimulus onset.
    sfreq : float
        The recording's sampling rate.
    """
    _validate_type(raw, BaseRaw, "raw")
    _validate_type(features, Features, "features")
    given = {
        "onset": onset,
        "annotation": annotation,
        "event_id": event_id,
    }
    named = [key for key, value in given.items() if value is not None]
    if len(named) != 1:
        raise ValueError(
            "Give exactly one of onset, annotation or event_id to mark the stimulus "
            f"onset, got {named or 'none'}."
        )
    sfreq = raw.info["sfreq"]
    if onset is not None:
        onset = _check_number(onset, "onset")
        sample, hits = int(round(onset * sfreq)), [onset]
        where = f"onset={onset:g} s"
    elif annotation is not None:
        _validate_type(annotation, str, "annotation")
        hits = np.flatnonzero(raw.annotations.description == annotation)
        if not hits.size:
            raise ValueError(
                f"No annotation {annotation!r} in the recording; its annotations are "
                f"{sorted(set(raw.annotations.description))}."
            )
        # a raw's annotation onsets count from its sample 0, before the first sample,
        # whether or not it has a measurement date
        time = raw.annotations.onset[hits[0]] - raw.first_time
        sample = int(raw.time_as_index(time, use_rounding=True)[0])
        where = f"annotation {annotation!r}"
    else:
        _validate_type(event_id, "int", "event_id")
        events = find_events(raw, stim_channel=stim_channel, verbose=False)
        hits = np.flatnonzero(events[:, 2] == event_id)
        if not hits.size:
            raise ValueError(
                f"No event with id {event_id} in the recording; its event ids are "
                f"{sorted(set(events[:, 2].tolist()))}."
            )
        sample = int(events[hits[0], 0] - raw.first_samp)
        where = f"event {event_id}"
    if not 0 <= sample < raw.n_times:
        raise ValueError(
            f"The stimulus onset ({where}, sample {sample}) lies outside the "
            f"recording (samples 0 to {raw.n_times - 1})."
        )
    if len(hits) > 1:
        logger.info(f"{where} occurs {len(hits)} times; using the first")
    logger.info(f"Stimulus onset at {sample / sfreq:.3f} s ({where})")
    return sample, sfreq


@verbose
@fill_doc
def crop_to_stimulus(
    raw,
    features,
    onset=None,
    *,
    annotation=None,
    event_id=None,
    stim_channel=None,
    verbose=None,
):
    """Cut a recording to the stimulus and resample it to the feature rate.

    A run that starts at the stimulus onset (its sample 0 is feature sample 0) at the
    feature rate, from a longer recording and an onset given by an annotation, events
    or a stimulus channel. (:meth:`mne_fusion.FusionDataset.add_meg` and
    :meth:`mne_fusion.FusionEncoder.apply_inverse` take a whole recording and an
    onset in seconds or an annotation themselves.)

    Parameters
    ----------
    raw : mne.io.Raw
        The recording.
    features : Features
        The stimulus features (starting at the audio onset, ``tmin=0``).
    %(stimulus_onset)s
    %(verbose)s

    Returns
    -------
    raw : mne.io.Raw
        A copy holding ``features.n_times`` samples at ``features.sfreq``, its first
        sample at the stimulus onset. The data are cropped with a margin, resampled
        (anti-aliased, polyphase :meth:`mne.io.Raw.resample`) and cropped again, so
        filter edge effects fall outside the stimulus wherever the recording allows.

    See Also
    --------
    align_to_recording
    """
    sample, sfreq = _onset_sample(
        raw, features, onset, annotation, event_id, stim_channel
    )
    if not np.isclose(features.tmin, 0.0):
        raise ValueError(
            f"features must start at the stimulus onset (tmin=0), got tmin="
            f"{features.tmin}."
        )
    # raw sample of the last feature sample's time
    last = sample + int(np.ceil((features.n_times - 1) / features.sfreq * sfreq))
    if last >= raw.n_times:
        missing = (last - raw.n_times + 1) / sfreq
        raise ValueError(
            f"The recording ends {missing:.3f} s before the stimulus does "
            f"({features.duration:.3f} s from the onset at {sample / sfreq:.3f} s)."
        )
    # A margin on each side (up to a second after, and before as onset_margin
    # chooses) keeps resampling edge effects outside the stimulus. Each margin, and
    # so the onset's output sample and the length
    # cropped, is the longest that resamples to a whole number of output samples
    # (nearly whole for rates such as Neuromag's 600.615 Hz or 4D's 2034.51 Hz):
    # MNE's polyphase resampling takes its ratio from the two lengths, and stretches
    # the time axis by up to half an output sample for other lengths.
    ratio = features.sfreq / sfreq
    start = sample - onset_margin(sample, sfreq, ratio)
    n_keep = nearest_whole(
        range(
            min(last + int(round(sfreq)), raw.n_times - 1) - start + 1, last - start, -1
        ),
        ratio,
    )
    out = raw.copy().crop(
        raw.times[start], raw.times[start + n_keep - 1], include_tmax=True
    )
    out.load_data()
    if sfreq != features.sfreq:
        # polyphase keeps an output sample on the onset; MNE's FFT default shifts
        # slow signals by a fraction of a sample here
        out.resample(features.sfreq, method="polyphase")
    skip = int(round((sample - start) * ratio))  # output samples before the onset
    if out.n_times < skip + features.n_times:
        raise ValueError(
            f"After resampling, the recording holds {out.n_times - skip} samples "
            f"from the onset, fewer than the {features.n_times} of the features."
        )
    return out.crop(
        out.times[skip], out.times[skip + features.n_times - 1], include_tmax=True
    )


@verbose
@fill_doc
def align_to_recording(
    features,
    raw,
    onset=None,
    *,
    annotation=None,
    event_id=None,
    stim_channel=None,
    verbose=None,
):
    """Place features on the time axis of a recording.

    Parameters
    ----------
    features : Features
        The stimulus features; their time zero is the stimulus (audio) onset.
    raw : mne.io.Raw
        The recording.
    %(stimulus_onset)s
    %(verbose)s

    Returns
    -------
    features : Features
        One sample per sample of ``raw`` (``raw.n_times`` samples at its
        ``sfreq``, resampled if needed), zero before and after the stimulus, with
        ``tmin = -onset``: sample ``i`` is the stimulus time of ``raw.times[i]``.

    See Also
    --------
    crop_to_stimulus
    """
    sample, sfreq = _onset_sample(
        raw, features, onset, annotation, event_id, stim_channel
    )
    features = features.resample(sfreq)
    # raw sample of feature sample 0, then the overlap of both sample ranges
    first = sample + int(round(features.tmin * sfreq))
    begin, end = max(first, 0), min(first + features.n_times, raw.n_times)
    data = np.zeros((raw.n_times, features.n_features))
    if begin < end:
        data[begin:end] = features.data[begin - first : end - first]
    return Features(
        data,
        sfreq,
        list(features.names),
        tmin=-sample / sfreq,
        extractors=list(features.extractors),
    )
