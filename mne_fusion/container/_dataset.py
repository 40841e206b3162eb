"""FusionDataset: stimuli per story, MEG and fMRI subjects, aligned segments."""

import dataclasses
from dataclasses import dataclass

import numpy as np
from mne import BaseEpochs, Forward, Info, SourceEstimate, pick_info, pick_types
from mne.forward import is_fixed_orient
from mne.io import BaseRaw
from mne.utils import logger, verbose
from scipy import sparse

from ..features import Features
from ..metrics import prediction_r
from ..utils import (
    _check_finite,
    _check_positive,
    _validate_type,
)

# Relative tolerance when comparing sampling rates and TRs given as floats.
_RTOL = 1e-6


@dataclass(frozen=True, eq=False, repr=False)
class MEGSubject:
    """The MEG recordings of one subject, as arrays ready for the encoder.

    Parameters
    ----------
    name : str
        Subject name.
    forward : mne.Forward
        The fixed-orientation forward solution given to :meth:`FusionDataset.add_meg`.
    info : mne.Info
        Measurement info of the first run, picked to the channels in ``gain``.
    gain : array, shape (n_channels, n_sources)
        Lead field rows of the picked channels (T/Am or T/m/Am).
    vertices : list of array
        ``[lh, rh]`` vertex numbers of the forward's source space (row order of
        ``gain``'s columns).
    runs : dict
        Story -> array, shape (n_channels, n_times) for a continuous run, or
        (n_epochs, n_channels, n_times) for repeated presentations; SI units (T, T/m);
        sample 0 is the stimulus onset and ``n_times`` equals the story's features.
    noise_ceiling : array, shape (n_channels,) | None
        Highest Pearson r a perfect model can reach on the epoch-averaged data, from
        split-half repeat correlations; None when no story has two or more epochs.
    """

    name: str
    forward: Forward
    info: Info
    gain: np.ndarray
    vertices: list
    runs: dict
    noise_ceiling: np.ndarray | None

    def average(self, story):
        """Return the run of ``story`` averaged over its epochs.

        Parameters
        ----------
        story : str
            A story of :attr:`runs`.

        Returns
        -------
        data : array, shape (n_channels, n_times)
            The continuous run as it is, or the mean of the repeated presentations.
        """
        run = _lookup(self.runs, story, "story")
        return run.mean(axis=0) if run.ndim == 3 else run

    def __repr__(self):
        return (
            f"<MEGSubject {self.name!r} | {self.gain.shape[0]} channels, "
            f"{self.gain.shape[1]} sources, {len(self.runs)} stories>"
        )


@dataclass(frozen=True, eq=False, repr=False)
class FMRISubject:
    """The fMRI recordings of one subject.

    Parameters
    ----------
    name : str
        Subject name.
    tr : float
        Repetition time in seconds.
    tmin : dict
        Story -> stimulus time (s) of the run's first TR.
    runs : dict
        Story -> array, shape (n_trs, n_targets) of BOLD values.
    vertices : list of array | None
        ``[lh, rh]`` template vertex numbers of the targets when the runs were given as
        SourceEstimates, else None.
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
        n_trs = _lookup(self.runs, story, "story").shape[0]
        return self.tmin[story] + np.arange(n_trs) * self.tr

    def __repr__(self):
        kind = "mapped targets" if self.mapping is not None else "vertices"
        n_targets = next(iter(self.runs.values())).shape[1]
        return (
            f"<FMRISubject {self.name!r} | {n_targets} {kind}, TR {self.tr:g} s, "
            f"{len(self.runs)} stories>"
        )


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


class FusionDataset:
    """Stimuli, MEG subjects and fMRI subjects of a naturalistic experiment.

    Stories are added first with :meth:`add_stimulus`; each subject then brings its
    recordings of some of them, either MEG (:meth:`add_meg`, with a forward model) or
    fMRI (:meth:`add_fmri`). Everything is validated when added and stored as arrays
    aligned to the stimulus features: MEG sample 0 is feature sample 0, fMRI TRs carry
    their stimulus time.

    See Also
    --------
    mne_fusion.FusionEncoder : The model fitted on a FusionDataset.
    mne_fusion.simulation.simulate_naturalistic : A simulated FusionDataset.

    Examples
    --------
    >>> ds = FusionDataset()  # doctest: +SKIP
    >>> ds.add_stimulus("story1", feats)  # doctest: +SKIP
    >>> ds.add_meg("S1", {"story1": raw}, forward=fwd)  # doctest: +SKIP
    >>> ds.add_fmri("S6", {"story1": bold_stc}, tr=2.0)  # doctest: +SKIP
    """

    def __init__(self):
        self._stimuli = {}
        self._meg = {}
        self._fmri = {}

    # ------------------------------------------------------------------ contents
    @property
    def stories(self):
        """Story names, in the order they were added."""
        return list(self._stimuli)

    @property
    def meg_subjects(self):
        """MEG subject names, in the order they were added."""
        return list(self._meg)

    @property
    def fmri_subjects(self):
        """Names of the fMRI subjects, in the order they were added."""
        return list(self._fmri)

    @property
    def sfreq(self):
        """Sampling rate (Hz) of the stimulus features; None before any story."""
        if not self._stimuli:
            return None
        return next(iter(self._stimuli.values())).sfreq

    @property
    def feature_names(self):
        """Names of the feature columns shared by all stories; None before any story."""
        if not self._stimuli:
            return None
        return list(next(iter(self._stimuli.values())).names)

    def stimulus(self, story):
        """Return the features of a story.

        Parameters
        ----------
        story : str
            The story.

        Returns
        -------
        features : Features
            The stimulus features (the stored object, not a copy).
        """
        return _lookup(self._stimuli, story, "story")

    def meg(self, subject):
        """Return an MEG subject.

        Parameters
        ----------
        subject : str
            The subject.

        Returns
        -------
        subject : MEGSubject
            Its forward, info, gain, vertices, runs and noise ceiling.
        """
        return _lookup(self._meg, subject, "subject")

    def fmri(self, subject):
        """Return an fMRI subject.

        Parameters
        ----------
        subject : str
            The subject.

        Returns
        -------
        subject : FMRISubject
            Its TR, TR times, runs, vertices or mapping, and noise ceiling.
        """
        return _lookup(self._fmri, subject, "subject")

    # ------------------------------------------------------------------ adding
    @verbose
    def add_stimulus(self, story, features, sfreq=None, *, verbose=None):
        """Add the stimulus features of a story.

        Parameters
        ----------
        story : str
            A new, non-empty story name.
        features : Features | array, shape (n_times, n_features)
            The features; sample 0 is the stimulus onset. All stories share one
            sampling rate and one set of feature names (an array takes the names of
            the stories added before it, else ``"f0"``, ``"f1"``, ...).
        sfreq : float | None
            Sampling rate in Hz; required for an array, optional (must match) for
            Features.
        %(verbose)s

        Returns
        -------
        self : FusionDataset
            The dataset, for chaining.
        """
        self._check_new_name(story, "story", self._stimuli)
        if isinstance(features, Features):
            if sfreq is not None and not _same(features.sfreq, sfreq):
                raise ValueError(
                    f"sfreq ({sfreq}) differs from features.sfreq ({features.sfreq}); "
                    "leave sfreq=None for Features."
                )
            if abs(features.tmin) * features.sfreq >= 0.5:
                raise ValueError(
                    f"features must start at the stimulus onset (tmin=0), got "
                    f"tmin={features.tmin} s; use features.crop(tmin=0) or rebuild "
                    "them from the onset."
                )
            features = features.copy()
            features.tmin = 0.0
        else:
            _validate_type(features, (Features, np.ndarray), "features")
            if sfreq is None:
                raise ValueError("sfreq is required when features is an array.")
            features = Features(features, sfreq)
            # A plain array has no column names: it takes those of the dataset.
            if self._stimuli and features.n_features == len(self.feature_names):
                features.names = self.feature_names
        if features.n_times < 2:
            raise ValueError(
                f"features of story {story!r} must hold at least 2 samples, got "
                f"{features.n_times}."
            )
        if self._stimuli:
            if not _same(features.sfreq, self.sfreq):
                raise ValueError(
                    f"features of story {story!r} are sampled at {features.sfreq} Hz "
                    f"but the dataset's stories are at {self.sfreq} Hz; resample them "
                    f"with features.resample({self.sfreq})."
                )
            if features.names != self.feature_names:
                raise ValueError(
                    f"features of story {story!r} have the columns "
                    f"{features.names} but the dataset's stories have "
                    f"{self.feature_names}."
                )
            # One clock for every story: store the sampling rate exactly as the first.
            features.sfreq = self.sfreq
        self._stimuli[story] = features
        logger.info(f"Added story {story!r}: {features!r}")
        return self

    @verbose
    def add_meg(self, subject, runs, forward, *, verbose=None):
        """Add an MEG subject.

        Parameters
        ----------
        subject : str
            A new subject name (not already an MEG or fMRI subject).
        runs : dict
            Story -> :class:`mne.io.Raw` or :class:`mne.Epochs` at the stimulus sampling
            rate. The first sample of a Raw's data (whatever its ``first_samp``) is the
            stimulus onset; each epoch is one presentation with time 0 at the onset
            (earlier samples are dropped). Runs must cover the story's features (one
            missing final sample is filled with the last one); longer runs are cropped.
        forward : mne.Forward
            Fixed-orientation forward solution on a two-hemisphere surface source space.
            Every good MEG channel of the runs must be in it; the channels used are the
            forward's MEG channels that are good in every run.
        %(verbose)s

        Returns
        -------
        self : FusionDataset
            The dataset, for chaining.

        Notes
        -----
        The noise ceiling of a channel is the square root of the Spearman-Brown
        corrected correlation between the averages of the even and of the odd epochs
        (concatenated over every story with two or more epochs, negative correlations
        set to 0): the highest Pearson r a noiseless model can reach on the average of
        all epochs.
        """
        self._check_subject(subject)
        runs = self._check_runs(runs, (BaseRaw, BaseEpochs))
        _check_forward(forward)
        names = self._meg_channels(runs, forward)
        rows = [forward["sol"]["row_names"].index(name) for name in names]
        gain = np.array(forward["sol"]["data"][rows], dtype=np.float64)
        arrays = {
            story: self._meg_run(story, inst, names) for story, inst in runs.items()
        }
        first = next(iter(runs.values()))
        info = pick_info(first.info, [first.ch_names.index(name) for name in names])
        self._meg[subject] = MEGSubject(
            name=subject,
            forward=forward,
            info=info,
            gain=gain,
            vertices=[np.array(s["vertno"]) for s in forward["src"]],
            runs=arrays,
            noise_ceiling=_split_half_ceiling(arrays),
        )
        logger.info(
            f"Added MEG subject {subject!r}: {len(names)} channels, "
            f"{gain.shape[1]} sources, {len(arrays)} stories"
        )
        return self

    @verbose
    def add_fmri(
        self,
        subject,
        runs,
        tr,
        mapping=None,
        tmin=None,
        *,
        noise_ceiling=None,
        verbose=None,
    ):
        """Add an fMRI subject.

        Parameters
        ----------
        subject : str
            A new subject name (not already an MEG or fMRI subject).
        runs : dict
            Story -> :class:`mne.SourceEstimate` with ``tstep == tr`` on the same
            template vertices for every story, its ``tmin`` being the stimulus time of
            the first TR; or story -> array, shape (n_trs, n_targets), with ``mapping``.
            All runs are of one kind. TRs may lie at most one TR before the stimulus
            onset or after its end.
        tr : float
            Repetition time in seconds.
        mapping : sparse matrix | array, shape (n_targets, n_sources) | None
            Read-out from the template's sources to the targets (voxels, parcels or
            subject vertices); required for array runs, None for SourceEstimates.
        tmin : float | dict | None
            Stimulus time (s) of TR 0 of array runs, one value or story -> value; None
            means 0. Must be None for SourceEstimates (their ``tmin`` is used).
        noise_ceiling : array, shape (n_targets,) | None
            Highest Pearson r a perfect model can reach per target (values in [0, 1]),
            if known, e.g. from repeated presentations.
        %(verbose)s

        Returns
        -------
        self : FusionDataset
            The dataset, for chaining.
        """
        self._check_subject(subject)
        runs = self._check_runs(runs, (SourceEstimate, np.ndarray))
        tr = _check_positive(tr, "tr")
        n_stcs = sum(isinstance(run, SourceEstimate) for run in runs.values())
        if 0 < n_stcs < len(runs):
            raise TypeError(
                "runs must be all SourceEstimates or all arrays, got "
                f"{n_stcs} SourceEstimate(s) and {len(runs) - n_stcs} array(s)."
            )
        if n_stcs:
            arrays, tmins, vertices = _stc_runs(runs, tr, mapping, tmin)
        else:
            arrays, tmins, mapping = _array_runs(runs, mapping, tmin)
            vertices = None
        for story, bold in arrays.items():
            self._check_tr_span(story, tmins[story], bold.shape[0], tr)
        n_targets = next(iter(arrays.values())).shape[1]
        if noise_ceiling is not None:
            noise_ceiling = _check_ceiling(noise_ceiling, n_targets)
        self._fmri[subject] = FMRISubject(
            name=subject,
            tr=tr,
            tmin=tmins,
            runs=arrays,
            vertices=vertices,
            mapping=mapping,
            noise_ceiling=noise_ceiling,
        )
        logger.info(
            f"Added fMRI subject {subject!r}: {n_targets} targets, TR {tr} s, "
            f"{len(arrays)} stories"
        )
        return self

    # ------------------------------------------------------------------ views
    @verbose
    def subset(self, stories, *, verbose=None):
        """Return a dataset restricted to some stories.

        Parameters
        ----------
        stories : str | list of str
            Stories to keep, in this order.
        %(verbose)s

        Returns
        -------
        dataset : FusionDataset
            A new dataset sharing (not copying) the arrays. Subjects without a run of
            the kept stories are left out.
        """
        stories = self._check_stories(stories)
        out = FusionDataset()
        out._stimuli = {story: self._stimuli[story] for story in stories}
        for store, out_store in ((self._meg, out._meg), (self._fmri, out._fmri)):
            for name, subject in store.items():
                kept = [s for s in stories if s in subject.runs]
                if not kept:
                    logger.info(f"subset: subject {name!r} has none of the stories")
                    continue
                changes = {"runs": {s: subject.runs[s] for s in kept}}
                if isinstance(subject, FMRISubject):
                    changes["tmin"] = {s: subject.tmin[s] for s in kept}
                out_store[name] = dataclasses.replace(subject, **changes)
        return out

    @verbose
    def segments(self, length=40.0, overlap=0.5, stories=None, *, verbose=None):
        """Cut the stories into aligned excerpts for training.

        Parameters
        ----------
        length : float
            Excerpt length in seconds. A story shorter than this gives one excerpt of
            its own length.
        overlap : float
            Fraction of ``length`` shared by consecutive excerpts, in [0, 1). The last
            excerpt ends at the story's end (moved back so it keeps its full length).
        stories : str | list of str | None
            Stories to cut; None means all.
        %(verbose)s

        Returns
        -------
        segments : list of Segment
            Story by story, in time order.
        """
        if self.sfreq is None:
            raise ValueError("The dataset has no story; call add_stimulus first.")
        length = _check_positive(length, "length")
        _validate_type(overlap, "numeric", "overlap")
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
        stories = self.stories if stories is None else self._check_stories(stories)
        n_length = max(1, round(length * self.sfreq))
        step = max(1, round(n_length * (1 - overlap)))
        out = []
        for story in stories:
            n_times = self._stimuli[story].n_times
            for start in _starts(n_times, n_length, step):
                out.append(self._segment(story, start, min(start + n_length, n_times)))
        logger.info(f"Cut {len(stories)} stories into {len(out)} segments")
        return out

    def _segment(self, story, start, stop):
        meg = {}
        for name, subject in self._meg.items():
            if story in subject.runs:
                data = subject.runs[story][..., start:stop]
                meg[name] = data.mean(axis=0) if data.ndim == 3 else data
        fmri = {}
        for name, subject in self._fmri.items():
            if story in subject.runs:
                times = subject.tr_times(story)
                # Compare in samples with a tolerance so that a TR exactly on a segment
                # boundary belongs to one segment only, despite float rounding.
                samples = times * self.sfreq
                keep = (samples >= start - 1e-6) & (samples < stop - 1e-6)
                if keep.any():
                    fmri[name] = (times[keep], subject.runs[story][keep])
        features = self._stimuli[story].data[start:stop]
        return Segment(story, start, stop, features, meg, fmri)

    # ------------------------------------------------------------------ checks
    def _check_new_name(self, name, kind, existing):
        _validate_type(name, str, kind)
        if not name:
            raise ValueError(f"{kind} must be a non-empty string, got {name!r}.")
        if name in existing:
            raise ValueError(f"{kind} {name!r} was already added.")

    def _check_subject(self, subject):
        self._check_new_name(subject, "subject", {**self._meg, **self._fmri})

    def _check_stories(self, stories):
        if isinstance(stories, str):
            stories = [stories]
        _validate_type(stories, (list, tuple), "stories")
        if not stories:
            raise ValueError("stories must name at least one story, got none.")
        for story in stories:
            _lookup(self._stimuli, story, "story in stories")
        if len(set(stories)) != len(stories):
            raise ValueError(f"stories must not repeat a story, got {stories}.")
        return list(stories)

    def _check_runs(self, runs, types):
        _validate_type(runs, dict, "runs")
        if not runs:
            raise ValueError("runs must hold at least one story, got an empty dict.")
        if not self._stimuli:
            raise ValueError("The dataset has no story; call add_stimulus first.")
        for story, run in runs.items():
            if story not in self._stimuli:
                raise ValueError(
                    f"runs has story {story!r} that was not added; known stories: "
                    f"{self.stories}. Call add_stimulus first."
                )
            _validate_type(run, types, f"runs[{story!r}]")
        return dict(runs)

    def _meg_channels(self, runs, forward):
        fwd_meg = [
            forward["info"]["ch_names"][k]
            for k in pick_types(forward["info"], meg=True, ref_meg=False, exclude=())
        ]
        if not fwd_meg:
            raise ValueError("forward has no MEG channel.")
        good = None
        for story, inst in runs.items():
            meg = pick_types(inst.info, meg=True, ref_meg=False, exclude="bads")
            run_good = [inst.ch_names[k] for k in meg]
            missing = sorted(set(run_good) - set(fwd_meg))
            if missing:
                raise ValueError(
                    f"runs[{story!r}] has {len(missing)} good MEG channel(s) that are "
                    f"not in forward: {missing[:10]}; mark them bad or compute the "
                    "forward for this Info."
                )
            good = set(run_good) if good is None else good & set(run_good)
        names = [name for name in fwd_meg if name in good]
        if not names:
            raise ValueError(
                "runs and forward share no MEG channel that is good in every run."
            )
        dropped = [name for name in fwd_meg if name not in good]
        if dropped:
            logger.info(
                f"Using {len(names)} of the forward's {len(fwd_meg)} MEG channels "
                f"(bad or absent in a run: {dropped[:10]})"
            )
        return names

    def _meg_run(self, story, inst, names):
        sfreq = inst.info["sfreq"]
        if not _same(sfreq, self.sfreq):
            method = "raw" if isinstance(inst, BaseRaw) else "epochs"
            raise ValueError(
                f"runs[{story!r}] is sampled at {sfreq} Hz but the stimulus at "
                f"{self.sfreq} Hz; use {method}.resample({self.sfreq})."
            )
        picks = [inst.ch_names.index(name) for name in names]
        n_times = self._stimuli[story].n_times
        if isinstance(inst, BaseEpochs):
            onset = int(np.argmin(np.abs(inst.times)))
            if abs(inst.times[onset]) * sfreq >= 0.5:
                raise ValueError(
                    f"runs[{story!r}] (Epochs) must contain time 0, the stimulus "
                    f"onset, got times {inst.times[0]:.3f} to {inst.times[-1]:.3f} s."
                )
            if len(inst) == 0:
                raise ValueError(f"runs[{story!r}] (Epochs) has no epoch.")
            data = inst.get_data(picks=picks)[..., onset:]
        else:
            data = inst.get_data(picks=picks, stop=min(inst.n_times, n_times))
        data = np.asarray(data, dtype=np.float64)
        if data.shape[-1] < n_times - 1:
            raise ValueError(
                f"runs[{story!r}] has {data.shape[-1]} samples from the stimulus onset "
                f"but the story's features have {n_times}; the run must cover the "
                "story."
            )
        if data.shape[-1] < n_times:
            data = np.concatenate([data, data[..., -1:]], axis=-1)
        data = data[..., :n_times]
        _check_finite(data, f"runs[{story!r}]")
        return data

    def _check_tr_span(self, story, tmin, n_trs, tr):
        duration = self._stimuli[story].duration
        first, last = tmin, tmin + (n_trs - 1) * tr
        if first < -tr * (1 + _RTOL) or last > duration + tr * (1 + _RTOL):
            raise ValueError(
                f"runs[{story!r}] has TRs at {first:.3f} to {last:.3f} s but the "
                f"stimulus lasts 0 to {duration:.3f} s (one TR, {tr} s, of slack); "
                "crop the run to the stimulus or fix its tmin."
            )

    def __repr__(self):
        duration = sum(f.duration for f in self._stimuli.values())
        return (
            f"<FusionDataset | {len(self._stimuli)} stories ({duration:.1f} s), "
            f"{len(self._meg)} MEG + {len(self._fmri)} fMRI subjects>"
        )


def _lookup(store, name, kind):
    if name not in store:
        known = ", ".join(repr(k) for k in store) or "none"
        raise ValueError(f"Unknown {kind} {name!r}; available: {known}.")
    return store[name]


def _same(a, b):
    return abs(a - b) <= _RTOL * abs(b)


def _starts(n_times, n_length, step):
    """First samples of the excerpts; the last one ends at ``n_times``."""
    if n_times <= n_length:
        return [0]
    starts = list(range(0, n_times - n_length, step))
    starts.append(n_times - n_length)
    return starts


def _check_forward(forward):
    _validate_type(forward, Forward, "forward")
    if not is_fixed_orient(forward):
        raise ValueError(
            "forward must have fixed (surface-normal) source orientations; convert it "
            "with mne.convert_forward_solution(forward, surf_ori=True, "
            "force_fixed=True, use_cps=True)."
        )
    src = forward["src"]
    if src.kind != "surface" or len(src) != 2:
        raise ValueError(
            f"forward must be on a surface source space with two hemispheres, got a "
            f"{src.kind} source space with {len(src)} part(s)."
        )


def _split_half_ceiling(arrays):
    halves = [
        (data[0::2].mean(axis=0), data[1::2].mean(axis=0))
        for data in arrays.values()
        if data.ndim == 3 and data.shape[0] >= 2
    ]
    if not halves:
        return None
    even = np.concatenate([h[0] for h in halves], axis=-1)
    odd = np.concatenate([h[1] for h in halves], axis=-1)
    r_half = np.clip(prediction_r(even, odd, axis=-1), 0, None)
    return np.sqrt(2 * r_half / (1 + r_half))


def _stc_runs(runs, tr, mapping, tmin):
    if mapping is not None:
        raise ValueError(
            "mapping must be None for SourceEstimate runs (they are on template "
            "vertices); pass arrays with a mapping instead."
        )
    if tmin is not None:
        raise ValueError(
            f"tmin must be None for SourceEstimate runs (their own tmin is used), got "
            f"{tmin!r}."
        )
    vertices = None
    arrays, tmins = {}, {}
    for story, stc in runs.items():
        if not _same(stc.tstep, tr):
            raise ValueError(
                f"runs[{story!r}] has tstep={stc.tstep} s but tr={tr} s; they must "
                "match."
            )
        if vertices is None:
            vertices = [np.array(v) for v in stc.vertices]
        elif not all(
            np.array_equal(a, b) for a, b in zip(vertices, stc.vertices, strict=True)
        ):
            raise ValueError(
                f"runs[{story!r}] has other vertices than the first run; every run "
                "must be on the same vertices."
            )
        data = np.array(stc.data.T, dtype=np.float64)
        _check_finite(data, f"runs[{story!r}]")
        arrays[story], tmins[story] = data, float(stc.tmin)
    return arrays, tmins, vertices


def _array_runs(runs, mapping, tmin):
    if mapping is None:
        raise ValueError(
            "mapping is required for array runs: a matrix of shape (n_targets, "
            "n_template_sources)."
        )
    if sparse.issparse(mapping):
        mapping = sparse.csr_array(mapping, dtype=np.float64)
        _check_finite(mapping.data, "mapping")
    else:
        _validate_type(mapping, np.ndarray, "mapping", "scipy.sparse matrix or ndarray")
        if mapping.ndim != 2:
            raise ValueError(
                f"mapping must be 2D (n_targets, n_template_sources), got shape "
                f"{mapping.shape}."
            )
        mapping = sparse.csr_array(_check_finite(mapping, "mapping"), dtype=np.float64)
    n_targets = mapping.shape[0]
    if tmin is None:
        tmin = 0.0
    if isinstance(tmin, dict):
        missing = sorted(set(runs) - set(tmin))
        if missing:
            raise ValueError(f"tmin has no value for the stories {missing}.")
    else:
        tmin = dict.fromkeys(runs, tmin)
    arrays, tmins = {}, {}
    for story, bold in runs.items():
        _validate_type(tmin[story], "numeric", f"tmin[{story!r}]")
        if bold.ndim != 2 or bold.shape[0] == 0 or bold.shape[1] != n_targets:
            raise ValueError(
                f"runs[{story!r}] must have shape (n_trs, n_targets) with n_targets = "
                f"{n_targets} (mapping rows), got {bold.shape}."
            )
        arrays[story] = np.array(_check_finite(bold, f"runs[{story!r}]"), np.float64)
        tmins[story] = float(tmin[story])
    return arrays, tmins, mapping


def _check_ceiling(noise_ceiling, n_targets):
    _validate_type(noise_ceiling, np.ndarray, "noise_ceiling")
    if noise_ceiling.shape != (n_targets,):
        raise ValueError(
            f"noise_ceiling must have shape ({n_targets},), got {noise_ceiling.shape}."
        )
    _check_finite(noise_ceiling, "noise_ceiling")
    if noise_ceiling.min() < 0 or noise_ceiling.max() > 1:
        raise ValueError(
            f"noise_ceiling values must lie in [0, 1], got {noise_ceiling.min():.3g} "
            f"to {noise_ceiling.max():.3g}."
        )
    return np.array(noise_ceiling, dtype=np.float64)
