"""FusionEncoder: the MEG-fMRI encoding model behind an sklearn-style API.

The estimator validates its inputs, orchestrates the fit (prepare the dataset once,
train the network, re-solve the source layer) and turns the network's output into
MNE objects. What it delegates: ``_prepare`` (dataset -> typed setups),
``_segments`` (training excerpts), ``_prior`` (fMRI evidence), ``_network`` (network
and heads), ``_source_readout`` (closed-form source layer), ``_prediction``
(predictions, sources, scores), ``_data_informed`` (correction by a recording) and
``_io`` (file format).
"""

import mne
import numpy as np
import torch
from mne.utils import logger
from sklearn.base import BaseEstimator

from ..anatomy import template_source_space
from ..model import calibrate_fmri_gains
from ..model.distributed import local_device, process_group
from ..utils import fill_doc, verbose_method
from . import _fit, _io, _params
from ._network import build_model
from ._prediction import PredictionMixin
from ._prepare import prepare
from ._prior import fmri_evidence, prior_variance
from ._reading import ReadingMixin
from ._segments import SegmentSet
from ._source_readout import read_out
from ._source_refit import refit_network


@fill_doc
class FusionEncoder(PredictionMixin, ReadingMixin, BaseEstimator):
    """Transformer encoding model fitted jointly to MEG and fMRI.

    Stimulus features go through a causal local-window transformer into the activity
    of every source of a template (fsaverage) cortical source space. Fixed lead fields
    map the sources to each MEG subject's sensors; a power envelope, averaged per TR,
    convolved with a learned per-source HRF and read out, maps them to each fMRI
    subject's BOLD. The source layer is the estimate of cortical activity.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the features (Hz); data must be at this rate.
    context : float
        Seconds of past stimulus each attention layer sees; the stack reaches
        ``n_layers * context + input_kernel`` seconds back.
    d_model : int
        Width of the transformer.
    n_heads : int
        Attention heads; must divide ``d_model``.
    n_layers : int
        Transformer layers.
    dim_feedforward : int
        Width of each layer's feed-forward block.
    dropout : float
        Dropout probability in [0, 1).
    input_kernel : float
        Seconds of stimulus the input layer's causal convolution spans (ridge lags).
    linear_lags : float
        Seconds of stimulus spanned by the linear path of the ``"map"`` read-out:
        beside the trained transformer's output, the re-solved source layer reads
        every feature filtered by smooth causal kernels (raised cosines, one per
        80 ms) over this span, the design of a lagged linear encoder, so that the
        linear part of the response is fitted directly, also where the MEG is too
        noisy to train the transformer. 0 leaves the path out.
    spacing : str
        Template source space decimation, see
        :func:`mne_fusion.anatomy.template_source_space`.
    %(subjects_dir)s
    segment_length : float
        Length in seconds of the training excerpts.
    overlap : float
        Fraction in [0, 1) of ``segment_length`` shared by consecutive excerpts.
    burn_in : float
        Unscored seconds at an excerpt's start, which lacks context (excerpts at the
        stimulus onset are scored in full); at most ``overlap * segment_length``, and
        above ``hrf_length`` for fMRI to be scored fairly.
    %(encoder_hrf_length)s
    batch_size : int
        Excerpts per optimisation step.
    lr : float
        AdamW learning rate.
    weight_decay : float
        AdamW weight decay.
    max_epochs : int
        Maximum number of passes over the training excerpts.
    patience : int
        Stop after this many epochs without improvement of the validation loss.
    warmup_epochs : int
        Epochs fitted on MEG only before the joint fit (which then continues at 0.2 x
        the learning rate); ignored without fMRI or without MEG subjects.
    meg_weight, fmri_weight : float
        Weights of the MEG and fMRI data terms.
    smoothness : float
        Weight of the penalty on the mean squared first difference of the sources.
    spatial_smoothness : float
        Weight of the penalty on the mean squared difference between neighbouring
        sources of the template mesh (a LORETA-like prior; with fixed orientations
        it keeps neighbours from cancelling each other with opposite signs).
    source_prior : float
        Weight of the penalty on the mean squared source amplitude (a zero-mean
        Gaussian prior, as in minimum-norm estimation).
    fmri_prior : float
        How much fMRI evidence relaxes that prior, in [0, 1): the prior variance of
        a source is ``1 - fmri_prior + fmri_prior * a`` with ``a`` in [0, 1] the
        inter-subject correlation of its BOLD (``fmri_evidence_``), as the source
        covariance of fMRI-weighted MNE (Liu et al. 1998). 0 gives the same prior
        everywhere; it needs two fMRI subjects with runs of the same story.
    %(encoder_readout)s
    %(encoder_loss)s
    %(encoder_validation)s
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``. Mixed precision (bfloat16) is used on CUDA, where fits are not
        bit-reproducible (its scatter-adds sum in varying order); on the CPU the same
        ``random_state`` gives the same model with the same number of threads.
    %(random_state)s
    verbose : bool | str | int | None
        Logging level of every method call that does not set its own ``verbose``
        (None: MNE's level, see :func:`mne.set_log_level`).
    snr : float | "auto" | None
        Deprecated alias of ``readout_snr`` (removed in mne-fusion 0.3).

    Attributes
    ----------
    model_ : torch.nn.Module
        The fitted network and heads.
    history_ : list of dict
        One record per epoch of the first pass (losses, ``val_r``: validation r by
        subject name, learning rate, time); the second pass logs its epochs.
    vertices_ : list of array
        ``[lh, rh]`` template vertices: the rows of every source estimate.
    source_scale_ : float
        Source amplitude (A m) of one unit of the network's source layer.
    meg_subjects_, fmri_subjects_ : list of str
        Subjects the encoder can predict.
    n_features_in_ : int
        Number of stimulus features.
    feature_names_in_ : array of str
        Their names.
    train_stories_, validation_stories_ : list of str
        Stories used for training and for early stopping (the read-out uses both).
    readout_snr_ : float | None
        The SNR of the ``"map"`` read-out; None when the layer is as trained.
    readout_alpha_ : float | None
        The ridge penalty of the ``"map"`` read-out's sensor read-outs, relative to
        the mean eigenvalue of the hidden features' Gram matrix; None when the layer
        is as trained.
    readout_rank_ : int | None
        The number of components of the stacked sensor read-outs that the ``"map"``
        read-out kept; None when it kept them all or the layer is as trained.
    readout_prior_ : array, shape (n_sources,) | None
        The source prior variance of the ``"map"`` read-out, after
        ``readout_reweight`` steps; None when the layer is as trained.
    fmri_evidence_ : array, shape (n_sources,) | None
        Leave-one-subject-out inter-subject correlation of the BOLD of each template
        source over the fitted stories (training and validation; the training loss
        used the training stories'), clipped at 0 and divided by its maximum; None
        without two fMRI subjects sharing a story.

    See Also
    --------
    read_fusion_encoder, mne_fusion.FusionDataset

    Notes
    -----
    A correlation loss is blind to the scale of each channel and vertex, and z-scored
    sources hide source amplitude from the fMRI head, so with ``loss="correlation"``
    only the lead fields' mixing says which sources should be silent. The likelihood
    loss pins amplitude: MEG residuals are weighed by the noise covariance (or each
    channel's variance); each BOLD run is scaled by one standard deviation for all
    its targets, so their relative amplitudes are kept, and one gain per fMRI
    subject (not one per target) links source power to BOLD, with each source's HRF
    kept at a fixed norm, so that targets without a response must get no power;
    ``source_prior`` keeps sources without evidence near zero.

    Demanding fMRI power through the loss alone (``fmri_weight`` of 1 or more) puts
    activity of the wrong sign at sources that MEG barely sees; fMRI is most useful
    as the prior variance of the sources. What each of these choices gives on the
    simulation is measured in the user guide and in ``benchmarks/results``.
    """

    def __init__(
        self,
        sfreq=50.0,
        context=10.0,
        d_model=128,
        n_heads=4,
        n_layers=2,
        dim_feedforward=256,
        dropout=0.1,
        input_kernel=0.6,
        linear_lags=0.6,
        spacing="ico4",
        subjects_dir=None,
        segment_length=40.0,
        overlap=0.5,
        burn_in=20.0,
        hrf_length=20.0,
        batch_size=8,
        lr=1e-3,
        weight_decay=1e-3,
        max_epochs=100,
        patience=10,
        warmup_epochs=0,
        meg_weight=1.0,
        fmri_weight=0.2,
        smoothness=1e-3,
        spatial_smoothness=1.0,
        source_prior=1.0,
        fmri_prior=0.99,
        readout="map",
        readout_snr="auto",
        readout_rank="auto",
        readout_alpha="sources",
        readout_reweight=1,
        source_refit="auto",
        loss="likelihood",
        validation=0.1,
        device="auto",
        random_state=None,
        verbose=None,
        snr=None,
    ):
        self.sfreq = sfreq
        self.context = context
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.dim_feedforward = dim_feedforward
        self.dropout = dropout
        self.input_kernel = input_kernel
        self.linear_lags = linear_lags
        self.spacing = spacing
        self.subjects_dir = subjects_dir
        self.segment_length = segment_length
        self.overlap = overlap
        self.burn_in = burn_in
        self.hrf_length = hrf_length
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.warmup_epochs = warmup_epochs
        self.meg_weight = meg_weight
        self.fmri_weight = fmri_weight
        self.smoothness = smoothness
        self.spatial_smoothness = spatial_smoothness
        self.source_prior = source_prior
        self.fmri_prior = fmri_prior
        self.readout = readout
        self.readout_snr = readout_snr
        self.readout_rank = readout_rank
        self.readout_alpha = readout_alpha
        self.readout_reweight = readout_reweight
        self.source_refit = source_refit
        self.loss = loss
        self.validation = validation
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.snr = snr

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.input_tags.two_d_array = False
        tags.target_tags.required = False
        return tags

    def __repr__(self):
        if not hasattr(self, "model_"):
            return f"<FusionEncoder | {self.n_layers} layers, not fitted>"
        n_sources = sum(len(v) for v in self.vertices_)
        n_layers = self._fit_params["n_layers"]  # of the network, whatever set since
        return (
            f"<FusionEncoder | {n_layers} layers, {n_sources} sources, fitted on "
            f"{len(self.meg_subjects_)} MEG + {len(self.fmri_subjects_)} fMRI "
            "subjects>"
        )

    @verbose_method
    @fill_doc
    def fit(self, X, y=None, noise_cov=None, *, checkpoint=None, verbose=None):
        """Fit the encoder to every MEG and fMRI subject of a dataset.

        Parameters
        ----------
        X : FusionDataset
            Stimuli and recordings; its features must be at ``sfreq``.
        y : None
            Ignored; the recordings are in ``X``.
        noise_cov : dict of str -> mne.Covariance | None
            Sensor noise covariance per MEG subject, used to whiten its data (and for
            :meth:`apply_inverse`); of Maxwell-filtered runs, one of empty-room data
            Maxwell-filtered alike. Subjects without one are scaled by each channel's
            standard deviation (in the dimensions Maxwell-filtered runs span). The
            SSP projectors of the recording's ``info`` are applied in both cases, as
            MNE's inverse applies them.
        checkpoint : path-like | None
            File where the whole training state is written (atomically) after every
            epoch. When it exists as ``fit`` starts, training resumes from it; it
            must come from a fit of the same data and parameters (``max_epochs``,
            ``patience`` and ``verbose`` may differ). On the CPU, a resumed fit gives
            the model of a fit run straight through. See :ref:`ug-scale`, also for
            fits over several processes or GPUs (``torchrun``).
        %(verbose)s

        Returns
        -------
        self : FusionEncoder
            The fitted encoder.
        """
        readout_snr = _params.check_params(self)
        self._check_dataset(X, fitting=True)
        if self.source_refit is True and not X.meg_subjects:
            raise ValueError(
                "source_refit=True trains on the data-informed estimate of MEG "
                "recordings, but X has no MEG subject."
            )
        noise_cov = _params.check_noise_cov(noise_cov, X)
        checkpoint = _params.check_checkpoint(checkpoint)
        with _fit.restored_on_failure(self):
            self._fit_params = self.get_params()
            src = template_source_space(self.spacing, self.subjects_dir, verbose=False)
            self.vertices_ = [np.array(s["vertno"]) for s in src]
            runs = {"MEG": [set(X.meg(s).runs) for s in X.meg_subjects]}
            runs["fMRI"] = [set(X.fmri(s).runs) for s in X.fmri_subjects]
            train_stories, val_stories = _params.split_stories(
                X.stories, self.validation, runs
            )
            self.train_stories_, self.validation_stories_ = train_stories, val_stories
            self.n_features_in_ = len(X.feature_names)
            self.feature_names_in_ = np.array(X.feature_names, dtype=object)
            self.device_ = local_device(_params.resolve_device(self.device))
            with process_group(self.device_) as shard:
                self._fit(X, noise_cov, src, readout_snr, checkpoint, shard)
        return self

    def _fit(self, X, noise_cov, src, readout_snr, checkpoint, shard):
        """Prepare, train and read out, as this process of ``shard``."""
        n_sources = sum(len(v) for v in self.vertices_)
        train_stories = self.train_stories_
        # every process of a data-parallel fit takes rank 0's seed
        seed = shard.broadcast(_params.fit_seed(self.random_state))
        stories = {"train": train_stories, "validation": self.validation_stories_}
        meg, fmri, data, self.source_scale_ = prepare(
            X, src, self.subjects_dir, stories, noise_cov,
            self.segment_length, self.overlap,
        )  # fmt: skip
        self._meg, self._fmri = meg, fmri
        self.meg_subjects_, self.fmri_subjects_ = list(meg), list(fmri)
        readout_snr, readout_rank = _params.readout_choice(self, readout_snr, len(meg))
        self.fmri_evidence_ = fmri_evidence(data, fmri, train_stories, n_sources)
        prior = prior_variance(self.fmri_evidence_, self.fmri_prior, n_sources)
        items = {
            part: SegmentSet(
                segs, data, meg, fmri, self.sfreq, self.burn_in, self.hrf_length
            )
            for part, segs in data.segments.items()
        }
        logger.info(
            f"Fitting on {len(items['train'])} segments of {len(train_stories)} "
            f"stories ({len(items['validation'])} validation segments), {n_sources} "
            f"sources, device {self.device_}"
        )
        edges = _params.template_edges(mne.spatial_src_adjacency(src, verbose=False))
        objective = _params.objective(self, prior, edges, n_sources, self.device_)
        config = _params.training_config(self)
        weights = {
            setup.key: torch.as_tensor(setup.weights, device=self.device_)
            for setup in (*meg.values(), *fmri.values())
            if setup.weights is not None
        }
        # the fit's own random stream: the global generators stay untouched
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model_ = build_model(
                _params.network_config(self, self.n_features_in_, n_sources),
                meg,
                fmri,
                self.source_scale_,
                self.loss == "correlation",
                [data.features[s] for s in train_stories],
                self.hrf_length,
            ).to(self.device_)
            checkpoint = _fit.make_checkpoint(checkpoint, self, data, meg, fmri)
            self.history_ = _fit.train_network(
                self, items, objective, config, seed, weights, shard, checkpoint
            )
            self.model_.eval()
            # early stopping has chosen the epoch: the evidence and the closed-form
            # layer solved from here on use every story the fit saw
            stories = _params.fitted_stories(self)
            self.fmri_evidence_ = fmri_evidence(data, fmri, stories, n_sources)
            self.readout_snr_ = self.readout_alpha_ = self.readout_rank_ = None
            self.readout_prior_ = None
            if self.readout == "map" and meg:
                read_out(self, data, meg, stories, readout_snr, readout_rank)
                if self.source_refit:  # True or "auto": here it can be made
                    self.model_.network = refit_network(
                        self, X, data.features, seed, shard=shard
                    )
                    read_out(self, data, meg, stories, readout_snr, readout_rank)
                if fmri:
                    calibrate_fmri_gains(
                        self.model_, items["train"], objective, config, shard
                    )
            shard.sync_state(self.model_)  # the same fitted model on every process

    @verbose_method
    @fill_doc
    def save(self, fname, *, overwrite=False, verbose=None):
        """Save the fitted encoder (parameters, network and what it predicts with).

        Parameters
        ----------
        fname : path-like
            File to write (by convention ending in ``.pt``).
        overwrite : bool
            Whether to replace an existing file.
        %(verbose)s

        See Also
        --------
        read_fusion_encoder

        Notes
        -----
        The file holds the network's configuration and weights, numbers, strings and
        the subjects' Info and noise covariances as FIF bytes; it is read with
        ``torch.load(weights_only=True)``, so loading never runs pickled code.
        Forwards are not kept.
        """
        _params.check_fitted(self)
        _io.write_encoder(
            fname,
            params=self.get_params(),
            config=self.model_.network.config,
            state_dict=self.model_.state_dict(),
            fitted={key: getattr(self, f"{key}_") for key in _io.FITTED},
            feature_names=self.feature_names_in_,
            meg=self._meg,
            fmri=self._fmri,
            overwrite=overwrite,
        )
