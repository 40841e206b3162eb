"""The result of a simulation: datasets, ground truth and the generative model."""

import numpy as np
from mne import SourceEstimate
from mne.io import RawArray
from mne.utils import verbose

from ..features import Features
from ..utils import _check_option, _validate_type, fill_doc


class SimulatedExperiment:
    """A simulated naturalistic MEG + fMRI experiment with its ground truth.

    Made by :func:`simulate_naturalistic`; not meant to be built directly.

    Parameters
    ----------
    **attributes : dict
        The attributes below, and the generative model (``model``) that
        :meth:`stimulus_response` applies.

    Attributes
    ----------
    train, test : FusionDataset
        The training and the held-out stories with every subject's recordings.
    test_stories, train_stories : list of str
        The story names of each split.
    features : dict
        Story -> :class:`~mne_fusion.features.Features` (all stories).
    alignments : dict
        Story -> word and phone intervals (``words``, ``phones``: lists of
        ``(onset, offset, label)``; ``duration``), as a TextGrid would give them.
    sources : dict
        Story -> ground-truth :class:`mne.SourceEstimate` (Am) on ``src``: the
        stimulus drive plus the background activity (all stories).
    stimulus_drive : dict
        Story -> the stimulus-locked part of ``sources``, i.e.
        ``stimulus_response(features[story])``.
    src : mne.SourceSpaces
        The template (fsaverage) source space of every subject.
    forwards : dict
        MEG subject -> its fixed-orientation :class:`mne.Forward`.
    noise_covs : dict
        MEG subject -> :class:`mne.Covariance` of its sensor noise (exact, see
        :func:`simulate_naturalistic`).
    patches : list of Patch
        The stimulus-driven patches.
    background_patches : list of Patch
        The patches with spontaneous (1/f, not stimulus-locked) activity.
    active_sources : array of bool, shape (n_sources,)
        True for the sources of ``patches``, in the source order (lh then rh).
    meg_cnr, fmri_cnr, background, sfreq, tr, seed, spacing, bem : float | int | str
        The parameters of the simulation.
    meg_systems : dict
        MEG subject -> its MEG system.
    ecog : dict
        ECoG subject -> story -> :class:`mne.io.RawArray` of its 64 ``ecog``
        channels (V), with the electrode positions as montage (all stories; empty
        without ECoG subjects).
    ecog_gains : dict
        ECoG subject -> its lead field, array (64, n_sources) in V per A m.
    ecog_positions : dict
        ECoG subject -> electrode positions, array (64, 3), in metres in template
        MRI (MNI305) coordinates.
    ecog_cnr : float
        The ECoG contrast-to-noise ratio.

    See Also
    --------
    simulate_naturalistic
    """

    def __init__(self, **attributes):
        self._model = attributes.pop("model")
        for name, value in attributes.items():
            setattr(self, name, value)

    @property
    def n_sources(self):
        """Number of template sources."""
        return sum(len(s["vertno"]) for s in self.src)

    @property
    def stories(self):
        """All story names, training stories first."""
        return self.train_stories + self.test_stories

    @verbose
    @fill_doc
    def stimulus_response(self, features, *, verbose=None):
        """Apply the true generative model to stimulus features.

        This is the oracle: the cortical activity that the simulated brain produces
        for a stimulus, without spontaneous activity.

        Parameters
        ----------
        features : Features | array, shape (n_times, n_features)
            Stimulus features with the columns of ``features`` of this experiment
            (at least those that the patches respond to), sampled at ``sfreq``; a
            plain array must hold every column of this experiment's features, in
            order.
        %(verbose)s

        Returns
        -------
        stc : mne.SourceEstimate
            Activity (Am) of every source of ``src``, with the features' ``tmin``.
            Stored in factored form (patch profiles x patch time courses); ``.data``
            computes the full array on first access.

        See Also
        --------
        simulate_naturalistic
        """
        _validate_type(features, (Features, np.ndarray), "features")
        reference = self.features[self.stories[0]]
        if isinstance(features, np.ndarray):
            if features.ndim != 2 or features.shape[1] != reference.n_features:
                raise ValueError(
                    f"features as an array must have shape (n_times, "
                    f"{reference.n_features}), got {features.shape}."
                )
            features = Features(
                features, self.sfreq, reference.names, 0.0, reference.extractors
            )
        if not np.isclose(features.sfreq, self.sfreq):
            raise ValueError(
                f"features must be sampled at the simulation's sfreq ({self.sfreq} "
                f"Hz), got {features.sfreq} Hz."
            )
        courses = self._model.time_courses(features)
        return self._stc(self._model.spatial, courses, features.tmin)

    def raw(self, subject, story):
        """Return the MEG recording of a subject for a story.

        Parameters
        ----------
        subject : str
            An MEG subject.
        story : str
            A story.

        Returns
        -------
        raw : mne.io.RawArray
            A copy of the run with the subject's Info; sample 0 is the stimulus onset.
        """
        _check_option("story", story, self.stories)
        dataset = self.test if story in self.test_stories else self.train
        meg = dataset.meg(subject)
        return RawArray(meg.runs[story], meg.info, copy="both", verbose=False)

    def _stc(self, spatial, courses, tmin):
        return SourceEstimate(
            (spatial, courses),
            [s["vertno"] for s in self.src],
            tmin=tmin,
            tstep=1.0 / self.sfreq,
            subject="fsaverage",
        )

    def __repr__(self):
        ecog = f" + {len(self.ecog)} ECoG" if getattr(self, "ecog", None) else ""
        return (
            f"<SimulatedExperiment | {len(self.stories)} stories "
            f"({len(self.train_stories)} train, {len(self.test_stories)} test), "
            f"{len(self.forwards)} MEG + {len(self.test.fmri_subjects)} fMRI{ecog} "
            f"subjects, {self.n_sources} sources, MEG CNR {self.meg_cnr:g}, "
            f"fMRI CNR {self.fmri_cnr:g}>"
        )
