"""Bad numbers given to a fitted FusionEncoder are refused, not turned into NaN."""

import mne
import numpy as np
import pytest
from _tiny_encoder import TINY, make_experiment

from mne_fusion import FusionDataset, FusionEncoder


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The tiny experiment of the encoder tests, fitted."""
    exp = make_experiment(tmp_path_factory)
    encoder = FusionEncoder(**TINY).fit(exp["ds"])
    return dict(ds=exp["ds"], info=exp["info"], raw=exp["raws"]["s0"], encoder=encoder)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("method", ["predict", "apply_inverse"])
def test_non_finite_features_are_refused(experiment, method, bad):
    """One NaN or Inf in an array used to make every output value NaN."""
    features = experiment["ds"].stimulus("s0").data.copy()
    features[10, 1] = bad
    call = getattr(experiment["encoder"], method)
    args = (features, "A") if method == "predict" else (features,)
    with pytest.raises(ValueError, match=r"^features contains 1 NaN or infinite"):
        call(*args)


def test_non_finite_stimulus_is_refused_by_score(experiment):
    ds = FusionDataset()
    ds.add_stimulus("s0", experiment["ds"].stimulus("s0").copy())
    ds.add_meg("A", {"s0": experiment["raw"]}, experiment["ds"].meg("A").forward)
    ds.stimulus("s0").data[0, 0] = np.nan  # changed after it was checked
    with pytest.raises(ValueError, match=r"^features contains 1 NaN or infinite"):
        experiment["encoder"].score(ds)


def test_noise_cov_must_cover_the_fitted_channels(experiment):
    """A covariance of some channels used to restrict the estimate to those."""
    info, raw = experiment["info"], experiment["raw"]
    feats = experiment["ds"].stimulus("s0")
    partial = mne.make_ad_hoc_cov(mne.pick_info(info, np.arange(29)), verbose=False)
    missing = info["ch_names"][29:]
    with pytest.raises(
        ValueError,
        match=(
            r"^noise_cov lacks 2 of the 31 channels subject 'A' was fitted on: "
            + rf"\['{missing[0]}', '{missing[1]}'\]"
        ),
    ):
        experiment["encoder"].apply_inverse(feats, raw, "A", noise_cov=partial)
    # a covariance of all the channels (and more) is used as before
    full = mne.make_ad_hoc_cov(info, verbose=False)
    stc = experiment["encoder"].apply_inverse(feats, raw, "A", noise_cov=full)
    assert np.isfinite(stc.data).all()
    # fit refuses it by name before anything is prepared
    with pytest.raises(
        ValueError,
        match=rf"^noise_cov\['A'\] lacks 2 of the 31 channels of MEG subject 'A': "
        rf"\['{missing[0]}', '{missing[1]}'\]",
    ):
        FusionEncoder(**TINY).fit(experiment["ds"], noise_cov={"A": partial})
    # a channel the covariance marks bad was whitened as if good (MNE leaves it out)
    marked = full.copy()
    marked["bads"] = [info["ch_names"][3]]
    bad = rf"marks 1 of the 31 channels .* bad: \['{info['ch_names'][3]}'\]; mark"
    with pytest.raises(ValueError, match=r"^noise_cov " + bad):
        experiment["encoder"].apply_inverse(feats, raw, "A", noise_cov=marked)
    with pytest.raises(ValueError, match=r"^noise_cov\['A'\] " + bad):
        FusionEncoder(**TINY).fit(experiment["ds"], noise_cov={"A": marked})


@pytest.mark.parametrize("kind", ["raw", "epochs", "evoked"])
def test_non_finite_inst_is_refused(experiment, kind):
    """NaN in the recording used to fail deep in numpy with its own message."""
    raw = experiment["raw"]
    data = raw.get_data()
    data[4, 20] = np.nan
    if kind == "raw":
        inst = mne.io.RawArray(data, raw.info, verbose=False)
    else:
        inst = mne.EpochsArray(data[None], raw.info, verbose=False)
        if kind == "evoked":
            inst = inst.average()
    feats = experiment["ds"].stimulus("s0")
    cov = mne.make_ad_hoc_cov(raw.info, verbose=False)
    with pytest.raises(ValueError, match=r"^inst contains 1 NaN or infinite value"):
        experiment["encoder"].apply_inverse(feats, inst, "A", noise_cov=cov)
