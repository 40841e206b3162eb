"""Bad numbers given to a fitted FusionEncoder are refused, not turned into NaN."""

import mne
import numpy as np
import pytest
from _tiny_encoder import TINY, make_experiment
from numpy.testing import assert_array_equal

from mne_fusion import FusionDataset, FusionEncoder
from mne_fusion.features import Features


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


def _values(out):
    return out.data if isinstance(out, mne.SourceEstimate) else out.get_data()


def test_features_must_have_the_fitted_columns(experiment):
    """The network weighs each column by its place: other columns, or the fitted ones
    in another order, were read as the fitted ones (a 120 % change of the
    prediction, score r -0.11 instead of 0.49 on the tiny fit)."""
    encoder, ds = experiment["encoder"], experiment["ds"]
    features = ds.stimulus("s0")
    assert features.names == ["f0", "f1", "f2", "f3"]
    reordered = features.pick(["f0", "f3", "f2", "f1"])
    for method, args in (("predict", ("A",)), ("apply_inverse", ())):
        call = getattr(encoder, method)
        with pytest.raises(
            ValueError,
            match=r"column 1 is 'f3' where the fit had 'f1'; they are the fitted "
            r"columns in another order: reorder them with features.pick",
        ):
            call(reordered, *args)
        # the same columns in the fitted order give the fitted prediction
        back = reordered.pick(list(encoder.feature_names_in_))
        assert_array_equal(_values(call(back, *args)), _values(call(features, *args)))
    renamed = Features(features.data, features.sfreq, ["envelope", "f1", "f2", "f3"])
    with pytest.raises(ValueError, match=r"column 0 is 'envelope' where the fit had "):
        encoder.predict(renamed, "A")
    # an array is taken as it is
    assert_array_equal(
        encoder.predict(features.data, "A").get_data(),
        encoder.predict(features, "A").get_data(),
    )
    # score reads the dataset's stories through the same check
    other = FusionDataset()
    other.add_stimulus("s0", reordered)
    other.add_meg("A", {"s0": experiment["raw"]}, ds.meg("A").forward)
    with pytest.raises(ValueError, match="column 1 is 'f3' where the fit had 'f1'"):
        encoder.score(other)


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
