"""FusionDataset: stimuli per story, MEG and fMRI subjects, aligned segments.

The one object an experiment is gathered in before fitting: it checks every story and
subject as it is added (names, sampling rates, channels, TR spans) so that the encoder
and the baselines can trust its arrays. Turning MEG and fMRI runs into arrays lives in
:mod:`._meg_runs` and :mod:`._fmri_runs`, the records it returns in :mod:`._subjects`
and the cutting into excerpts in :mod:`._segments`.
"""

import numpy as np
from mne import SourceEstimate
from mne.utils import logger, verbose

from ..features import Features
from ..utils import _validate_type
from ._common import _check_new_name, _check_runs, _check_stories, _lookup, _same
from ._fmri_runs import _fmri_subject
from ._meg_inputs import RUN_TYPES
from ._meg_runs import _meg_subject
from ._segments import _cut, _story_segments, _story_spans


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
        """Return an MEG subject by name.

        Parameters
        ----------
        subject : str
            One of :attr:`meg_subjects`.

        Returns
        -------
        subject : MEGSubject
            Its forward, info, gain, vertices, runs and noise ceiling.
        """
        return _lookup(self._meg, subject, "subject")

    def fmri(self, subject):
        """Return an fMRI subject by name.

        Parameters
        ----------
        subject : str
            The name of an fMRI subject, one of :attr:`fmri_subjects`.

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
        _check_new_name(story, "story", self._stimuli)
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
            try:  # a copy: the caller's array may change after
                features = Features(np.array(features, dtype=float), sfreq)
            except ValueError as err:
                raise ValueError(f"features of story {story!r}: {err}") from None
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
    def add_meg(self, subject, runs, forward, *, stim_onset=None, verbose=None):
        """Add an MEG subject.

        Parameters
        ----------
        subject : str
            A new subject name (not already an MEG or fMRI subject).
        runs : dict
            Story -> :class:`mne.io.Raw`, :class:`mne.Epochs` or
            :class:`mne_bids.BIDSPath` (read with :func:`mne_bids.read_raw_bids`).
            Each epoch is one presentation with time 0 at the onset (earlier samples are
            dropped). Runs at another rate than the stimulus are cut to the story and
            resampled to it (:func:`scipy.signal.resample_poly`). Runs must cover the
            story (one missing final sample is filled with the last one); longer runs
            are cropped. Runs flat on every channel are refused, flat channels warn.
            Samples under a ``"BAD*"`` annotation (any case) of a Raw, or of any epoch
            (Epochs made with ``reject_by_annotation=False``), are left out of the fit,
            NaN there read as 0 (:meth:`~mne_fusion.container.MEGSubject.bad_samples`).
            Runs share their SSP projectors (as :func:`mne.concatenate_raws` asks),
            applied to all if applied to one.
        forward : mne.Forward | dict
            Forward solution on a two-hemisphere surface source space, or story ->
            forward when the head position differs between runs (all on the same
            source space). Free- and loose-orientation forwards are converted to
            fixed surface-normal orientation as :mod:`mne.minimum_norm` does
            (``mne.convert_forward_solution(fwd, surf_ori=True, force_fixed=True,
            use_cps=True)``). Every good MEG channel of a run must be in its
            forward; the channels used are the MEG channels of every forward that
            are good in every run.
        stim_onset : None | float | str | dict
            Where the story starts in each run. None (default): at a Raw's first
            sample (whatever its ``first_samp``) and at an epoch's time 0. A float:
            seconds from a Raw's first sample, or the epoch time. A str: the
            description of an annotation of a Raw (a BIDS ``trial_type`` such as
            ``"Beg"``), the first of which gives the onset. A dict: story -> one of
            these.
        %(verbose)s

        Returns
        -------
        self : FusionDataset
            The dataset, for chaining.

        Notes
        -----
        With one forward per story, the subject's lead field is the average of the
        forwards' lead fields weighted by the number of samples of their stories:
        an approximation, close when the head moved little between runs.

        The noise ceiling of a channel is the square root of the Spearman-Brown
        corrected correlation between the averages of the even and of the odd epochs
        (concatenated over every story with two or more epochs, negative correlations
        set to 0): the highest Pearson r a noiseless model can reach on the average of
        all epochs.
        Runs are stored in float32, read a chunk at a time.
        """
        _check_new_name(subject, "subject", {**self._meg, **self._fmri})
        runs = _check_runs(runs, self._stimuli, RUN_TYPES)
        stimuli, sfreq = self._stimuli, self.sfreq
        meg = _meg_subject(subject, runs, forward, stimuli, sfreq, stim_onset)
        self._meg[subject] = meg
        logger.info(
            f"Added MEG subject {subject!r}: {meg.gain.shape[0]} channels, "
            f"{meg.gain.shape[1]} sources, {len(meg.runs)} stories"
        )
        return self

    @verbose
    def add_fmri(
        self,
        subject,
        runs,
        tr=None,
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
            Story -> run, all of one kind: :class:`mne.SourceEstimate` (``tstep ==
            tr``, ``tmin`` the stimulus time of TR 0, ``subject`` None or fsaverage)
            on the same fsaverage vertices (template ones or a full fsaverage/6/5
            mesh); fMRIPrep files: a (lh, rh) pair of GIfTI paths on one such mesh, or
            a 4D MNI152 NIfTI path, sampled on fsaverage5 (moved into MNI152 space);
            or arrays (n_trs, n_targets) with ``mapping``. TRs over one TR before
            the stimulus or after its end are dropped; a run needs a TR within it.
        tr : float | None
            Repetition time (s). None reads the files' header (GIfTI ``TimeStep``,
            NIfTI ``pixdim[4]``) or BIDS sidecar (``RepetitionTime``), or the
            SourceEstimates' ``tstep``; a given value must agree. Required for arrays.
        mapping : sparse matrix | array, shape (n_targets, n_sources) | None
            Read-out from the template's sources to the targets (voxels, parcels or
            subject vertices); required for array runs, None otherwise.
        tmin : float | dict | None
            Stimulus time (s) of TR 0 of array and file runs, one finite value or
            story -> value; None means 0. Must be None for SourceEstimates.
        noise_ceiling : array, shape (n_targets,) | None
            Highest Pearson r a perfect model can reach per target (values in [0, 1]),
            if known, e.g. from repeated presentations.
        %(verbose)s

        Returns
        -------
        self : FusionDataset
            The dataset, for chaining.
        """
        _check_new_name(subject, "subject", {**self._meg, **self._fmri})
        runs = _check_runs(
            runs, self._stimuli, (SourceEstimate, np.ndarray, "path-like", tuple, list)
        )
        fmri = _fmri_subject(
            subject, runs, tr, mapping, tmin, noise_ceiling, self._stimuli
        )
        self._fmri[subject] = fmri
        n_targets = next(iter(fmri.runs.values())).shape[1]
        logger.info(
            f"Added fMRI subject {subject!r}: {n_targets} targets, TR {fmri.tr} s, "
            f"{len(fmri.runs)} stories"
        )
        return self

    # ------------------------------------------------------------------ views
    @verbose
    def subset(self, stories=None, *, subjects=None, verbose=None):
        """Return a dataset restricted to some stories and subjects.

        Parameters
        ----------
        stories : str | list of str | None
            Stories to keep, in this order; None keeps them all.
        subjects : list of str | None
            MEG and fMRI subjects to keep; None keeps them all.
        %(verbose)s

        Returns
        -------
        dataset : FusionDataset
            A new dataset sharing (not copying) the arrays. Subjects without a run of
            the kept stories are left out.
        """
        stories = self.stories if stories is None else stories
        stories = _check_stories(stories, self._stimuli)
        if subjects is not None:
            _validate_type(subjects, (list, tuple), "subjects")
            for name in subjects:
                _lookup({**self._meg, **self._fmri}, name, "subject in subjects")
        out = FusionDataset()
        out._stimuli = {story: self._stimuli[story] for story in stories}
        for store, out_store in ((self._meg, out._meg), (self._fmri, out._fmri)):
            for name, subject in store.items():
                if subjects is not None and name not in subjects:
                    continue
                kept = [s for s in stories if s in subject.runs]
                if not kept:
                    logger.info(f"subset: subject {name!r} has none of the stories")
                    continue
                out_store[name] = subject._of_stories(kept)
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

        See Also
        --------
        segment_spans : Where the same excerpts lie, without their data.
        """
        per_story = self._spans(length, overlap, stories)
        out = []
        for spans in per_story:
            story = spans[0].story
            out.extend(
                _story_segments(spans, self._stimuli[story], self._meg, self._fmri)
            )
        logger.info(f"Cut {len(per_story)} stories into {len(out)} segments")
        return out

    @verbose
    def segment_spans(self, length=40.0, overlap=0.5, stories=None, *, verbose=None):
        """Return where the excerpts of :meth:`segments` lie, without their data.

        Parameters
        ----------
        length, overlap, stories
            As for :meth:`segments`.
        %(verbose)s

        Returns
        -------
        spans : list of SegmentSpan
            Story, samples, MEG subjects and fMRI TRs of each excerpt, in the order
            of :meth:`segments`; a training set slices the data from the runs.
        """
        per_story = self._spans(length, overlap, stories)
        out = [span for spans in per_story for span in spans]
        logger.info(f"Cut {len(per_story)} stories into {len(out)} spans")
        return out

    def _spans(self, length, overlap, stories):
        """Return the spans of each story (a list per story), arguments checked."""
        if self.sfreq is None:
            raise ValueError("The dataset has no story; call add_stimulus first.")
        n_length, step = _cut(length, overlap, self.sfreq)
        stories = (
            self.stories if stories is None else _check_stories(stories, self._stimuli)
        )
        return [
            _story_spans(
                story,
                self._stimuli[story].n_times,
                self._meg,
                self._fmri,
                self.sfreq,
                n_length,
                step,
            )
            for story in stories
        ]

    def __repr__(self):
        duration = sum(f.duration for f in self._stimuli.values())
        return (
            f"<FusionDataset | {len(self._stimuli)} stories ({duration:.1f} s), "
            f"{len(self._meg)} MEG + {len(self._fmri)} fMRI subjects>"
        )
