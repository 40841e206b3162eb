"""The records the container hands out: MEG subjects, fMRI subjects and segments.

They are frozen dataclasses of arrays already validated and aligned to the stimulus
features by :class:`~mne_fusion.container.FusionDataset`, so that the encoder, the
baselines and the benchmarks read recordings without touching MNE objects again.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from mne import Forward, Info
from scipy import sparse

from ..metrics import prediction_r
from ._common import _lookup


class _Subject:
    """What MEG and fMRI subjects share: a name, runs per story and a summary line.

    Subclasses are dataclasses with ``name`` and ``runs`` fields and a ``_summary``
    method describing their targets.
    """

    def _run(self, story):
        """Return the run of ``story``, or raise a ValueError naming the stories."""
        return _lookup(self.runs, story, "story")

    def __repr__(self):
        return (
            f"<{type(self).__name__} {self.name!r} | {self._summary()}, "
            f"{len(self.runs)} stories>"
        )


@dataclass(frozen=True, eq=False, repr=False)
class MEGSubject(_Subject):
    """The MEG recordings of one subject, as arrays ready for the encoder.

    Parameters
    ----------
    name : str
        Subject name.
    forward : mne.Forward
        The fixed-orientation forward solution given to
        :meth:`~mne_fusion.FusionDataset.add_meg`.
    info : mne.Info
        Measurement info of the first run, picked to the channels in ``gain``, at
        the stimulus rate of ``runs``.
    gain : array, shape (n_channels, n_sources)
        Lead field rows of the picked channels (T/Am or T/m/Am).
    vertices : list of array
        ``[lh, rh]`` vertex numbers of the forward's source space (row order of
        ``gain``'s columns).
    runs : dict
        Story -> array, shape (n_channels, n_times) for a continuous run, or
        (n_epochs, n_channels, n_times) for repeated presentations; SI units (T, T/m),
        float32; sample 0 is the stimulus onset and ``n_times`` equals the story's
        features.
    noise_ceiling : array, shape (n_channels,) | None
        Highest Pearson r a perfect model can reach on the epoch-averaged data, from
        split-half repeat correlations; None when no story has two or more epochs.
    bad : dict
        Story -> array of bool, shape (n_times,), True at the samples under a ``BAD*``
        annotation of the run or of any of its epochs (left out of the fit), or None
        when none is; stories missing have no bad sample.
    """

    name: str
    forward: Forward
    info: Info
    gain: np.ndarray
    vertices: list
    runs: dict
    noise_ceiling: np.ndarray | None
    bad: dict = field(default_factory=dict)

    def average(self, story):
        """Return the run of ``story`` averaged over its epochs.

        Parameters
        ----------
        story : str
            A story of :attr:`runs`.

        Returns
        -------
        data : array, shape (n_channels, n_times)
            The continuous run as it is, or the mean of the repeated presentations
            (summed in float64, returned in the type of the run).
        """
        run = self._run(story)
        if run.ndim == 3:
            return run.mean(axis=0, dtype=np.float64).astype(run.dtype, copy=False)
        return run

    def bad_samples(self, story):
        """Return the samples of ``story`` that are left out of the fit.

        Parameters
        ----------
        story : str
            A story of :attr:`runs`.

        Returns
        -------
        bad : array of bool, shape (n_times,) | None
            True under a ``BAD*`` annotation of the run (of any of its epochs);
            None when no sample is bad.
        """
        self._run(story)
        return self.bad.get(story)

    def _of_stories(self, stories):
        """Return the subject with the runs of ``stories`` only (arrays shared).

        The BAD samples and the split-half noise ceiling are those of these runs.
        """
        runs = {s: self.runs[s] for s in stories}
        bad = {s: self.bad[s] for s in stories if s in self.bad}
        ceiling = split_half_ceiling(runs, bad)
        return dataclasses.replace(self, runs=runs, bad=bad, noise_ceiling=ceiling)

    def _summary(self):
        return f"{self.gain.shape[0]} channels, {self.gain.shape[1]} sources"


@dataclass(frozen=True, eq=False, repr=False)
class FMRISubject(_Subject):
    """The fMRI recordings of one subject.

    Parameters
    ----------
    name : str
        Subject name, as given to :meth:`~mne_fusion.FusionDataset.add_fmri`.
    tr : float
        Repetition time in seconds.
    tmin : dict
        Story -> stimulus time (s) of the run's first TR.
    runs : dict
        Story -> array, shape (n_trs, n_targets) of BOLD values.
    vertices : list of array | None
        ``[lh, rh]`` template vertex numbers of the targets for SourceEstimate and
        file runs (every vertex of the file's fsaverage mesh), None for array runs.
    mapping : scipy.sparse.csr_array, shape (n_targets, n_template_sources) | None
        Linear read-out from template sources to targets for array runs, else None.
    noise_ceiling : array, shape (n_targets,) | None
        Highest Pearson r a perfect model can reach per target, if known.
    """

    name: str
    tr: float
    tmin: dict
    runs: dict
    vertices: list | None
    mapping: sparse.csr_array | None
    noise_ceiling: np.ndarray | None

    def tr_times(self, story):
        """Return the stimulus time of each TR of a story's run.

        Parameters
        ----------
        story : str
            A story of this subject.

        Returns
        -------
        times : array, shape (n_trs,)
            ``tmin[story] + k * tr`` in seconds.
        """
        n_trs = self._run(story).shape[0]
        return self.tmin[story] + np.arange(n_trs) * self.tr

    def _of_stories(self, stories):
        """Return the subject with the runs of ``stories`` only (arrays shared)."""
        runs = {s: self.runs[s] for s in stories}
        return dataclasses.replace(
            self, runs=runs, tmin={s: self.tmin[s] for s in runs}
        )

    def _summary(self):
        kind = "mapped targets" if self.mapping is not None else "vertices"
        n_targets = next(iter(self.runs.values())).shape[1]
        return f"{n_targets} {kind}, TR {self.tr:g} s"


@dataclass(frozen=True, eq=False)
class SegmentSpan:
    """Where an excerpt lies, without its data: what :class:`Segment` holds but arrays.

    Parameters
    ----------
    story : str
        The story it is cut from.
    start, stop : int
        Its first sample and the one after its last, in the story's features.
    meg : tuple of str
        The MEG subjects with a run of the story.
    fmri : dict
        fMRI subject -> ``(tr_times, trs)``: the stimulus times (s) of the TRs
        acquired in ``[start / sfreq, stop / sfreq)`` and the slice of the run's TRs
        they are. Subjects without a TR in the excerpt are left out.
    """

    story: str
    start: int
    stop: int
    meg: tuple
    fmri: dict


@dataclass(frozen=True, eq=False, repr=False)
class Segment:
    """An aligned excerpt of one story for training.

    Parameters
    ----------
    story : str
        The story.
    start, stop : int
        Sample indices into the story's features (``stop`` excluded).
    features : array, shape (n_times, n_features)
        The stimulus features of the excerpt.
    meg : dict
        MEG subject -> array, shape (n_channels, n_times) (epochs averaged).
    fmri : dict
        fMRI subject -> ``(tr_times, bold)``: the stimulus times (s) of the TRs acquired
        in ``[start / sfreq, stop / sfreq)``, shape (n_trs,), and their BOLD values,
        shape (n_trs, n_targets). Subjects without a TR in the excerpt are left out.
    """

    story: str
    start: int
    stop: int
    features: np.ndarray
    meg: dict
    fmri: dict

    def __repr__(self):
        return (
            f"<Segment {self.story!r} | samples {self.start}-{self.stop}, "
            f"{len(self.meg)} MEG + {len(self.fmri)} fMRI subjects>"
        )


def split_half_ceiling(arrays, bad):
    """Return the split-half noise ceiling per channel, or None without repeats.

    Parameters
    ----------
    arrays : dict
        Story -> run array; only runs of two or more epochs count.
    bad : dict
        Story -> bad samples (bool) or None; those are left out (a story missing
        has none).

    Returns
    -------
    ceiling : array, shape (n_channels,) | None
        ``sqrt(2 r / (1 + r))`` with ``r`` the (non-negative) correlation between the
        averages of the even and of the odd epochs, concatenated over stories.
    """
    halves = []
    for story, data in arrays.items():
        if data.ndim == 3 and data.shape[0] >= 2:
            good = slice(None) if bad.get(story) is None else ~bad[story]
            halves.append(
                [data[k::2].mean(axis=0, dtype=float)[:, good] for k in (0, 1)]
            )
    if not halves:
        return None
    even = np.concatenate([h[0] for h in halves], axis=-1)
    odd = np.concatenate([h[1] for h in halves], axis=-1)
    r_half = np.clip(prediction_r(even, odd, axis=-1), 0, None)
    return np.sqrt(2 * r_half / (1 + r_half))
