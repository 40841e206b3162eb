"""Zero-shot prediction and data-informed estimates for a new MEG subject."""

import mne
import numpy as np
import pytest
from _tiny_encoder import SFREQ, TINY, correction_champagne, make_experiment
from numpy.testing import assert_allclose, assert_array_equal

from mne_fusion import FusionEncoder
from mne_fusion.anatomy import morph_or_identity, template_source_space
from mne_fusion.baselines import minimum_norm


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return make_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def fitted(experiment):
    return FusionEncoder(**{**TINY, "max_epochs": 1}).fit(experiment["ds"])


def _sphere_forward(info, fwd, eeg=False):
    """A free-orientation forward of ``info`` on the template's ico3 sources."""
    info = info.copy()
    with info._unlock():
        info["dev_head_t"] = fwd["info"]["dev_head_t"]
    sphere = mne.make_sphere_model(
        r0=(0.0, 0.0, 0.04), head_radius=0.2 if eeg else None, verbose=False
    )
    return mne.make_forward_solution(
        info, "fsaverage", template_source_space("ico3"), sphere, verbose=False
    )


def _close(actual, expected):
    """Equal up to the float32 arithmetic of the network."""
    assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_new_subject_is_its_lead_field_times_the_sources(fitted, experiment):
    features = experiment["ds"].stimulus("s0")
    fwd = experiment["fwd"]
    raw = fitted.predict(features, "new", forward=fwd)
    assert isinstance(raw, mne.io.RawArray)
    assert raw.ch_names == fwd["sol"]["row_names"]
    assert raw.info["sfreq"] == SFREQ
    # the fitted subject's forward, by hand: gain @ template sources
    sources = fitted.apply_inverse(features).data
    expected = fwd["sol"]["data"] @ sources
    _close(raw.get_data(), expected)
    # and exactly the prediction of that subject as fitted
    assert_array_equal(raw.get_data(), fitted.predict(features, "A").get_data())


def test_free_orientation_and_own_source_space(fitted, experiment):
    features = experiment["ds"].stimulus("s1")
    sources = fitted.apply_inverse(features).data
    free = _sphere_forward(experiment["info"], experiment["fwd"])
    assert not mne.forward.is_fixed_orient(free)
    fixed = mne.convert_forward_solution(
        free, surf_ori=True, force_fixed=True, use_cps=True, verbose=False
    )
    raw = fitted.predict(features, "free", forward=free)
    _close(raw.get_data(), fixed["sol"]["data"] @ sources)
    # the free forward itself is left as it was
    assert not mne.forward.is_fixed_orient(free)
    # most of the template's sources (as mindist leaves): the others get no signal
    part, keep = _part(fixed, 2)
    raw = fitted.predict(features, "part", forward=part)
    _close(raw.get_data(), part["sol"]["data"] @ sources[keep])
    # other sources (here a quarter of the template's): morphed from the template
    part, keep = _part(fixed, 4)
    morph = morph_or_identity(template_source_space("ico3"), part["src"])
    assert morph.shape == (len(keep), 1284)
    raw = fitted.predict(features, "part", forward=part)
    _close(raw.get_data(), part["sol"]["data"] @ (morph @ sources))


def _part(fwd, step):
    """``fwd`` on every ``step``-th source of each hemisphere; the sources kept."""
    part, keep = fwd.copy(), []
    for hemi, s in enumerate(part["src"]):
        s["inuse"][:] = 0
        s["inuse"][s["vertno"][::step]] = 1
        s["vertno"] = s["vertno"][::step]
        s["nuse"] = len(s["vertno"])
        keep.append(np.arange(0, 642, step) + 642 * hemi)
    keep = np.concatenate(keep)
    part["sol"]["data"] = part["sol"]["data"][:, keep]
    part["nsource"] = len(keep)
    return part, keep


def test_data_informed_estimate_of_a_new_subject(fitted, experiment):
    features = experiment["ds"].stimulus("s1")
    raw, fwd, info = experiment["raws"]["s1"], experiment["fwd"], experiment["info"]
    cov = mne.make_ad_hoc_cov(info, verbose=False)
    stc = fitted.apply_inverse(features, raw, "new", forward=fwd, noise_cov=cov)
    known = fitted.apply_inverse(features, raw, "A", noise_cov=cov)
    assert_allclose(stc.data, known.data, rtol=1e-6, atol=1e-20)
    # bad channels of the recording are left out of the residual
    bad = raw.copy()
    bad.info["bads"] = [raw.ch_names[4]]
    stc = fitted.apply_inverse(
        features, bad, "new", forward=fwd, noise_cov=cov, method="MNE"
    )
    good = [name for name in raw.ch_names if name != raw.ch_names[4]]
    prediction = fitted.predict(features, "new", forward=fwd).get_data(picks=good)
    residual = mne.io.RawArray(
        raw.get_data(picks=good) - prediction,
        mne.pick_info(info, mne.pick_channels(raw.ch_names, good)),
        verbose=False,
    )
    s_enc = fitted.apply_inverse(features).data
    # at the SNR the residual shows over cov (snr="auto", the default)
    expected = s_enc + minimum_norm(residual, fwd, cov, "MNE", "auto").data
    assert_allclose(stc.data, expected, rtol=1e-6, atol=1e-7 * np.abs(expected).max())
    known = fitted.apply_inverse(features, raw, "A", noise_cov=cov, method="MNE")
    assert not np.allclose(stc.data, known.data, rtol=1e-3, atol=0)
    # the default, Champagne, of the same residual
    stc = fitted.apply_inverse(features, bad, "new", forward=fwd, noise_cov=cov)
    expected = s_enc + correction_champagne(residual, fwd, cov).data
    assert_allclose(stc.data, expected, rtol=1e-6, atol=1e-7 * np.abs(expected).max())


def test_new_subject_errors(fitted, experiment):
    features = experiment["ds"].stimulus("s0")
    raw, fwd = experiment["raws"]["s0"], experiment["fwd"]
    hint = "give the forward of a new MEG subject to predict it"
    with pytest.raises(ValueError, match=f"Unknown subject 'B'; .*'M'; {hint}"):
        fitted.predict(features, "B")
    with pytest.raises(ValueError, match=f"Unknown subject 'B'; .*'A'; {hint}"):
        fitted.apply_inverse(features, raw, "B")
    new_name = "forward is for new MEG subjects, but the encoder was fitted on"
    with pytest.raises(ValueError, match=f"{new_name} 'F': leave forward out"):
        fitted.apply_inverse(features, raw, "F", forward=fwd)
    for name in ("A", "F"):
        with pytest.raises(ValueError, match=f"{new_name} {name!r}: leave"):
            fitted.predict(features, name, forward=fwd)
    with pytest.raises(TypeError, match="subject must be an instance of str"):
        fitted.predict(features, 1, forward=fwd)
    with pytest.raises(TypeError, match="forward must be an instance of Forward"):
        fitted.predict(features, "B", forward="fwd.fif")
    eeg = mne.create_info(["Fz", "Cz", "Pz", "Oz"], SFREQ, "eeg")
    eeg.set_montage("easycap-M1")
    eeg_fwd = _sphere_forward(eeg, fwd, eeg=True)
    with pytest.raises(ValueError, match=r"'E' has no MEG channel .*\['eeg'\]"):
        fitted.predict(features, "E", forward=eeg_fwd)
    with pytest.raises(ValueError, match="'E' has no MEG channel"):
        fitted.apply_inverse(features, raw, "E", forward=eeg_fwd)
    # the recording must hold the forward's channels
    short = raw.copy().drop_channels(raw.ch_names[:2])
    with pytest.raises(ValueError, match="inst lacks 2 channel.*'new'"):
        fitted.apply_inverse(features, short, "new", forward=fwd)
