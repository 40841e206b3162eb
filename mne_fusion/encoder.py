"""FusionEncoder: the MEG-fMRI encoding model behind an sklearn-style API.

This is where MNE objects meet the network: it turns a FusionDataset into whitened,
aligned arrays for :mod:`mne_fusion.model` and turns the network's output back into
Raw, SourceEstimate and arrays. The file format of a fitted encoder (``save`` and
``read_fusion_encoder``) lives in :mod:`mne_fusion._encoder_io`.
"""

import mne
import numpy as np
import torch
from mne.io import BaseRaw, RawArray
from mne.utils import ProgressBar, logger
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import model as nets
from ._encoder_io import read_fusion_encoder as read_fusion_encoder  # re-export
from ._encoder_io import write_encoder
from .container import FusionDataset
from .features import Features
from .metrics import prediction_r
from .utils import (
    _check_option,
    _check_positive,
    _validate_type,
    fill_doc,
    verbose_method,
)

# HRF kernel length in TRs (20 s at a TR of 2 s), as in the reference model.
HRF_TAPS = 10
# Spacing in seconds of the linear path's lag kernels: 9 kernels over 0.6 s.
_LAG_SPACING = 0.08


@fill_doc
class FusionEncoder(BaseEstimator):
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
        Seconds of past stimulus each sample sees (the attention window).
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
        Seconds of stimulus the input layer's causal convolution spans (like the lags
        of a ridge encoder).
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
        Seconds at the start of an excerpt that are not scored because the model
        lacks their context (excerpts that start at the stimulus onset are scored in
        full). Must exceed the HRF's 10 TRs for fMRI to be scored fairly.
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
        the learning rate); ignored without fMRI subjects.
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
    readout : "map" | "trained"
        How the source layer is finally set. ``"map"`` (default): after training,
        the linear source layer is re-solved in closed form as the maximum a
        posteriori estimate for the trained hidden features, under the Gaussian
        likelihood of the noise-whitened MEG of all MEG subjects and the source prior
        above (variance ``1 - fmri_prior + fmri_prior * fmri_evidence_``): a ridge
        read-out of each subject's MEG from the hidden features (its penalty chosen
        by cross-validation over the training stories, ``readout_alpha_``), mapped to
        the template by an fMRI-weighted minimum-norm operator of the stacked lead
        fields.
        Gradient descent only slowly reaches that optimum, and on the simulation the
        closed form doubles the spatial accuracy of the sources. ``"trained"`` keeps
        the layer as trained. Without MEG subjects the layer is always as trained.
    snr : float | "auto"
        Amplitude signal-to-noise ratio assumed by the ``"map"`` read-out; the
        regularisation is ``1 / snr ** 2``, as in
        :func:`mne.minimum_norm.apply_inverse`. ``"auto"`` (default) uses the SNR of
        the sensor read-outs that the operator maps, their predicted variance over
        their estimation error (``mne_fusion.model.readout_snr``): on the
        benchmark's simulation about 0.5, 3 and 4 at MEG CNR 0.1, 1 and inf.
    loss : "likelihood" | "correlation"
        ``"likelihood"`` (default): Gaussian likelihood of noise-whitened MEG, and of
        the BOLD with one gain per fMRI subject (``1 - r`` of the whole TR x target
        pattern), with sources not z-scored before the fMRI head, so that the
        amplitude of every source is constrained by both modalities.
        ``"correlation"``: the reference model's ``1 - r`` per channel/vertex with
        z-scored sources in the fMRI head, blind to amplitude (see Notes).
    validation : float | list of str | None
        Stories held out for early stopping: a fraction of the stories (at least one
        when there are two or more), their names, or None to monitor the training loss.
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``. Mixed precision (bfloat16) is used on CUDA, where fits are not
        bit-reproducible (its scatter-adds sum in varying order); on the CPU the same
        ``random_state`` gives the same model.
    %(random_state)s
    verbose : bool | str | int | None
        Logging level of every method call that does not set its own ``verbose``
        (None: MNE's level, see :func:`mne.set_log_level`).

    Attributes
    ----------
    model_ : torch.nn.Module
        The fitted network and heads.
    history_ : list of dict
        One record per epoch (losses, validation r per subject, learning rate, time).
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
        Stories used for fitting and for early stopping.
    readout_snr_ : float | None
        The SNR of the ``"map"`` read-out; None when the layer is as trained.
    readout_alpha_ : float | None
        The ridge penalty of the ``"map"`` read-out's sensor read-outs, relative to
        the mean eigenvalue of the hidden features' Gram matrix; None when the layer
        is as trained.
    fmri_evidence_ : array, shape (n_sources,) | None
        Leave-one-subject-out inter-subject correlation of the BOLD of each template
        source on the training stories, clipped at 0 and divided by its maximum;
        None without two fMRI subjects sharing a story.

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

    What pins the sources, measured on ``simulate_naturalistic`` (ico3, MEG and fMRI
    CNR 1, three subjects each, held-out story; ``benchmarks/bench_encoder.py``):
    the reference design (``loss="correlation"``) gives temporal / spatial r of
    0.20 / 0.03 against MNE's 0.39 / 0.06; the likelihood with the fMRI-relaxed prior
    and spatial smoothness, source layer as trained, 0.29 / 0.08; the same with the
    closed-form MAP read-out (the default) 0.59 / 0.64, peak error 47 mm (MNE 89 mm),
    ROC AUC 0.90 (MNE 0.65). Demanding fMRI power through the loss alone
    (``fmri_weight`` of 1 or more) puts activity of the wrong sign at sources that
    MEG barely sees; fMRI is most useful as the prior variance of the sources.
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
        snr="auto",
        loss="likelihood",
        validation=0.1,
        device="auto",
        random_state=None,
        verbose=None,
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
        self.snr = snr
        self.loss = loss
        self.validation = validation
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

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
        return (
            f"<FusionEncoder | {self.n_layers} layers, {n_sources} sources, fitted on "
            f"{len(self.meg_subjects_)} MEG + {len(self.fmri_subjects_)} fMRI "
            "subjects>"
        )

    # ------------------------------------------------------------------ fitting
    @verbose_method
    @fill_doc
    def fit(self, X, y=None, noise_cov=None, *, verbose=None):
        """Fit the encoder to every MEG and fMRI subject of a dataset.

        Parameters
        ----------
        X : FusionDataset
            Stimuli and recordings; its features must be at ``sfreq``.
        y : None
            Ignored; the recordings are in ``X``.
        noise_cov : dict of str -> mne.Covariance | None
            Sensor noise covariance per MEG subject, used to whiten its data (and for
            :meth:`apply_inverse`). Subjects without one are scaled by each channel's
            standard deviation.
        %(verbose)s

        Returns
        -------
        self : FusionEncoder
            The fitted encoder.
        """
        self._check_params()
        _validate_type(X, FusionDataset, "X")
        if not X.stories or not (X.meg_subjects or X.fmri_subjects):
            raise ValueError(
                f"X must hold stories and at least one MEG or fMRI subject, got {X!r}."
            )
        if abs(X.sfreq - self.sfreq) > 1e-6 * self.sfreq:
            raise ValueError(
                f"X is sampled at {X.sfreq} Hz but the encoder's sfreq is "
                f"{self.sfreq} Hz; set sfreq={X.sfreq} or resample the data."
            )
        noise_cov = {} if noise_cov is None else noise_cov
        _validate_type(noise_cov, dict, "noise_cov")
        for name, cov in noise_cov.items():
            if name not in X.meg_subjects:
                raise ValueError(
                    f"noise_cov has subject {name!r} that is not an MEG subject of X "
                    f"({X.meg_subjects})."
                )
            _validate_type(cov, mne.Covariance, f"noise_cov[{name!r}]")
        from .anatomy import template_source_space

        src = template_source_space(self.spacing, self.subjects_dir, verbose=False)
        self.vertices_ = [np.array(s["vertno"]) for s in src]
        adjacency = sparse.triu(mne.spatial_src_adjacency(src, verbose=False), k=1)
        self._edges = np.vstack(adjacency.nonzero()).astype(np.int64)
        n_sources = sum(len(v) for v in self.vertices_)
        self.train_stories_, self.validation_stories_ = self._split(X)
        self.n_features_in_ = len(X.feature_names)
        self.feature_names_in_ = np.array(X.feature_names, dtype=object)
        self.device_ = self._device()
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)

        meg = {
            name: self._meg_setup(X, name, src, noise_cov, f"meg{k}")
            for k, name in enumerate(X.meg_subjects)
        }
        self.source_scale_ = _source_scale(meg.values())
        fmri = {
            name: self._fmri_setup(X, name, f"fmri{k}")
            for k, name in enumerate(X.fmri_subjects)
        }
        self.meg_subjects_, self.fmri_subjects_ = list(meg), list(fmri)
        self._meg, self._fmri = meg, fmri
        self.fmri_evidence_ = self._fmri_evidence(X, n_sources)

        train_items = self._segments(X, self.train_stories_)
        val_items = self._segments(X, self.validation_stories_)
        logger.info(
            f"Fitting on {len(train_items)} segments of {len(self.train_stories_)} "
            f"stories ({len(val_items)} validation segments), {n_sources} sources, "
            f"device {self.device_}"
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model_ = self._build_model(n_sources, X)
            self.model_.to(self.device_)
            config = nets.TrainingConfig(
                batch_size=self.batch_size,
                lr=self.lr,
                weight_decay=self.weight_decay,
                max_epochs=self.max_epochs,
                patience=self.patience,
                warmup_epochs=self.warmup_epochs,
                device=self.device_,
            )
            weights = {
                setup["key"]: torch.as_tensor(setup["weights"], device=self.device_)
                for setup in (*meg.values(), *fmri.values())
                if setup.get("weights") is not None
            }
            with ProgressBar(self.max_epochs, mesg="Fitting FusionEncoder") as bar:

                def report(record):
                    bar.update(record["epoch"])
                    val = ", ".join(
                        f"{k} {v:.3f}" for k, v in record.get("val_r", {}).items()
                    )
                    logger.info(
                        f"Epoch {record['epoch']} ({record['phase']}): train loss "
                        f"{record['train_loss']:.4f}, validation loss "
                        f"{record.get('val_loss', float('nan')):.4f}, r: {val}"
                    )

                objective = self._objective()
                self.history_ = nets.train(
                    self.model_,
                    train_items,
                    val_items,
                    objective,
                    config,
                    np.random.default_rng(seed),
                    channel_weights=weights,
                    callback=report,
                )
        self.model_.eval()
        self.readout_snr_ = self.readout_alpha_ = None
        if self.readout == "map" and meg:
            if self.linear_lags:
                network = self.model_.network
                self._add_lagged_path(network)
                stories = [X.stimulus(s).data for s in self.train_stories_]
                network.lagged.scale.copy_(_lagged_scale(network, stories))
            self._solve_source_readout(X, n_sources)
            if fmri:
                nets.calibrate_fmri_gains(self.model_, train_items, objective, config)
        return self

    def _solve_source_readout(self, X, n_sources):
        """Set the source layer to its closed-form MAP estimate (``readout="map"``)."""
        hidden, data, gains = {}, {}, {}
        for name, setup in self._meg.items():
            runs = X.meg(name).runs
            stories = [s for s in self.train_stories_ if s in runs]
            for story in stories:
                if story not in hidden:
                    feats = np.asarray(X.stimulus(story).data, np.float32)
                    # float32, as computed: hours of stimulus x ~900 columns
                    hidden[story] = self._hidden(feats)[0].cpu().numpy()
            data[name] = {
                s: setup["whitener"] @ _average_epochs(runs[s]) for s in stories
            }
            gains[name] = setup["whitener"] @ setup["gain"]
        prior = np.ones(n_sources)
        if self.fmri_evidence_ is not None:
            prior = 1 - self.fmri_prior + self.fmri_prior * self.fmri_evidence_
        weight, bias, self.readout_snr_, self.readout_alpha_ = nets.map_source_readout(
            hidden, data, gains, prior, self.snr
        )
        layer = self.model_.network.sources
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(weight / self.source_scale_))
            layer.bias.copy_(torch.as_tensor(bias / self.source_scale_))
        logger.info(
            f"Source layer re-solved in closed form from {len(hidden)} stories of "
            f"{len(gains)} MEG subject(s), ridge alpha {self.readout_alpha_:g}, SNR "
            f"{self.readout_snr_:.2f}"
        )

    def _check_params(self):
        for name in ("sfreq", "context", "segment_length", "lr", "input_kernel"):
            _check_positive(getattr(self, name), name)
        for name in ("d_model", "n_heads", "n_layers", "dim_feedforward"):
            _check_positive(getattr(self, name), name, integer=True)
        for name in ("batch_size", "max_epochs", "patience"):
            _check_positive(getattr(self, name), name, integer=True)
        _check_positive(
            self.warmup_epochs, "warmup_epochs", allow_zero=True, integer=True
        )
        for name in (
            "burn_in",
            "weight_decay",
            "meg_weight",
            "fmri_weight",
            "smoothness",
            "spatial_smoothness",
            "source_prior",
            "linear_lags",
        ):
            _check_positive(getattr(self, name), name, allow_zero=True)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be a multiple of n_heads "
                f"({self.n_heads})."
            )
        _validate_type(self.dropout, "numeric", "dropout")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        _validate_type(self.fmri_prior, "numeric", "fmri_prior")
        if not 0 <= self.fmri_prior < 1:
            raise ValueError(f"fmri_prior must be in [0, 1), got {self.fmri_prior}.")
        _validate_type(self.overlap, "numeric", "overlap")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}.")
        if self.burn_in >= self.segment_length:
            raise ValueError(
                f"burn_in ({self.burn_in} s) must be shorter than segment_length "
                f"({self.segment_length} s), or nothing after the first excerpt of a "
                "story is scored."
            )
        _check_option("loss", self.loss, ("likelihood", "correlation"))
        _check_option("readout", self.readout, ("map", "trained"))
        if not (isinstance(self.snr, str) and self.snr == "auto"):
            _validate_type(self.snr, "numeric", "snr", 'a positive number or "auto"')
            _check_positive(self.snr, "snr")
        _validate_type(self.spacing, str, "spacing")
        _validate_type(self.device, str, "device")
        _validate_type(self.validation, (None, "numeric", list, tuple), "validation")

    def _device(self):
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(
                "Invalid value for the 'device' parameter. Allowed values are 'auto', "
                f"'cpu', 'cuda' or 'cuda:N', but got {self.device!r} instead."
            )
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} but CUDA is not available.")
        return self.device

    def _split(self, X):
        stories = X.stories
        if self.validation is None or (
            not isinstance(self.validation, list | tuple) and self.validation == 0
        ):
            return stories, []
        if isinstance(self.validation, list | tuple):
            unknown = [s for s in self.validation if s not in stories]
            if unknown:
                raise ValueError(
                    f"validation names stories {unknown} that are not in X ({stories})."
                )
            val = list(self.validation)
        else:
            if not 0 < self.validation < 1:
                raise ValueError(
                    f"validation must be a fraction in (0, 1), a list of stories or "
                    f"None, got {self.validation}."
                )
            if len(stories) < 2:
                logger.info("One story only: no validation story, monitoring training")
                return stories, []
            n_val = max(1, int(round(self.validation * len(stories))))
            val = stories[-n_val:]
        train = [s for s in stories if s not in val]
        if not train:
            raise ValueError("validation leaves no story to train on.")
        return train, val

    def _meg_setup(self, X, name, src, noise_cov, key):
        """Whitener, lead field on the template and noise-ceiling weights."""
        subject = X.meg(name)
        morph = _template_to_forward(src, subject.forward, self.subjects_dir)
        gain = np.asarray((morph.T @ subject.gain.T).T)  # (n_channels, n_template)
        stories = [s for s in self.train_stories_ if s in subject.runs]
        data = [_average_epochs(subject.runs[s]) for s in stories] or [
            _average_epochs(next(iter(subject.runs.values())))
        ]
        cov = noise_cov.get(name)
        if cov is None:
            std = np.concatenate(data, axis=1).std(axis=1)
            whitener = np.diag(1.0 / np.where(std > 0, std, 1.0))
        else:
            whitener = mne.cov.compute_whitener(
                cov, subject.info, pca=False, verbose=False
            )[0]
        white = whitener @ np.concatenate(data, axis=1)
        ceiling = subject.noise_ceiling
        return {
            "key": key,
            "info": subject.info,
            "gain": gain,
            "whitener": whitener,
            "forward": subject.forward,
            "noise_cov": cov,
            "weights": None if ceiling is None or not ceiling.any() else ceiling,
            "data_var": float(white.var(axis=1).mean()),
            "gain_power": float(np.square(whitener @ gain).sum(axis=1).mean()),
        }

    def _fmri_setup(self, X, name, key):
        """Read-out on the template and per-story BOLD standardisation."""
        subject = X.fmri(name)
        n_sources = sum(len(v) for v in self.vertices_)
        if subject.vertices is not None:
            readout = _vertex_readout(subject.vertices, self.vertices_, name)
        else:
            if subject.mapping.shape[1] != n_sources:
                raise ValueError(
                    f"The mapping of fMRI subject {name!r} has "
                    f"{subject.mapping.shape[1]} columns but the template "
                    f"({self.spacing}) has {n_sources} sources."
                )
            readout = subject.mapping
        ceiling = subject.noise_ceiling
        return {
            "key": key,
            "tr": subject.tr,
            "vertices": subject.vertices,
            "mapping": subject.mapping,
            "readout": readout,
            "weights": None if ceiling is None or not ceiling.any() else ceiling,
        }

    def _segments(self, X, stories):
        """Aligned, whitened, standardised float32 excerpts of ``stories``."""
        if not stories:
            return []
        meg_white, fmri_z = {}, {}
        for name, setup in self._meg.items():
            runs = X.meg(name).runs
            for story in set(stories) & set(runs):
                white = setup["whitener"] @ _average_epochs(runs[story])
                meg_white[name, story] = np.ascontiguousarray(white.T, np.float32)
        for name in self._fmri:
            runs = X.fmri(name).runs
            for story in set(stories) & set(runs):
                fmri_z[name, story] = _standardise(runs[story])
        n_burn = int(round(self.burn_in * self.sfreq))
        items = []
        for seg in X.segments(self.segment_length, self.overlap, stories):
            n_times = seg.stop - seg.start
            item = nets.SegmentArrays(seg.features.astype(np.float32))
            mask = np.ones(n_times, np.float32)
            if seg.start > 0:
                mask[:n_burn] = 0
            for name in seg.meg:
                data = meg_white[name, seg.story][seg.start : seg.stop]
                item.meg[self._meg[name]["key"]] = (data, mask)
            for name, (tr_times, _) in seg.fmri.items():
                setup = self._fmri[name]
                tr_index = np.rint(
                    (tr_times - X.fmri(name).tmin[seg.story]) / setup["tr"]
                ).astype(int)
                bold = fmri_z[name, seg.story][tr_index]
                elapsed = tr_times - seg.start / self.sfreq
                # a volume needs its whole acquisition window inside the excerpt
                scored = (elapsed + setup["tr"] <= n_times / self.sfreq + 1e-6) & (
                    (elapsed >= self.burn_in - 1e-6) | (seg.start == 0)
                )
                pooling = nets.tr_pooling(
                    n_times, self.sfreq, seg.start, tr_times, setup["tr"], HRF_TAPS
                )
                item.fmri[setup["key"]] = (
                    pooling.astype(np.float32),
                    bold,
                    scored.astype(np.float32),
                )
            items.append(item)
        return items

    def _fmri_evidence(self, X, n_sources):
        """Inter-subject correlation of the BOLD per template source, in [0, 1]."""
        groups = {}
        for name, setup in self._fmri.items():
            subject = X.fmri(name)
            for story in self.train_stories_:
                if story not in subject.runs:
                    continue
                bold = _standardise(subject.runs[story])
                # back to the template: the transpose of the read-out
                if setup["readout"] is not None:
                    bold = np.asarray((setup["readout"].T @ bold.T).T)
                grid = (story, round(subject.tmin[story], 3), round(subject.tr, 6))
                groups.setdefault(grid + (len(bold),), []).append(bold)
        total, weight = np.zeros(n_sources), 0
        for runs in groups.values():
            if len(runs) < 2:
                continue
            for k, run in enumerate(runs):
                others = np.mean([r for j, r in enumerate(runs) if j != k], axis=0)
                total += len(run) * prediction_r(run, others, axis=0)
                weight += len(run)
        if not weight:
            logger.info("No two fMRI subjects share a story: uniform source prior")
            return None
        evidence = np.clip(total / weight, 0, None)
        return evidence / evidence.max() if evidence.max() > 0 else evidence

    def _objective(self):
        weights = None
        if self.fmri_evidence_ is not None and self.fmri_prior > 0:
            variance = 1 - self.fmri_prior + self.fmri_prior * self.fmri_evidence_
            weights = 1 / variance
            weights = torch.as_tensor(
                weights / weights.mean(), dtype=torch.float32, device=self.device_
            )
        return nets.Objective(
            kind=self.loss,
            meg_weight=self.meg_weight,
            fmri_weight=self.fmri_weight,
            smoothness=self.smoothness,
            source_prior=self.source_prior,
            prior_weights=weights,
            spatial_smoothness=self.spatial_smoothness,
            laplacian=nets.laplacian(
                torch.as_tensor(self._edges),
                sum(len(v) for v in self.vertices_),
                torch.float32,
                self.device_,
            ),
            n_edges=self._edges.shape[1],
        )

    def _add_lagged_path(self, network):
        network.add_lagged_path(
            int(round(self.linear_lags / _LAG_SPACING)) + 1,
            int(round(self.linear_lags * self.sfreq)) + 1,
        )

    def _build_model(self, n_sources, X=None, lagged=False):
        """Build the network and heads; with ``X``, standardise the features by it.

        ``lagged`` adds the linear path of the read-out (for a fitted model).
        """
        network = nets.FusionNetwork(
            self.n_features_in_,
            n_sources,
            d_model=self.d_model,
            n_heads=self.n_heads,
            n_layers=self.n_layers,
            dim_feedforward=self.dim_feedforward,
            window=max(1, int(round(self.context * self.sfreq))),
            input_kernel=max(1, int(round(self.input_kernel * self.sfreq))),
            dropout=self.dropout,
        )
        if lagged:
            self._add_lagged_path(network)
        if X is not None:
            feats = np.concatenate([X.stimulus(s).data for s in self.train_stories_])
            std = feats.std(axis=0)
            network.feature_mean.copy_(torch.as_tensor(feats.mean(axis=0)))
            network.feature_scale.copy_(torch.as_tensor(np.where(std > 0, std, 1.0)))
        meg_heads = {
            setup["key"]: nets.MEGHead(
                (setup["whitener"] @ setup["gain"] * self.source_scale_).astype(
                    np.float32
                )
            )
            for setup in self._meg.values()
        }
        fmri_heads = {
            setup["key"]: nets.FMRIHead(
                nets.canonical_hrf(setup["tr"], HRF_TAPS).astype(np.float32),
                n_sources,
                None
                if setup["readout"] is None
                else setup["readout"].astype(np.float32),
                zscore=self.loss == "correlation",
            )
            for setup in self._fmri.values()
        }
        return nets.FusionModel(network, meg_heads, fmri_heads)

    # ------------------------------------------------------------------ using
    def _check_fitted(self):
        check_is_fitted(self, "model_")

    def _check_subject(self, subject, kinds=("meg", "fmri")):
        known = [
            *(self.meg_subjects_ if "meg" in kinds else []),
            *(self.fmri_subjects_ if "fmri" in kinds else []),
        ]
        _validate_type(subject, str, "subject")
        if subject not in known:
            raise ValueError(
                f"Unknown subject {subject!r}; the encoder was fitted on: "
                f"{', '.join(map(repr, known)) or 'none of that kind'}."
            )
        return subject

    def _check_features(self, features):
        """Return the features as float32 array (n_times, n_features) and tmin."""
        _validate_type(features, (Features, np.ndarray), "features")
        tmin = 0.0
        if isinstance(features, Features):
            if abs(features.sfreq - self.sfreq) > 1e-6 * self.sfreq:
                raise ValueError(
                    f"features are sampled at {features.sfreq} Hz but the encoder at "
                    f"{self.sfreq} Hz; use features.resample({self.sfreq})."
                )
            tmin, features = features.tmin, features.data
        if features.ndim != 2 or features.shape[1] != self.n_features_in_:
            raise ValueError(
                f"features must have shape (n_times, {self.n_features_in_}) (the "
                f"number of features the encoder was fitted on), got {features.shape}."
            )
        if features.shape[0] < 2:
            raise ValueError(
                f"features must hold at least 2 samples, got {features.shape[0]}."
            )
        return np.asarray(features, np.float32), float(tmin)

    @torch.no_grad()
    def _hidden(self, features):
        x = torch.as_tensor(features, device=self.device_)[None]
        self.model_.eval()
        return self.model_.network.encode(x)

    def _sources(self, hidden):
        """Source activity (A m), array (n_sources, n_times)."""
        with torch.no_grad():
            sources = self.model_.network.sources(hidden)[0]
        return sources.double().cpu().numpy().T * self.source_scale_

    def _meg_prediction(self, hidden, subject):
        """Predicted sensor data (T, T/m), array (n_channels, n_times)."""
        operator = self._meg[subject]["gain"] * self.source_scale_
        operator = torch.as_tensor(operator, dtype=hidden.dtype, device=hidden.device)
        with torch.no_grad():
            pred = self.model_.network.sources.project(hidden, operator)[0]
        return pred.double().cpu().numpy().T

    def _bold_prediction(self, hidden, subject, tr_times):
        """Predicted BOLD (standardised units) at ``tr_times``, (n_trs, n_targets)."""
        setup = self._fmri[subject]
        n_times = hidden.shape[1]
        pooling = nets.tr_pooling(
            n_times, self.sfreq, 0, tr_times, setup["tr"], HRF_TAPS
        )
        pooling = torch.as_tensor(pooling, dtype=hidden.dtype, device=hidden.device)
        with torch.no_grad():
            sources = self.model_.network.sources(hidden)
            bold = self.model_.fmri_heads[setup["key"]](sources, pooling[None])[0]
        return bold.double().cpu().numpy()

    @verbose_method
    @fill_doc
    def predict(self, features, subject, *, verbose=None):
        """Predict a subject's recording of a stimulus.

        Parameters
        ----------
        %(features_input)s
        %(subject_name)s
        %(verbose)s

        Returns
        -------
        prediction : mne.io.RawArray | mne.SourceEstimate | array
            MEG subject: a Raw with the subject's Info (channels used in the fit), in
            T (T/m for gradiometers). fMRI subject: the BOLD at the stimulus times
            ``k * TR`` (k = 0, 1, ... within the features) in units of the run-wise
            standardised BOLD, as a SourceEstimate (``tstep = TR``) when the subject
            was given on template vertices, else an array (n_trs, n_targets).
        """
        self._check_fitted()
        self._check_subject(subject)
        features, tmin = self._check_features(features)
        hidden = self._hidden(features)
        if subject in self._meg:
            info = self._meg[subject]["info"].copy()
            data = self._meg_prediction(hidden, subject)
            first_samp = int(round(tmin * self.sfreq))
            return RawArray(data, info, first_samp=first_samp, verbose=False)
        setup = self._fmri[subject]
        n_trs = int(np.floor(len(features) / self.sfreq / setup["tr"] + 1e-9))
        tr_times = np.arange(max(n_trs, 1)) * setup["tr"]
        bold = self._bold_prediction(hidden, subject, tr_times)
        if setup["vertices"] is None:
            return bold
        return mne.SourceEstimate(
            bold.T, setup["vertices"], tmin=tmin, tstep=setup["tr"], subject="fsaverage"
        )

    @verbose_method
    @fill_doc
    def apply_inverse(
        self,
        features,
        inst=None,
        subject=None,
        *,
        forward=None,
        noise_cov=None,
        method="MNE",
        snr=None,
        depth=0.8,
        fmri_weighted=True,
        verbose=None,
    ):
        """Estimate cortical sources from a stimulus, optionally with a recording.

        Parameters
        ----------
        %(features_input)s
        inst : None | mne.io.Raw | mne.Epochs | mne.Evoked
            None (default) gives the stimulus-driven estimate. A recording of an MEG
            subject the encoder was fitted on, aligned to ``features`` (sample 0 of a
            Raw, time 0 of Epochs/Evoked = feature sample 0), gives the data-informed
            estimate ``s_enc + K (y - G s_enc)`` with ``K`` a minimum-norm operator
            (with the encoder's fMRI-relaxed source prior, see ``fmri_weighted``).
        subject : str | None
            The MEG subject of ``inst``.
        forward : mne.Forward | None
            The subject's forward for ``K``; None uses the one it was fitted with
            (not kept by :meth:`save`).
        noise_cov : mne.Covariance | None
            Noise covariance for ``K``; None uses the one given to :meth:`fit`, else
            estimates it from the residual ``y - G s_enc``.
        method : "MNE" | "dSPM" | "sLORETA" | "eLORETA"
            Inverse method of ``K``; only ``"MNE"`` gives estimates in A m that add
            to the encoder's.
        snr : float | None
            Assumed SNR of ``K``; ``lambda2 = 1 / snr ** 2``. None uses MNE's
            conventions: 3 for an Evoked (averaged data), 1 for Raw and Epochs
            (single trials).
        depth : float | None
            Depth weighting of ``K`` (None for none).
        fmri_weighted : bool
            Whether ``K`` uses the source prior of the read-out, variance
            ``1 - fmri_prior + fmri_prior * fmri_evidence_``
            (:func:`mne_fusion.baselines.fmri_weighted_mne`), so that the correction
            keeps the encoder's spatial prior; False, or an encoder without
            ``fmri_evidence_``, gives plain minimum norm. Not with ``"eLORETA"``.
        %(verbose)s

        Returns
        -------
        stc : mne.SourceEstimate | list of mne.SourceEstimate
            Source activity (A m) on the template (subject ``"fsaverage"``); one per
            epoch for Epochs.

        Notes
        -----
        The correction is :func:`mne_fusion.baselines.fmri_weighted_mne` (or
        :func:`mne_fusion.baselines.minimum_norm`; both are MNE's
        ``make_inverse_operator`` and ``apply_inverse_raw``, ``apply_inverse_epochs``
        or ``apply_inverse``) applied to the residual, which by linearity equals
        ``K (y - G s_enc)``. With an encoder that predicts nothing it reduces to that
        estimate from ``inst``.
        """
        self._check_fitted()
        features, tmin = self._check_features(features)
        hidden = self._hidden(features)
        sources = self._sources(hidden)
        if inst is None:
            return self._template_stc(sources, tmin)
        _validate_type(inst, (BaseRaw, mne.BaseEpochs, mne.Evoked), "inst")
        _validate_type(fmri_weighted, bool, "fmri_weighted")
        if subject is None:
            raise ValueError("subject is required when inst is given.")
        self._check_subject(subject, kinds=("meg",))
        setup = self._meg[subject]
        forward = setup["forward"] if forward is None else forward
        if forward is None:
            raise ValueError(
                f"forward is required: the forward of {subject!r} is not saved with "
                "the encoder."
            )
        _validate_type(forward, mne.Forward, "forward")
        residual = self._residual(inst, hidden, subject, forward, len(features))
        if snr is None:
            snr = 3.0 if isinstance(inst, mne.Evoked) else 1.0
        if noise_cov is None:
            noise_cov = setup["noise_cov"]
        if noise_cov is None:
            if isinstance(residual, mne.Evoked):
                raise ValueError("noise_cov is required for an Evoked inst.")
            logger.info("Estimating the noise covariance from the residual")
            noise_cov = (
                mne.compute_raw_covariance(residual, verbose=False)
                if isinstance(residual, BaseRaw)
                else mne.compute_covariance(residual, verbose=False)
            )
        from .anatomy import template_source_space
        from .baselines import fmri_weighted_mne, minimum_norm

        src = template_source_space(self.spacing, self.subjects_dir, verbose=False)
        kwargs = dict(depth=depth, src=src, subjects_dir=self.subjects_dir)
        if fmri_weighted and self.fmri_evidence_ is not None and self.fmri_prior > 0:
            # the evidence is per template source; K works on the forward's sources
            evidence = _template_to_forward(src, forward, self.subjects_dir)
            evidence = np.clip(evidence @ self.fmri_evidence_, 0, None)
            correction = fmri_weighted_mne(
                residual,
                forward,
                noise_cov,
                evidence,
                self.fmri_prior,
                method,
                snr,
                verbose=False,
                **kwargs,
            )
        else:
            correction = minimum_norm(
                residual, forward, noise_cov, method, snr, verbose=False, **kwargs
            )
        if isinstance(correction, list):
            return [self._template_stc(sources + c.data, tmin) for c in correction]
        return self._template_stc(sources + correction.data, tmin)

    def _template_stc(self, data, tmin):
        return mne.SourceEstimate(
            data, self.vertices_, tmin=tmin, tstep=1.0 / self.sfreq, subject="fsaverage"
        )

    def _residual(self, inst, hidden, subject, forward, n_times):
        """``inst`` minus the encoder's prediction, same type, the fit's channels."""
        setup = self._meg[subject]
        names = setup["info"]["ch_names"]
        missing = [n for n in names if n not in inst.ch_names]
        if missing:
            raise ValueError(
                f"inst lacks {len(missing)} channel(s) of subject {subject!r}: "
                f"{missing[:10]}."
            )
        not_in_forward = [n for n in names if n not in forward["sol"]["row_names"]]
        if not_in_forward:
            raise ValueError(
                f"inst has MEG channel(s) that are not in the subject's forward: "
                f"{not_in_forward[:10]}; use the forward the encoder was fitted with."
            )
        if abs(inst.info["sfreq"] - self.sfreq) > 1e-6 * self.sfreq:
            raise ValueError(
                f"inst is sampled at {inst.info['sfreq']} Hz but the encoder at "
                f"{self.sfreq} Hz; resample it."
            )
        picks = [inst.ch_names.index(n) for n in names]
        info = mne.pick_info(inst.info, picks)
        with info._unlock():
            info["bads"] = []
        if isinstance(inst, BaseRaw):
            data = inst.get_data(picks=picks, stop=min(inst.n_times, n_times))
        else:
            onset = int(np.argmin(np.abs(inst.times)))
            if abs(inst.times[onset]) * self.sfreq >= 0.5:
                raise ValueError("inst (Epochs or Evoked) must contain time 0.")
            data = inst.get_data(picks=picks)[..., onset : onset + n_times]
        if data.shape[-1] != n_times:
            raise ValueError(
                f"inst has {data.shape[-1]} samples from the stimulus onset but the "
                f"features have {n_times}; they must be aligned."
            )
        residual = data - self._meg_prediction(hidden, subject)
        if isinstance(inst, BaseRaw):
            return RawArray(residual, info, verbose=False)
        if isinstance(inst, mne.Evoked):
            return mne.EvokedArray(
                residual, info, tmin=0.0, nave=inst.nave, verbose=False
            )
        return mne.EpochsArray(residual, info, tmin=0.0, verbose=False)

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
            over all of the subject's stories in ``X`` (each centred on its mean).
        """
        self._check_fitted()
        _validate_type(X, FusionDataset, "X")
        if abs(X.sfreq - self.sfreq) > 1e-6 * self.sfreq:
            raise ValueError(
                f"X is sampled at {X.sfreq} Hz but the encoder at {self.sfreq} Hz."
            )
        for name in (*X.meg_subjects, *X.fmri_subjects):
            self._check_subject(name)
        hidden = {
            s: self._hidden(self._check_features(X.stimulus(s))[0]) for s in X.stories
        }
        scores = {}
        for name in X.meg_subjects:
            subject = X.meg(name)
            fitted = self._meg[name]["info"]["ch_names"]
            missing = [c for c in subject.info["ch_names"] if c not in fitted]
            if missing:
                raise ValueError(
                    f"X has channel(s) of {name!r} that the encoder was not fitted on:"
                    f" {missing[:10]}."
                )
            rows = [fitted.index(c) for c in subject.info["ch_names"]]
            true, pred = [], []
            for story, run in subject.runs.items():
                true.append(_center(_average_epochs(run), axis=1))
                pred.append(_center(self._meg_prediction(hidden[story], name)[rows], 1))
            scores[name] = prediction_r(np.hstack(true), np.hstack(pred), axis=1)
        for name in X.fmri_subjects:
            subject = X.fmri(name)
            true, pred = [], []
            for story, run in subject.runs.items():
                bold = self._bold_prediction(
                    hidden[story], name, subject.tr_times(story)
                )
                if bold.shape[1] != run.shape[1]:
                    raise ValueError(
                        f"fMRI subject {name!r} has {run.shape[1]} targets in X but "
                        f"{bold.shape[1]} in the fit."
                    )
                true.append(_center(run, axis=0))
                pred.append(_center(bold, axis=0))
            scores[name] = prediction_r(np.vstack(true), np.vstack(pred), axis=0)
        return scores

    # ------------------------------------------------------------------ I/O
    @verbose_method
    @fill_doc
    def save(self, fname, *, overwrite=False, verbose=None):
        """Save the fitted encoder (parameters, weights and what it predicts with).

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
        The file holds tensors, numbers, strings and the subjects' Info and noise
        covariances as FIF bytes; it is read with ``torch.load(weights_only=True)``,
        so loading never runs pickled code. Forwards are not kept.
        """
        self._check_fitted()
        write_encoder(self, fname, overwrite)


# ---------------------------------------------------------------------- helpers
def _average_epochs(run):
    return run.mean(axis=0) if run.ndim == 3 else run


def _center(data, axis):
    return data - data.mean(axis=axis, keepdims=True)


def _standardise(bold):
    """Centre each target over TRs and divide the run by one std (float32).

    One scale for all targets keeps their relative amplitudes, which tell where the
    power is.
    """
    bold = bold - bold.mean(axis=0)
    std = bold.std()
    return (bold / (std if std > 0 else 1.0)).astype(np.float32)


@torch.no_grad()
def _lagged_scale(network, stories):
    """Return the standard deviation of each lagged feature on the training stories.

    ``network.lagged`` must still have unit scale. Accumulated story by story: the
    lagged features of hours of stimulus would not fit in memory at once.
    """
    device = network.feature_mean.device
    total, total_sq, n_times = 0.0, 0.0, 0
    for data in stories:
        x = torch.as_tensor(np.asarray(data, np.float32), device=device)[None]
        lagged = network.lagged((x - network.feature_mean) / network.feature_scale)
        lagged = lagged[0].double()
        total = total + lagged.sum(0)
        total_sq = total_sq + lagged.square().sum(0)
        n_times += len(lagged)
    mean = total / n_times
    std = (total_sq / n_times - mean.square()).clamp(min=0).sqrt()
    return torch.where(std > 1e-6, std, torch.ones_like(std)).float()


def _source_scale(setups):
    """Return A m per unit source: unit-variance sources explain the whitened data.

    With all template sources independent at unit variance, the whitened sensor
    variance would equal that of the data; real activity is sparse, so active
    sources come out at a few units.
    """
    setups = list(setups)
    if not setups:
        return 1.0
    data_var = np.mean([s["data_var"] for s in setups])
    gain_power = np.mean([s["gain_power"] for s in setups])
    return float(np.sqrt(data_var / gain_power))


def _same_vertices(a, b):
    return len(a) == len(b) and all(
        np.array_equal(x, y) for x, y in zip(a, b, strict=True)
    )


def _template_to_forward(src, forward, subjects_dir):
    """Sparse (n_forward_sources, n_template_sources) morph, identity if the same."""
    fwd_src = forward["src"]
    if _same_vertices([s["vertno"] for s in src], [s["vertno"] for s in fwd_src]):
        return sparse.eye_array(sum(len(s["vertno"]) for s in src), format="csr")
    from .anatomy import morph_matrix

    return morph_matrix(src, fwd_src, subjects_dir=subjects_dir)


def _vertex_readout(vertices, template, name):
    """Return the selection of ``vertices`` from the template sources (None: all)."""
    if _same_vertices(vertices, template):
        return None
    offsets = np.cumsum([0, len(template[0])])
    rows = []
    for hemi, (verts, tverts) in enumerate(zip(vertices, template, strict=True)):
        index = np.searchsorted(tverts, verts)
        bad = (index >= len(tverts)) | (
            tverts[np.minimum(index, len(tverts) - 1)] != verts
        )
        if bad.any():
            raise ValueError(
                f"fMRI subject {name!r} has vertices that are not template sources "
                f"(hemisphere {hemi}: {verts[bad][:10]}); use a mapping instead."
            )
        rows.append(index + offsets[hemi])
    cols = np.concatenate(rows)
    n_sources = sum(len(v) for v in template)
    return sparse.csr_array(
        (np.ones(len(cols)), (np.arange(len(cols)), cols)), shape=(len(cols), n_sources)
    )
