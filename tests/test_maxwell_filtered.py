"""Maxwell-filtered recordings (SSS, as MEGIN data are shared): 306 channels whose
data span 80 dimensions, whitened by MNE's ad hoc covariance or channel variances.

A diagonal covariance puts noise in the 226 dimensions the data do not have; the
inverses that learn the noise level from the data learnt none there, and Champagne
failed on NaN (see the changelog)."""

import warnings

import mne
import numpy as np
import pytest
from _tiny_encoder import N_TIMES, SFREQ, TINY
from numpy.testing import assert_allclose

from mne_fusion import FusionDataset, FusionEncoder
from mne_fusion._sensor_data import in_data_space, whitening_rank
from mne_fusion.anatomy import template_forward
from mne_fusion.features import Features
from mne_fusion.inverse import whitened_snr
from mne_fusion.inverse_sparse import champagne

ORIGIN = (0.0, 0.0, 0.04)


def _maxwell(raw):
    return mne.preprocessing.maxwell_filter(raw, origin=ORIGIN, verbose=False)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Three stories of 20 sources echoing feature 0, with white sensor noise."""
    root = tmp_path_factory.getbasetemp() / "mne_data"
    root.mkdir(exist_ok=True)
    info = mne.channels.read_meg_canonical_info("neuromag")
    with info._unlock():
        info["sfreq"] = SFREQ
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNE_DATA", str(root))
        fwd = template_forward(info, spacing="ico3", bem="sphere")
    rng = np.random.default_rng(0)
    gain = fwd["sol"]["data"]
    active = rng.choice(gain.shape[1], 20, replace=False)
    features, raws, noise_std = {}, {}, None
    for k in range(3):
        feats = rng.standard_normal((N_TIMES, 4))
        sources = np.zeros((gain.shape[1], N_TIMES))
        sources[active, 5:] = feats[:-5, 0] * 1e-8
        meg = gain @ sources
        noise_std = 0.5 * meg.std(axis=1, keepdims=True)
        meg += noise_std * rng.standard_normal(meg.shape)
        features[f"s{k}"] = Features(feats, SFREQ)
        raws[f"s{k}"] = mne.io.RawArray(meg, info, verbose=False)
    noise = mne.io.RawArray(noise_std * rng.standard_normal((306, 20_000)), info)
    maxwell_noise_cov = mne.compute_raw_covariance(
        _maxwell(noise), rank="info", verbose=False
    )
    raw_noise_cov = mne.compute_raw_covariance(noise, verbose=False)
    return dict(
        fwd=fwd,
        active=active,
        features=features,
        raws=raws,
        sss={story: _maxwell(raw) for story, raw in raws.items()},
        maxwell_noise_cov=maxwell_noise_cov,
        raw_noise_cov=raw_noise_cov,
    )


def _r_active(stc, recordings, story="s2"):
    """Mean r of the active sources with feature 0, 100 ms earlier."""
    truth = recordings["features"][story].data[:-5, 0]
    data = stc.data[recordings["active"], 5:]
    return np.mean([np.corrcoef(row, truth)[0, 1] for row in data])


def test_diagonal_covariance_is_kept_in_the_data_dimensions(recordings):
    sss = recordings["sss"]["s2"]
    data = sss.get_data()
    ad_hoc = mne.make_ad_hoc_cov(sss.info, verbose=False)
    kept = in_data_space(ad_hoc, sss.info, np.cov(data))
    assert mne.compute_rank(kept, info=sss.info, verbose=False) == {"meg": 80}
    # scaled by the diagonal, it is the orthogonal projector onto the data: on the
    # data it whitens as the diagonal does, elsewhere it holds nothing
    scale = 1 / np.sqrt(ad_hoc["data"])
    projector = kept["data"] * np.outer(scale, scale)
    assert_allclose(projector @ projector, projector, atol=1e-8)
    white = (data - data.mean(axis=1, keepdims=True)) * scale[:, np.newaxis]
    assert_allclose(projector @ white, white, atol=1e-8 * np.abs(white).max())
    # a recording that is not Maxwell-filtered, or another covariance: as given
    raw = recordings["raws"]["s2"]
    assert in_data_space(ad_hoc, raw.info, np.cov(raw.get_data())) is ad_hoc
    full = recordings["maxwell_noise_cov"]
    assert in_data_space(full, sss.info, np.cov(data)) is full


def test_whitening_rank(recordings):
    """MNE's rank="info" for covariances that span the Maxwell-filtered data's
    dimensions, its estimate for others (raw empty room) and unfiltered data."""
    sss, raw = recordings["sss"]["s2"], recordings["raws"]["s2"]
    ad_hoc = mne.make_ad_hoc_cov(sss.info, verbose=False)
    kept = in_data_space(ad_hoc, sss.info, np.cov(sss.get_data()))
    assert whitening_rank(kept, sss.info) == "info"
    assert whitening_rank(recordings["maxwell_noise_cov"], sss.info) == "info"
    assert whitening_rank(recordings["raw_noise_cov"], sss.info) is None
    assert whitening_rank(ad_hoc, sss.info) is None
    assert whitening_rank(recordings["maxwell_noise_cov"], raw.info) is None


def test_whitened_snr_over_the_data_dimensions(recordings):
    sss = recordings["sss"]["s2"]
    ad_hoc = mne.make_ad_hoc_cov(sss.info, verbose=False)
    # reference: numpy on float64, the data scaled by the ad hoc standard deviations
    # and cut to their 80 leading dimensions
    white = sss.get_data() / np.sqrt(ad_hoc["data"])[:, np.newaxis]
    eigenvalues = np.linalg.eigvalsh(np.cov(white, bias=True))[-80:]
    edge = (1 + np.sqrt(80 / white.shape[1])) ** 2
    want = np.sqrt((eigenvalues[eigenvalues > edge] - 1).sum() / 80)
    assert_allclose(whitened_snr(sss, ad_hoc, verbose=False), want, rtol=1e-6)


def test_champagne_with_an_ad_hoc_covariance(recordings):
    sss, fwd = recordings["sss"]["s2"], recordings["fwd"]
    ad_hoc = mne.make_ad_hoc_cov(sss.info, verbose=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Champagne did not converge")
        stc = champagne(sss, fwd, ad_hoc, max_iter=100, verbose=False)
        ref = champagne(sss, fwd, recordings["maxwell_noise_cov"], max_iter=100)
    assert np.isfinite(stc.data).all()
    # as with a covariance of Maxwell-filtered noise, whose scale it learns
    assert _r_active(stc, recordings) > 0.3
    assert abs(_r_active(stc, recordings) - _r_active(ref, recordings)) < 0.03


def test_fit_and_data_informed_estimate(recordings):
    scores = {}
    for kind in ("raws", "sss"):
        runs = recordings[kind]
        ds = FusionDataset()
        for story, features in recordings["features"].items():
            ds.add_stimulus(story, features, verbose=False)
        ds.add_meg("A", runs, recordings["fwd"], verbose=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # MNE's "Something went wrong" on the rank
            encoder = FusionEncoder(**TINY).fit(ds, verbose=False)
            stc = encoder.apply_inverse(
                recordings["features"]["s2"], runs["s2"], "A", verbose=False
            )
        scores[kind] = _r_active(stc, recordings)
    # the ad hoc covariance learns the noise of both alike
    assert scores["sss"] > 0.4
    assert abs(scores["sss"] - scores["raws"]) < 0.1
