"""What a fitted FusionEncoder gives: predictions, source estimates and scores.

A mixin of :class:`FusionEncoder`: it turns the network's output into MNE objects
(Raw, SourceEstimate) and arrays, and scores predictions against recordings.
"""

import mne
import numpy as np
import torch
from mne.io import BaseRaw, RawArray
from mne_bids import BIDSPath, read_raw_bids

from .._sensor_data import fitted_rows
from ..anatomy import template_source_space
from ..container import FusionDataset
from ..container._projs import apply_active_projs
from ..metrics import prediction_r
from ..model import tr_pooling
from ..utils import (
    _validate_type,
    fill_doc,
    verbose_method,
)
from . import _data_informed, _new_subject, _params
from ._fmri_targets import fitted_columns
from ._inputs import checked_features, checked_tr_times
from ._segments import hrf_taps
from ._source_readout import hidden_features

NEW_SUBJECT_HINT = "; give the forward of a new MEG subject to predict it"


class PredictionMixin:
    """Prediction, source estimation and scoring of a fitted :class:`FusionEncoder`."""

    def _check_dataset(self, X, fitting=False):
        _validate_type(X, FusionDataset, "X")
        if fitting and (not X.stories or not (X.meg_subjects or X.fmri_subjects)):
            raise ValueError(
                f"X must hold stories and at least one MEG or fMRI subject, got {X!r}."
            )
        if abs(X.sfreq - self.sfreq) > 1e-6 * self.sfreq:
            hint = f"; set sfreq={X.sfreq} or resample the data" if fitting else ""
            raise ValueError(
                f"X is sampled at {X.sfreq} Hz but the encoder's sfreq is "
                f"{self.sfreq} Hz{hint}."
            )

    def _check_subject(self, subject, kinds=("meg", "fmri"), hint=""):
        known = [
            *(self.meg_subjects_ if "meg" in kinds else []),
            *(self.fmri_subjects_ if "fmri" in kinds else []),
        ]
        _validate_type(subject, str, "subject")
        for kind, other, fitted in (
            ("an fMRI", "an MEG", self.fmri_subjects_),
            ("an MEG", "an fMRI", self.meg_subjects_),
        ):
            if subject in fitted and subject not in known:
                raise ValueError(
                    f"subject {subject!r} is {kind} subject, but {other} subject is "
                    f"needed here: {', '.join(map(repr, known)) or 'none was fitted'}."
                )
        if subject not in known:
            raise ValueError(
                f"Unknown subject {subject!r}; the encoder was fitted on: "
                f"{', '.join(map(repr, known)) or 'none of that kind'}{hint}."
            )
        return subject

    def _check_new_name(self, subject):
        """Raise unless ``subject``, given with a forward, is a new name."""
        _validate_type(subject, str, "subject")
        if subject in (*self.meg_subjects_, *self.fmri_subjects_):
            raise ValueError(
                f"forward is for new MEG subjects, but the encoder was fitted on "
                f"{subject!r}: leave forward out to use the fit's lead field, or "
                "give the new subject another name."
            )

    _check_features = checked_features

    def _hidden(self, features):
        return hidden_features(self.model_.network, features)

    def _sources(self, hidden):
        """Source activity (A m), array (n_sources, n_times)."""
        with torch.no_grad():
            sources = self.model_.network.sources(hidden)[0]
        return sources.double().cpu().numpy().T * self.source_scale_

    def _meg_prediction(self, hidden, subject):
        """Predicted sensor data (T, T/m), array (n_channels, n_times).

        Projected by the SSP projectors active in the subject's recordings.
        """
        setup = self._meg[subject]
        prediction = self._lead_field_prediction(hidden, setup.gain)
        return apply_active_projs(prediction, setup.info)

    def _lead_field_prediction(self, hidden, gain):
        """``gain`` (n_channels, n_template_sources) times the sources."""
        operator = gain * self.source_scale_
        operator = torch.as_tensor(operator, dtype=hidden.dtype, device=hidden.device)
        with torch.no_grad():
            pred = self.model_.network.sources.project(hidden, operator)[0]
        return pred.double().cpu().numpy().T

    def _bold_prediction(self, hidden, subject, tr_times):
        """Predicted BOLD (standardised units) at ``tr_times``, (n_trs, n_targets)."""
        setup = self._fmri[subject]
        n_times = hidden.shape[1]
        n_taps = hrf_taps(self.hrf_length, setup.tr)
        pooling = tr_pooling(n_times, self.sfreq, 0, tr_times, setup.tr, n_taps)
        pooling = torch.as_tensor(pooling, dtype=hidden.dtype, device=hidden.device)
        with torch.no_grad():
            sources = self.model_.network.sources(hidden)
            bold = self.model_.fmri_heads[setup.key](sources, pooling[None])[0]
        return bold.double().cpu().numpy()

    def _new_meg_subject(self, subject, forward, bads=()):
        """Return the fixed forward, channels (but ``bads``) and template lead field."""
        forward = _new_subject.fixed_forward(forward, subject)
        names = _new_subject.meg_channels(forward, subject)
        names = [name for name in names if name not in bads]
        src = template_source_space(self.spacing, self.subjects_dir, verbose=False)
        gain = _new_subject.template_gain(forward, names, src, self.subjects_dir)
        return forward, names, gain

    def _template_stc(self, data, tmin):
        return mne.SourceEstimate(
            data, self.vertices_, tmin=tmin, tstep=1.0 / self.sfreq, subject="fsaverage"
        )

    @verbose_method
    @fill_doc
    def predict(self, features, subject, *, forward=None, tr_times=None, verbose=None):
        """Predict a subject's recording of a stimulus.

        Parameters
        ----------
        %(features_input)s
        subject : str
            Name of a subject the encoder was fitted on, or of a new MEG subject
            given with its ``forward``.
        forward : mne.Forward | None
            The forward of a new MEG subject (zero-shot prediction): any MEG
            system, on the template's sources or, morphed from the template with
            the encoder's ``subjects_dir``, on the subject's own cortex; free or
            loose orientations are made fixed (normal to the cortex, with cortical
            patch statistics). Not for a fitted subject, which is predicted with the
            lead field of the fit (give another name to predict it as a new subject
            with this forward).
        tr_times : array-like | None
            An fMRI subject's volumes to predict: the times (s, on the features'
            time axis) their acquisition windows start, every TR, e.g.
            ``dataset.fmri(subject).tr_times(story)`` for its own volumes of a
            story. None: from the features' first time, every TR, while the window
            lies within the features.
        %(verbose)s

        Returns
        -------
        prediction : mne.io.RawArray | mne.SourceEstimate | array
            MEG subject: a Raw with the subject's Info (channels used in the fit;
            for a new subject the forward's MEG channels), in T (T/m for
            gradiometers). fMRI subject: the BOLD averaged over each volume's window
            ``[t, t + TR)`` (``t`` in ``tr_times``) in units of the run-wise
            standardised BOLD, as a SourceEstimate (``tmin`` the first ``t``,
            ``tstep = TR``) when the subject was given on template vertices, else an
            array (n_trs, n_targets).

        Notes
        -----
        An MEG subject's prediction is its lead field (on the template sources)
        times the stimulus-driven source estimate of :meth:`apply_inverse`, which is
        the same for every subject. A new subject is predicted in the same way with
        the lead field of its forward; what the fit keeps per subject besides the
        lead field (noise whitener and covariance) only weighs that subject's data
        in the fit and is not used to predict.
        """
        _params.check_fitted(self)
        if forward is None:
            self._check_subject(subject, hint=NEW_SUBJECT_HINT)
        else:
            self._check_new_name(subject)
        if tr_times is not None and subject not in self._fmri:
            raise ValueError(f"tr_times is for fMRI subjects, not {subject!r}.")
        features, tmin = self._check_features(features)
        hidden = self._hidden(features)
        first_samp = int(round(tmin * self.sfreq))
        if forward is not None:
            forward, names, gain = self._new_meg_subject(subject, forward)
            info = _new_subject.prediction_info(forward, names, self.sfreq)
            data = self._lead_field_prediction(hidden, gain)
            return RawArray(data, info, first_samp=first_samp, verbose=False)
        if subject in self._meg:
            info = self._meg[subject].info.copy()
            data = self._meg_prediction(hidden, subject)
            return RawArray(data, info, first_samp=first_samp, verbose=False)
        setup = self._fmri[subject]
        if tr_times is None:  # every TR from the features' first time
            n_trs = int(np.floor(len(features) / self.sfreq / setup.tr + 1e-9))
            tr_times = tmin + np.arange(max(n_trs, 1)) * setup.tr
        tr_times = checked_tr_times(tr_times, setup.tr, subject)
        bold = self._bold_prediction(hidden, subject, tr_times - tmin)
        if setup.vertices is None:
            return bold
        return mne.SourceEstimate(
            bold.T,
            setup.vertices,
            tmin=tr_times[0],
            tstep=setup.tr,
            subject="fsaverage",
        )

    @verbose_method
    @fill_doc
    def apply_inverse(
        self,
        features,
        inst=None,
        subject=None,
        *,
        stim_onset=None,
        forward=None,
        noise_cov=None,
        method="champagne",
        snr="auto",
        depth=0.8,
        fmri_weighted=False,
        verbose=None,
    ):
        """Estimate cortical sources from a stimulus, optionally with a recording.

        Parameters
        ----------
        %(features_input)s
        inst : None | mne.io.Raw | mne.Epochs | mne.Evoked | mne_bids.BIDSPath
            None (default) gives the stimulus-driven estimate. A recording of an MEG
            subject, fitted or new, gives the data-informed estimate
            ``s_enc + K (y - G s_enc)`` with ``K`` the inverse of ``method``,
            learnt without the channels it marks bad and the ``BAD*`` spans of a
            Raw or of each epoch.
            It is read from ``stim_onset`` on at the encoder's rate, as
            :meth:`FusionDataset.add_meg` reads a run (resampled if at another).
        subject : str | None
            The MEG subject of ``inst``: a subject the encoder was fitted on, or a
            new one given with its ``forward``.
        stim_onset : None | float | str
            Where ``features`` start in ``inst``, as in
            :meth:`FusionDataset.add_meg`: None (default) at a Raw's first sample
            and an epoch's time 0, seconds from a Raw's first sample or the epoch
            time, or the description of a Raw's annotation.
        forward : mne.Forward | None
            The subject's forward for ``K`` (free orientations are made fixed, as
            in :meth:`predict`); None uses the one it was fitted with (not kept by
            :meth:`save`). Required for a new subject, whose ``G s_enc`` is its
            zero-shot prediction (:meth:`predict`) on the forward's MEG channels
            that are not bad in ``inst``.
        noise_cov : mne.Covariance | None
            Noise covariance for ``K``; None uses the one given to :meth:`fit`,
            else (and for a new subject) MNE's ad hoc covariance
            (:func:`mne.make_ad_hoc_cov`, whose overall scale Champagne learns)
            for Champagne, and for minimum norm one estimated from the residual
            ``y - G s_enc`` (not from an Evoked's: give one).
        method : "champagne" | "MNE" | "dSPM" | "sLORETA" | "eLORETA"
            Inverse of ``K``. ``"champagne"`` (default,
            :func:`mne_fusion.inverse_sparse.champagne`) learns a variance per
            source and the noise level from the residual: what no stimulus
            explains (spontaneous activity, a model's errors) comes from a few
            patches, which it locates where minimum norm blurs them (see
            :ref:`ug-model`); its updates stop at 100, before they settle on
            noisy recordings, on purpose (early stopping measured in
            ``benchmarks/bench_champagne_updates.py``). The others are minimum norm
            (:func:`mne_fusion.inverse.minimum_norm`); of them only ``"MNE"``
            gives estimates in A m that add to the encoder's.
        snr : "auto" | float | None
            Amplitude SNR of a minimum-norm ``K``; ``lambda2 = 1 / snr ** 2``.
            ``"auto"`` (default) measures it on the residual: its variance beyond
            the noise covariance, per whitened channel
            (:func:`mne_fusion.inverse.whitened_snr`). None takes MNE's
            conventions, 3 for an Evoked (averaged data) and 1 for Raw and Epochs
            (single trials), as ``"auto"`` does when the noise covariance is
            estimated from the residual itself. Champagne learns it: ``"auto"``.
        depth : float | None
            Depth weighting of a minimum-norm ``K`` (None for none); Champagne's
            learnt variances need none.
        fmri_weighted : bool
            Whether a minimum-norm ``K`` uses the source prior of the read-out,
            variance ``1 - fmri_prior + fmri_prior * fmri_evidence_``
            (:func:`mne_fusion.inverse.fmri_weighted_mne`). False (default), or an
            encoder without ``fmri_evidence_``, gives plain minimum norm: the
            residual is mostly activity no stimulus drives, which the fMRI
            subjects' shared (stimulus-driven) BOLD does not locate, and the
            fMRI-weighted operator pulls it into the stimulus-driven sources (see
            :ref:`ug-model`). Not with ``"eLORETA"`` or ``"champagne"``.
        %(verbose)s

        Returns
        -------
        stc : mne.SourceEstimate | list of mne.SourceEstimate
            Source activity (A m) on the template (subject ``"fsaverage"``); one per
            epoch for Epochs.

        Notes
        -----
        The correction is :func:`mne_fusion.inverse_sparse.champagne`,
        :func:`mne_fusion.inverse.minimum_norm` or
        :func:`mne_fusion.inverse.fmri_weighted_mne` (all through MNE's
        ``make_inverse_operator`` and ``apply_inverse_raw``, ``apply_inverse_epochs``
        or ``apply_inverse``) applied to the residual, which by linearity equals
        ``K (y - G s_enc)``. With an encoder that predicts nothing it reduces to that
        estimate from ``inst``.
        """
        _params.check_fitted(self)
        _data_informed.check_method(method, snr, fmri_weighted)
        if inst is None:
            _data_informed.check_recording_free(
                type(self).apply_inverse,
                subject=subject,
                stim_onset=stim_onset,
                forward=forward,
                noise_cov=noise_cov,
                method=method,
                snr=snr,
                depth=depth,
                fmri_weighted=fmri_weighted,
            )
        features, tmin = self._check_features(features)
        hidden = self._hidden(features)
        sources = self._sources(hidden)
        if inst is None:
            return self._template_stc(sources, tmin)
        _validate_type(inst, (BaseRaw, mne.BaseEpochs, mne.Evoked, BIDSPath), "inst")
        if subject is None:
            raise ValueError("subject is required when inst is given.")
        if forward is None:
            self._check_subject(subject, kinds=("meg",), hint=NEW_SUBJECT_HINT)
        elif subject not in self._meg:
            self._check_new_name(subject)
        if isinstance(inst, BIDSPath):  # read lazily, as add_meg reads a run
            inst = read_raw_bids(inst, verbose=False)
        if subject in self._meg:
            setup = self._meg[subject]
            forward = setup.forward if forward is None else forward
            if forward is None:
                raise ValueError(
                    f"forward is required: the forward of {subject!r} is not saved "
                    "with the encoder."
                )
            forward = _new_subject.fixed_forward(forward, subject, setup.info)
            names, fitted_cov = setup.info["ch_names"], setup.noise_cov
            prediction = self._meg_prediction(hidden, subject)
        else:
            forward, names, gain = self._new_meg_subject(
                subject, forward, inst.info["bads"]
            )
            prediction, fitted_cov = self._lead_field_prediction(hidden, gain), None
        _data_informed.check_noise_cov(noise_cov, names, subject, inst.info["bads"])
        resid = _data_informed.residual(
            inst, prediction, subject, names, forward, self.sfreq, stim_onset
        )
        noise_cov = fitted_cov if noise_cov is None else noise_cov
        # "auto" compares the residual with a covariance estimated elsewhere; one
        # estimated from the residual itself leaves nothing beyond it
        if snr is None or (snr == "auto" and noise_cov is None):
            snr = 3.0 if isinstance(inst, mne.Evoked) else 1.0
        correction = _data_informed.correction(
            resid,
            forward,
            noise_cov,
            template_source_space(self.spacing, self.subjects_dir, verbose=False),
            self.fmri_evidence_ if fmri_weighted else None,
            self.fmri_prior,
            method=method,
            snr=snr,
            depth=depth,
            subjects_dir=self.subjects_dir,
        )
        if isinstance(correction, list):
            return [
                self._template_stc(_data_informed.corrected(sources, c), tmin)
                for c in correction
            ]
        return self._template_stc(_data_informed.corrected(sources, correction), tmin)

    @verbose_method
    @fill_doc
    def score(self, X, y=None, *, verbose=None):
        """Pearson r between predictions and recordings, per channel/target.

        Parameters
        ----------
        X : FusionDataset
            Stimuli and recordings of subjects the encoder was fitted on (e.g.
            held-out stories).
        y : None
            Ignored.
        %(verbose)s

        Returns
        -------
        scores : dict of str -> array
            Subject -> r per MEG channel (in ``X``'s channel order) or per fMRI target,
            over all of the subject's stories in ``X`` (each centred on its mean;
            MEG samples under ``BAD*`` annotations left out, as in the fit).
        """
        _params.check_fitted(self)
        self._check_dataset(X)
        for name in X.meg_subjects:
            self._check_subject(name, kinds=("meg",))
        for name in X.fmri_subjects:
            self._check_subject(name, kinds=("fmri",))
        hidden = {
            s: self._hidden(self._check_features(X.stimulus(s))[0]) for s in X.stories
        }
        scores = {}
        for name in X.meg_subjects:
            subject = X.meg(name)
            rows = fitted_rows(subject.info, self._meg[name].info, f"X's {name!r}")
            gain = self._meg[name].gain[rows]
            true, pred = [], []
            for story in subject.runs:
                bad = subject.bad_samples(story)
                good = slice(None) if bad is None else ~bad  # BAD spans left out
                true.append(_center(subject.average(story)[:, good], axis=1))
                # projected as these recordings are, whatever the fitted ones were
                fit = self._lead_field_prediction(hidden[story], gain)[:, good]
                pred.append(_center(apply_active_projs(fit, subject.info), axis=1))
            scores[name] = prediction_r(np.hstack(true), np.hstack(pred), axis=1)
        for name in X.fmri_subjects:
            subject = X.fmri(name)
            columns = fitted_columns(self._fmri[name], subject, name)
            true, pred = [], []
            for story, run in subject.runs.items():
                run = run if columns is None else run[:, columns]
                bold = self._bold_prediction(
                    hidden[story], name, subject.tr_times(story)
                )
                true.append(_center(run, axis=0))
                pred.append(_center(bold, axis=0))
            scores[name] = prediction_r(np.vstack(true), np.vstack(pred), axis=0)
        return scores


def _center(data, axis):
    return data - data.mean(axis=axis, keepdims=True)
