import numpy as np
import pytest
import torch
from nilearn.glm.first_level import glover_hrf
from numpy.testing import assert_allclose
from scipy.sparse import random as sparse_random
from scipy.stats import pearsonr

from mne_fusion.encoder._network import canonical_hrf
from mne_fusion.model import (
    FMRIHead,
    FusionModel,
    FusionNetwork,
    InputLayer,
    LaggedFeatures,
    LocalCausalAttention,
    MEGHead,
    NetworkConfig,
    Objective,
    TrainingConfig,
    batch_loss,
    correlation_loss,
    gaussian_loss,
    laplacian,
    pattern_correlation_loss,
    pearson_r,
    raised_cosines,
    tr_pooling,
    train,
)
from mne_fusion.model.batching import SegmentArrays, collate
from mne_fusion.model.training import score_segments


def _full_attention(layer, x):
    """Straightforward masked attention over the whole (T, T) score matrix."""
    n_batch, n_times, d_model = x.shape
    n_heads, window = layer.n_heads, layer.window
    q, k, v = layer.qkv(x).detach().split(d_model, dim=2)
    q, k, v = (
        z.view(n_batch, n_times, n_heads, -1).transpose(1, 2).numpy() for z in (q, k, v)
    )
    bias = layer.lag_bias.detach().numpy()
    lag = np.arange(n_times)[:, None] - np.arange(n_times)[None, :]
    allowed = (lag >= 0) & (lag < window)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    scores = scores + bias[:, np.clip(lag, 0, window - 1)][None]
    scores = np.where(allowed, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    y = (weights @ v).transpose(0, 2, 1, 3).reshape(n_batch, n_times, d_model)
    return layer.out(torch.from_numpy(y)).detach().numpy()


@pytest.mark.parametrize(
    ("n_times", "window", "block_size"),
    [(50, 7, 16), (64, 64, 16), (33, 100, 8), (40, 1, 7), (97, 12, 128)],
)
def test_local_attention_equals_full_masked(n_times, window, block_size):
    torch.manual_seed(0)
    layer = LocalCausalAttention(12, 3, window, block_size=block_size).double()
    with torch.no_grad():
        layer.lag_bias.normal_()
    x = torch.randn(2, n_times, 12, dtype=torch.float64)
    got = layer(x).detach().numpy()
    assert_allclose(got, _full_attention(layer, x), rtol=0, atol=1e-10)


def test_local_attention_is_causal_and_windowed():
    torch.manual_seed(0)
    layer = LocalCausalAttention(8, 2, window=5, block_size=4).double()
    x = torch.randn(1, 30, 8, dtype=torch.float64)
    y = layer(x)
    x2 = x.clone()
    x2[:, 20] += 1.0
    y2 = layer(x2)
    changed = (y2 - y).abs().amax(-1)[0] > 0
    assert_allclose(np.flatnonzero(changed.numpy()), np.arange(20, 25))


def test_attention_rejects_bad_heads():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        LocalCausalAttention(10, 3, 5)


def _network(n_features=3, n_sources=11, **kwargs):
    kw = dict(
        d_model=8,
        n_heads=2,
        n_layers=2,
        dim_feedforward=16,
        window=6,
        input_kernel=3,
        dropout=0.0,
    )
    kw.update(kwargs)
    return FusionNetwork(NetworkConfig(n_features, n_sources, **kw))


def test_source_layer_project_and_meg_head(rng):
    torch.manual_seed(0)
    net = _network().double()
    x = torch.from_numpy(rng.standard_normal((2, 20, 3)))
    operator = rng.standard_normal((5, 11))
    head = MEGHead(operator)
    hidden = net.encode(x)
    sources = net(x).detach().numpy()
    expected = np.einsum("btv,cv->btc", sources, operator)
    assert_allclose(head(torch.from_numpy(sources)).numpy(), expected, atol=1e-12)
    fast = net.sources.project(hidden, head.operator).detach().numpy()
    assert_allclose(fast, expected, atol=1e-10)
    # the feature standardisation buffers are applied
    net.feature_mean.fill_(1.0)
    net.feature_scale.fill_(2.0)
    assert_allclose(net(2 * x + 1).detach().numpy(), sources, atol=1e-12)


def test_input_layer_is_causal_convolution(rng):
    layer = InputLayer(3, 4, kernel_size=5).double()
    x = rng.standard_normal((2, 30, 3))
    got = layer(torch.from_numpy(x)).detach().numpy()
    weight = layer.weight.detach().numpy()  # (out, in, taps); tap 4 = current sample
    padded = np.concatenate([np.zeros((2, 4, 3)), x], axis=1)
    expected = np.stack(
        [np.einsum("bki,oik->bo", padded[:, t : t + 5], weight) for t in range(30)],
        axis=1,
    )
    assert_allclose(got, expected + layer.bias.detach().numpy(), atol=1e-12)


def test_raised_cosines_tile_the_lags():
    basis = raised_cosines(5, 21).numpy()
    assert basis.shape == (5, 21)
    assert_allclose(basis.sum(axis=0), 1.0, atol=1e-12)  # a partition of unity
    assert_allclose(basis[:, 0], [1, 0, 0, 0, 0], atol=1e-12)
    assert_allclose(basis[2, 10], 1.0)  # centres evenly spaced: 0, 5, ..., 20
    assert_allclose(raised_cosines(1, 4).numpy(), np.ones((1, 4)))
    assert_allclose(raised_cosines(2, 1).numpy(), np.ones((2, 1)))  # was NaN


def test_lagged_features_match_numpy(rng):
    lagged = LaggedFeatures(3, n_kernels=4, n_taps=7).double()
    lagged.scale.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, 12)))
    x = rng.standard_normal((2, 40, 3))
    got = lagged(torch.from_numpy(x)).numpy()
    basis = raised_cosines(4, 7).numpy()  # (kernel, lag)
    expected = np.zeros((2, 40, 3, 4))
    for lag in range(7):
        shifted = np.zeros_like(x)
        shifted[:, lag:] = x[:, : 40 - lag]  # causal: x[t - lag]
        expected += shifted[..., None] * basis[:, lag]
    expected = expected.reshape(2, 40, 12) / lagged.scale.numpy()
    assert lagged.out_features == 12
    assert_allclose(got, expected, atol=1e-12)


def test_lagged_path_widens_the_source_layer(rng):
    torch.manual_seed(0)
    net = _network().double()
    x = torch.from_numpy(rng.standard_normal((2, 20, 3)))
    before = net(x).detach().numpy()
    net.add_lagged_path(n_kernels=2, n_taps=5)
    assert net.sources.weight.dtype == net.lagged.kernels.dtype == torch.float64
    assert net.encode(x).shape == (2, 20, 8 + 6)
    assert net.sources.in_features == 14
    # zero weights on the new inputs: the sources are unchanged
    assert_allclose(net(x).detach().numpy(), before, atol=1e-12)
    # and the lagged columns are those of the standardised features
    net.feature_mean.fill_(1.0)
    net.feature_scale.fill_(2.0)
    expected = net.lagged((x - 1.0) / 2.0).detach().numpy()
    assert_allclose(net.encode(x)[..., 8:].detach().numpy(), expected, atol=1e-12)


def test_canonical_hrf():
    kernel = canonical_hrf(2.0, 10)
    fine = glover_hrf(2.0, oversampling=1000, time_length=20.0)
    expected = fine.reshape(10, -1).mean(1)
    assert_allclose(kernel, expected / expected.max(), atol=0.01)
    assert kernel.argmax() in (2, 3)  # peak 4-8 s


def test_tr_pooling():
    sfreq, tr, n_taps = 10.0, 0.5, 3
    tr_times = np.array([1.0, 1.5, 2.0])
    pooling = tr_pooling(25, sfreq, start=4, tr_times=tr_times, tr=tr, n_taps=n_taps)
    times = (4 + np.arange(25)) / sfreq
    assert pooling.shape == (5, 25)
    for j in range(5):
        lo = tr_times[0] + (j - n_taps + 1) * tr
        inside = (times >= lo - 1e-9) & (times < lo + tr - 1e-9)
        assert_allclose(pooling[j], inside / (tr * sfreq))
    # bins span 0.0-2.5 s: the last TR's acquisition window ends at 2.5 s
    assert_allclose(pooling.sum(0)[times >= 2.5], 0.0)
    assert_allclose(pooling.sum(0)[times < 2.5], 1 / (tr * sfreq))


def test_fmri_head_matches_numpy(rng):
    n_batch, n_times, n_sources, n_taps = 2, 40, 6, 4
    hrf = rng.random(n_taps) + 0.1
    target_map = sparse_random(3, n_sources, density=0.5, random_state=0, format="coo")
    sources = rng.standard_normal((n_batch, n_times, n_sources))
    pooling = np.stack(
        [
            tr_pooling(n_times, 10.0, s, np.array([1.5, 2.0, 2.5]), 0.5, n_taps)
            for s in (0, 3)
        ]
    )
    for zscore in (False, True):
        head = FMRIHead(hrf, n_sources, target_map, zscore=zscore).double()
        with torch.no_grad():
            head.kernel.mul_(torch.from_numpy(rng.random((n_sources, 1)) + 0.5))
            head.kernel[2, 1] += 0.3
            head.log_gain.fill_(0.7)
        got = head(torch.from_numpy(sources), torch.from_numpy(pooling)).detach()
        s = sources
        if zscore:
            s = (s - s.mean(1, keepdims=True)) / (
                s.std(1, ddof=1, keepdims=True) + 1e-6
            )
        power = pooling @ s**2  # (batch, n_bins, n_sources)
        kernel = head.kernel.detach().numpy()
        kernel = kernel / np.linalg.norm(kernel, axis=1, keepdims=True)
        kernel *= np.linalg.norm(hrf)
        n_trs = power.shape[1] - n_taps + 1
        bold = np.zeros((n_batch, n_trs, n_sources))
        for k in range(n_trs):
            for m in range(n_taps):
                bold[:, k] += kernel[:, m] * power[:, k + n_taps - 1 - m]
        expected = np.exp(0.7) * bold @ target_map.toarray().T
        assert_allclose(got.numpy(), expected, rtol=1e-10)
    identity = FMRIHead(hrf, n_sources).double()
    out = identity(torch.from_numpy(sources), torch.from_numpy(pooling))
    assert out.shape == (n_batch, 3, n_sources)


def test_losses_match_scipy(rng):
    pred = rng.standard_normal((3, 50, 4))
    target = pred * 0.3 + rng.standard_normal((3, 50, 4))
    mask = np.ones((3, 50))
    mask[1, :20] = 0
    r = pearson_r(*(torch.from_numpy(a) for a in (pred, target, mask))).numpy()
    # each segment is centred on its own masked mean, then samples are pooled
    keep = mask.astype(bool)
    p = np.concatenate([pred[b][keep[b]] - pred[b][keep[b]].mean(0) for b in range(3)])
    t = np.concatenate(
        [target[b][keep[b]] - target[b][keep[b]].mean(0) for b in range(3)]
    )
    expected = [pearsonr(p[:, c], t[:, c])[0] for c in range(4)]
    assert_allclose(r, expected, rtol=1e-10)
    # with one segment and no mask: plain scipy pearsonr
    r1 = pearson_r(torch.from_numpy(pred[:1]), torch.from_numpy(target[:1])).numpy()
    assert_allclose(r1, [pearsonr(pred[0, :, c], target[0, :, c])[0] for c in range(4)])
    weights = np.array([1.0, 0.0, 2.0, 1.0])
    loss = correlation_loss(
        *(torch.from_numpy(a) for a in (pred, target, mask, weights))
    )
    assert_allclose(float(loss), np.sum(weights * (1 - np.array(expected))) / 4)
    mse = gaussian_loss(*(torch.from_numpy(a) for a in (pred, target, mask, weights)))
    assert_allclose(float(mse), np.sum(weights * ((p - t) ** 2).mean(0)) / 4)
    # constant prediction: r = 0, not NaN
    flat = pearson_r(torch.zeros(1, 10, 2), torch.randn(1, 10, 2))
    assert_allclose(flat.numpy(), 0.0)


def test_pattern_correlation_loss(rng):
    pred = rng.standard_normal((2, 30, 3))
    target = pred * [0.5, 1.0, 2.0] + rng.standard_normal((2, 30, 3))
    mask = np.ones((2, 30))
    mask[0, :10] = 0
    weights = np.array([1.0, 2.0, 0.5])
    args = [torch.from_numpy(a) for a in (pred, target, mask, weights)]
    loss = float(pattern_correlation_loss(*args))
    keep = mask.astype(bool)
    p = np.concatenate([pred[b][keep[b]] - pred[b][keep[b]].mean(0) for b in range(2)])
    t = np.concatenate(
        [target[b][keep[b]] - target[b][keep[b]].mean(0) for b in range(2)]
    )
    p, t = p * np.sqrt(weights), t * np.sqrt(weights)
    assert_allclose(loss, 1 - pearsonr(p.ravel(), t.ravel())[0], rtol=1e-10)
    # one gain for all channels: a global scale changes nothing, a channel's does
    args[0] = args[0] * 3.0
    assert_allclose(float(pattern_correlation_loss(*args)), loss, rtol=1e-10)
    args[0][..., 0] *= 10.0
    assert float(pattern_correlation_loss(*args)) > loss + 0.01


def test_penalties_from_hidden_states(rng):
    """Penalties come from the hidden states' Gram matrix; check them on sources."""
    torch.manual_seed(0)
    net = _network(n_sources=6).double()
    edges = np.array([[0, 0, 1, 3, 4], [1, 2, 2, 4, 5]])
    weights = rng.random(6) + 0.5
    lap = laplacian(torch.from_numpy(edges), 6, torch.float64)
    x = rng.standard_normal((2, 30, 3))
    with torch.no_grad():
        net.sources.bias.normal_()
    s = net(torch.from_numpy(x)).detach().numpy()
    model = FusionModel(net, {}, {})
    batch = collate([SegmentArrays(f) for f in x], "cpu")
    objective = Objective(
        smoothness=1.0,
        source_prior=1.0,
        prior_weights=torch.from_numpy(weights),
        spatial_smoothness=1.0,
        laplacian=lap,
        n_edges=edges.shape[1],
    )
    total, terms = batch_loss(model, batch, objective)
    expected = {
        "smoothness": np.mean(np.diff(s, axis=1) ** 2),
        "prior": np.mean(s**2 * weights),
        "spatial": np.mean((s[..., edges[0]] - s[..., edges[1]]) ** 2),
    }
    for key, value in expected.items():
        assert_allclose(terms[key], value, rtol=1e-9, err_msg=key)
    assert_allclose(float(total.detach()), sum(expected.values()), rtol=1e-9)
    # the Laplacian's quadratic form is the sum of squared differences over edges
    v = rng.standard_normal(6)
    quad = v @ torch.sparse.mm(lap, torch.from_numpy(v)[:, None]).numpy()[:, 0]
    assert_allclose(quad, np.sum((v[edges[0]] - v[edges[1]]) ** 2))


def _toy_items(rng, n_items=6, n_times=40):
    """Segments whose MEG is a fixed mixture of a delayed feature."""
    operator = rng.standard_normal((4, 11)) * 0.3
    items = []
    for _ in range(n_items):
        feats = rng.standard_normal((n_times, 3)).astype(np.float32)
        drive = np.zeros((n_times, 11))
        drive[2:, :3] = feats[:-2, :1]
        meg = (drive @ operator.T + 0.1 * rng.standard_normal((n_times, 4))).astype(
            np.float32
        )
        pooling = tr_pooling(n_times, 10.0, 0, np.array([2.0, 3.0]), 1.0, 2)
        bold = rng.standard_normal((2, 11)).astype(np.float32)
        items.append(
            SegmentArrays(
                feats,
                meg={"m0": (meg, np.ones(n_times, np.float32))},
                fmri={"f0": (pooling.astype(np.float32), bold, np.ones(2, np.float32))},
            )
        )
    return items, operator


def _toy_model(operator, seed=0):
    torch.manual_seed(seed)
    network = _network()
    meg = {"m0": MEGHead(operator.astype(np.float32))}
    fmri = {"f0": FMRIHead(canonical_hrf(1.0, 2).astype(np.float32), 11)}
    return FusionModel(network, meg, fmri)


def test_no_warm_up_without_meg(rng):
    """The MEG warm-up of fMRI-only data trained on the penalties alone, then cut the
    learning rate to 0.2 x."""
    items, operator = _toy_items(rng, n_items=8)
    fmri_only = [SegmentArrays(item.features, meg={}, fmri=item.fmri) for item in items]
    config = TrainingConfig(batch_size=4, lr=1e-2, max_epochs=3, warmup_epochs=2)
    history = train(
        _toy_model(operator),
        fmri_only[:6],
        fmri_only[6:],
        Objective(fmri_weight=1.0),
        config,
        np.random.default_rng(0),
    )
    assert [h["phase"] for h in history] == ["joint"] * 3
    assert [h["lr"] for h in history] == pytest.approx([1e-2] * 3)


@pytest.mark.parametrize("kind", ["likelihood", "correlation"])
def test_training_fits_and_is_deterministic(rng, kind):
    items, operator = _toy_items(rng, n_items=20)
    config = TrainingConfig(batch_size=4, lr=1e-2, max_epochs=12, warmup_epochs=6)
    objective = Objective(kind=kind, fmri_weight=0.1, source_prior=1e-3)
    records = []
    model = _toy_model(operator)
    history = train(
        model,
        items[:16],
        items[16:],
        objective,
        config,
        np.random.default_rng(0),
        callback=records.append,
    )
    assert records == history
    assert [h["phase"] for h in history[5:7]] == ["meg", "joint"]
    assert history[-1]["train_meg"] < 0.7 * history[0]["train_meg"]
    assert history[5]["lr"] == pytest.approx(1e-2)
    assert history[6]["lr"] == pytest.approx(2e-3)
    assert history[-1]["val_r"]["m0"] > 0.5
    # the fMRI gain is calibrated on the training data: least-squares factor 1
    _, _, gain = score_segments(model, items[:16], objective, 4, "cpu")
    assert_allclose(gain["f0"], 1.0, rtol=1e-4)
    model2 = _toy_model(operator)
    train(model2, items[:16], items[16:], objective, config, np.random.default_rng(0))
    for (name, a), b in zip(
        model.state_dict().items(), model2.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_network_config_rebuilds_the_network_with_its_lagged_path():
    torch.manual_seed(0)
    network = _network()
    assert network.config.lag_kernels == 0
    network.add_lagged_path(4, 7)
    assert network.config == NetworkConfig(
        3, 11, 8, 2, 2, 16, 6, 3, 0.0, lag_kernels=4, lag_taps=7
    )
    with torch.no_grad():
        network.sources.weight.normal_()
        network.lagged.scale.uniform_(0.5, 2.0)
    rebuilt = FusionNetwork(NetworkConfig(**network.config.to_dict()))
    assert rebuilt.config == network.config
    rebuilt.load_state_dict(network.state_dict())
    x = torch.randn(1, 20, 3)
    network.eval(), rebuilt.eval()
    assert_allclose(rebuilt(x).detach().numpy(), network(x).detach().numpy())
    assert rebuilt.sources.in_features == 8 + 3 * 4


@pytest.mark.parametrize(
    "loss", [correlation_loss, pattern_correlation_loss, gaussian_loss]
)
def test_losses_of_unscored_segments_have_finite_gradients(loss):
    """A batch without a scored sample (mask all 0) gives a finite loss and gradient."""
    pred = torch.randn(2, 6, 3, requires_grad=True)
    target = torch.randn(2, 6, 3)
    value = loss(pred, target, torch.zeros(2, 6))
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(pred.grad).all()


def test_diverging_training_stops_with_a_clear_error():
    torch.manual_seed(0)
    model = FusionModel(_network(), {"m0": MEGHead(np.ones((4, 11), np.float32))}, {})
    items = [
        SegmentArrays(
            np.full((20, 3), np.inf, np.float32),
            meg={"m0": (np.ones((20, 4), np.float32), np.ones(20, np.float32))},
        )
    ]
    objective = Objective(kind="likelihood")
    config = TrainingConfig(batch_size=1, max_epochs=1, device="cpu")
    with pytest.raises(FloatingPointError, match="training loss is nan at epoch 1"):
        train(model, items, [], objective, config, np.random.default_rng(0))
