import mne
import numpy as np
import pytest
from mne.surface import mesh_dist
from nilearn.glm.first_level import glover_hrf
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from mne_fusion import FusionDataset
from mne_fusion.anatomy import default_dev_head_t
from mne_fusion.features import Features, extract
from mne_fusion.simulation import Patch, SimulatedExperiment, simulate_naturalistic

# Small and fast: coarse cortex, sphere head, short stories.
SMALL = dict(
    n_stories=3,
    story_duration=20.0,
    n_meg_subjects=2,
    n_fmri_subjects=2,
    spacing="ico3",
    meg_system=["neuromag", "ctf275"],
    bem="sphere",
    seed=3,
)


@pytest.fixture(scope="module")
def noisy():
    return simulate_naturalistic(**SMALL)


@pytest.fixture(scope="module")
def clean():
    return simulate_naturalistic(**SMALL, meg_cnr=np.inf, fmri_cnr=np.inf)


def _meg(exp, subject, story):
    """Data and gain rows for the same channels."""
    raw = exp.raw(subject, story)
    fwd = exp.forwards[subject]
    rows = [fwd["sol"]["row_names"].index(name) for name in raw.ch_names]
    return raw.get_data(), fwd["sol"]["data"][rows]


def test_structure_and_repr(noisy):
    exp = noisy
    assert isinstance(exp, SimulatedExperiment)
    assert repr(exp) == (
        "<SimulatedExperiment | 3 stories (2 train, 1 test), 2 MEG + 2 fMRI subjects, "
        "1284 sources, MEG CNR 1, fMRI CNR 1>"
    )
    assert isinstance(exp.train, FusionDataset)
    assert exp.train.stories == ["story01", "story02"]
    assert exp.test.stories == exp.test_stories == ["story03"]
    for ds in (exp.train, exp.test):
        assert ds.meg_subjects == ["meg01", "meg02"]
        assert ds.fmri_subjects == ["fmri01", "fmri02"]
    assert exp.meg_systems == {"meg01": "neuromag", "meg02": "ctf275"}
    assert len(exp.train.meg("meg01").info["ch_names"]) == 306
    assert len(exp.train.meg("meg02").info["ch_names"]) == 274
    vertices = [s["vertno"] for s in exp.src]
    for story in exp.stories:
        for stc in (exp.sources[story], exp.stimulus_drive[story]):
            assert isinstance(stc, mne.SourceEstimate)
            assert stc.shape == (1284, 1000)
            assert stc.tmin == 0.0
            assert stc.tstep == 1 / 50.0
            assert all(
                np.array_equal(a, b)
                for a, b in zip(stc.vertices, vertices, strict=False)
            )
        assert exp.features[story].n_times == 1000
        assert exp.train.sfreq == 50.0
    for subject, cov in exp.noise_covs.items():
        assert isinstance(cov, mne.Covariance)
        assert cov.ch_names == exp.train.meg(subject).info["ch_names"]
    # magnitudes of a cortical truth: nAm per source, ~100 fT on magnetometers
    truth = exp.sources["story01"].data
    assert 1e-10 < np.abs(truth).max() < 1e-6
    data, _ = _meg(exp, "meg01", "story01")
    mag = mne.pick_types(exp.train.meg("meg01").info, meg="mag")
    assert 1e-14 < data[mag].std() < 1e-11


def test_meg_is_gain_times_sources_plus_noise(noisy, clean):
    assert noisy.meg_cnr == 1.0
    for subject, cov in noisy.noise_covs.items():
        signal, noise = [], []
        for story in noisy.stories:
            data, gain = _meg(noisy, subject, story)
            truth = noisy.sources[story].data
            np.testing.assert_array_equal(truth, clean.sources[story].data)
            clean_data, _ = _meg(clean, subject, story)
            expected = gain @ truth
            # the container stores MEG runs in float32
            np.testing.assert_allclose(
                clean_data, expected, rtol=1e-6, atol=1e-12 * np.abs(expected).max()
            )
            signal.append(gain @ truth)
            noise.append(data - gain @ truth)
        signal, noise = np.concatenate(signal, 1), np.concatenate(noise, 1)
        cnr = signal.std(axis=1) / noise.std(axis=1)
        np.testing.assert_allclose(cnr, 1.0, rtol=0.1)
        # the noise has the covariance of noise_covs: scale and correlations
        emp = np.cov(noise)
        np.testing.assert_allclose(np.diag(emp), np.diag(cov.data), rtol=0.15)
        std = np.sqrt(np.diag(cov.data))
        true_corr = cov.data / np.outer(std, std)
        emp_corr = np.corrcoef(noise)
        off = ~np.eye(len(std), dtype=bool)
        assert np.abs(true_corr[off]).mean() > 0.05  # spatially correlated noise
        assert np.corrcoef(true_corr[off], emp_corr[off])[0, 1] > 0.9
        # without noise, noise_covs is what the noise would be at CNR 1
        np.testing.assert_allclose(clean.noise_covs[subject].data, cov.data)


def _reconstruct_bold(stc, tr):
    """BOLD from sources with numpy: HRF * power at sfreq, mean per TR window."""
    sfreq = 1 / stc.tstep
    hrf = glover_hrf(1 / sfreq, oversampling=1, time_length=32.0)
    power = stc.data**2
    conv = np.array([np.convolve(p, hrf)[: power.shape[1]] for p in power])
    n_per_tr = int(round(tr * sfreq))
    n_trs = power.shape[1] // n_per_tr
    means = conv[:, : n_trs * n_per_tr].reshape(len(conv), n_trs, n_per_tr).mean(-1)
    return means[:, 5:]  # the first 5 volumes are discarded


def test_fmri_follows_hrf(clean, noisy):
    active = clean.active_sources
    recon, bold = [], []
    for story in clean.stories:
        recon.append(_reconstruct_bold(clean.sources[story], clean.tr))
        fmri = clean.test if story in clean.test_stories else clean.train
        runs = fmri.fmri("fmri01").runs[story]
        assert runs.shape == (5, 1284)  # 20 s at TR 2 s, less 5 volumes
        assert fmri.fmri("fmri01").tmin[story] == 10.0
        np.testing.assert_array_equal(runs, fmri.fmri("fmri02").runs[story])
        bold.append(runs.T)
    recon, bold = np.concatenate(recon, 1), np.concatenate(bold, 1)
    assert np.corrcoef(recon[active].ravel(), bold[active].ravel())[0, 1] > 0.99
    scale = bold[active].ravel() @ recon[active].ravel() / np.sum(recon[active] ** 2)
    np.testing.assert_allclose(bold, scale * recon, atol=1e-8 * np.abs(bold).max())
    # the BOLD unit: median std of the stimulus-driven sources is 1
    np.testing.assert_allclose(np.median(bold[active].std(axis=1)), 1.0)

    # noise at fmri_cnr = 1: std 1 everywhere, AR(1) 0.3, smooth over neighbours
    noise = np.concatenate(
        [
            (ds.fmri("fmri01").runs[s] - ds_c.fmri("fmri01").runs[s]).T
            for ds, ds_c in ((noisy.train, clean.train), (noisy.test, clean.test))
            for s in ds.stories
        ],
        axis=1,
    )
    np.testing.assert_allclose(noise.std(), 1.0, rtol=0.05)
    lag1 = np.mean(noise[:, 1:] * noise[:, :-1]) / np.mean(noise**2)
    assert 0.15 < lag1 < 0.45
    adjacency = mne.spatial_src_adjacency(clean.src, verbose=False).tocoo()
    pairs = adjacency.row != adjacency.col
    neighbours = np.mean(noise[adjacency.row[pairs]] * noise[adjacency.col[pairs]])
    assert neighbours > 0.2


@pytest.fixture(scope="module")
def fmri_only_ico4():
    return simulate_naturalistic(
        n_stories=2,
        story_duration=14.0,
        n_meg_subjects=0,
        n_fmri_subjects=1,
        spacing="ico4",
        seed=1,
    )


def test_patches(fmri_only_ico4):
    exp = fmri_only_ico4
    assert repr(exp).startswith("<SimulatedExperiment | 2 stories (1 train, 1 test), ")
    assert exp.forwards == {}
    assert exp.train.meg_subjects == []
    names = [p.name for p in exp.patches]
    assert names == [
        "A1-lh",
        "A1-rh",
        "STG-lh",
        "STG-rh",
        "MTG-lh",
        "MTG-rh",
        "IFG-lh",
        "AG-lh",
        "PreCG-lh",
    ]
    offsets = {"lh": 0, "rh": len(exp.src[0]["vertno"])}
    mask = np.zeros(exp.n_sources, bool)
    for patch in exp.patches + exp.background_patches:
        assert isinstance(patch, Patch)
        assert patch.name in repr(patch)
        s = exp.src[0 if patch.hemi == "lh" else 1]
        rr = s["rr"] * 1e3
        used = rr[s["vertno"]]
        if patch.response != "background":
            # the centre is the source nearest to the MNI site, a few mm away
            nearest = s["vertno"][cKDTree(used).query(patch.site)[1]]
            assert patch.center == nearest
            assert np.linalg.norm(rr[patch.center] - patch.site) < 8.0
            assert patch.radius == 10.0
            assert 0.05 <= patch.latency <= 0.5
            assert set(patch.features) <= set(exp.features["story01"].names)
            mask[offsets[patch.hemi] + np.searchsorted(s["vertno"], patch.vertices)] = 1
        # geodesic distances along the full-resolution cortical mesh
        dist = dijkstra(mesh_dist(s["tris"], rr), indices=patch.center)
        in_patch = dist[patch.vertices]
        assert in_patch.max() <= patch.radius
        assert patch.center in patch.vertices
        np.testing.assert_allclose(
            patch.weights, np.exp(-0.5 * (in_patch / (patch.radius / 2)) ** 2)
        )
        # ... and every source within the radius belongs to the patch
        within = s["vertno"][dist[s["vertno"]] <= patch.radius]
        np.testing.assert_array_equal(within, patch.vertices)
        if patch.response != "background":
            assert 6 <= len(patch.vertices) <= 25  # ~10 mm radius at ico4
            assert in_patch.max() > 6.0
    np.testing.assert_array_equal(mask, exp.active_sources)
    assert len(exp.background_patches) == 24
    # background activity lives on other sources only
    story = "story01"
    truth, drive = exp.sources[story].data, exp.stimulus_drive[story].data
    np.testing.assert_array_equal(truth[exp.active_sources], drive[exp.active_sources])
    assert not drive[~exp.active_sources].any()
    assert np.abs(truth[~exp.active_sources]).max() > 0


def test_stimulus_response_is_the_truth(noisy):
    exp = noisy
    for story in exp.stories:
        feats = exp.features[story]
        stc = exp.stimulus_response(feats)
        np.testing.assert_array_equal(stc.data, exp.stimulus_drive[story].data)
        np.testing.assert_array_equal(exp.stimulus_response(feats.data).data, stc.data)
    # each patch centre has a std of 0.1 nAm/mm2 (x 0.7-1.3) over its area
    drive = np.concatenate([exp.stimulus_drive[s].data for s in exp.stories], 1)
    rows = {"lh": 0, "rh": len(exp.src[0]["vertno"])}
    for patch in exp.patches:
        s = exp.src[0 if patch.hemi == "lh" else 1]
        corners = [s["rr"][s["tris"][:, k]] * 1e3 for k in range(3)]
        cross = np.cross(corners[1] - corners[0], corners[2] - corners[0])
        area = 0.5 * np.linalg.norm(cross, axis=1).sum() / len(s["vertno"])
        row = rows[patch.hemi] + np.searchsorted(s["vertno"], patch.center)
        density = drive[row].std() / area
        assert 0.07e-9 <= density <= 0.13e-9, patch.name


def test_responses_are_causal_and_delayed(noisy):
    exp = noisy
    feats = exp.features["story01"]
    # a single word at 2 s in silence: word-driven patches answer 50-500 ms later
    data = np.zeros_like(feats.data)
    data[:, feats.names.index("envelope")] = 0.01
    data[:, [k for k, n in enumerate(feats.names) if n.startswith("mel_")]] = np.log(
        1e-3
    )
    onset = 100
    data[onset, feats.names.index("word_onset")] = 1.0
    lm = [k for k, n in enumerate(feats.names) if n.startswith("lm_")]
    data[onset, lm] = feats.data[feats.data[:, lm].any(axis=1)][0, lm]
    single = Features(data, feats.sfreq, feats.names, 0.0, feats.extractors)
    stc = exp.stimulus_response(single)
    rows = np.concatenate([[0], np.cumsum([len(s["vertno"]) for s in exp.src])])
    for patch in exp.patches:
        if "word_onset" not in patch.features:
            continue
        hemi = 0 if patch.hemi == "lh" else 1
        row = rows[hemi] + np.searchsorted(exp.src[hemi]["vertno"], patch.center)
        course = stc.data[row]
        assert not course[:onset].any()
        peak = (np.argmax(np.abs(course)) - onset) / feats.sfreq
        assert 0.05 <= peak <= 0.5, patch.name
        assert peak == pytest.approx(patch.latency, abs=0.03)
    # nonlinear: no patch obeys superposition
    other = exp.features["story02"]
    both = Features(feats.data + other.data, feats.sfreq, feats.names)
    summed = exp.stimulus_drive["story01"].data + exp.stimulus_drive["story02"].data
    joint = exp.stimulus_response(both).data
    for patch in exp.patches:
        hemi = 0 if patch.hemi == "lh" else 1
        row = rows[hemi] + np.searchsorted(exp.src[hemi]["vertno"], patch.center)
        error = np.abs(joint[row] - summed[row]).max() / summed[row].std()
        assert error > 0.1, patch.name


def test_stimulus_statistics(noisy):
    exp = noisy
    n_words = n_phones = 0
    for story in exp.stories:
        feats, align = exp.features[story], exp.alignments[story]
        assert align.duration == 20.0
        n_words += len(align.words)
        n_phones += len(align.phones)
        assert feats.extractors[0] == "envelope"
        assert set(feats.extractors) == {
            "envelope",
            "mel",
            "phonemes",
            "word_onsets",
            "lm",
        }
        phonemes = [n for n in feats.names if n.startswith("phoneme_")]
        assert len(phonemes) == 39
        assert phonemes[0] == "phoneme_AA"
        assert sum(n.startswith("lm_") for n in feats.names) >= 16
        words = feats.pick("word_onset").data[:, 0]
        assert words.sum() == len(align.words)
        lm = feats.data[:, [n.startswith("lm_") for n in feats.names]]
        np.testing.assert_array_equal(lm.any(axis=1), words > 0)
        # one-hot phonemes over each phone interval, sample for sample
        one_hot = feats.pick(phonemes).data
        times = feats.times
        for onset, offset, label in align.phones:
            inside = (times >= onset - 1e-9) & (times < offset - 1e-9)
            assert np.all(one_hot[inside, phonemes.index(f"phoneme_{label}")] == 1)
        assert one_hot.sum(axis=1).max() == 1
        # the envelope follows the words: loud in words, at the floor in pauses
        envelope = feats.pick("envelope").data[:, 0]
        assert envelope[one_hot.sum(axis=1) == 1].mean() > 10 * envelope.min()
    duration = 20.0 * len(exp.stories)
    assert 2.0 < n_words / duration < 3.0
    assert 10.0 < n_phones / duration < 14.0


def test_features_match_the_extractors(noisy):
    # the phoneme and word-onset columns are what the built-in extractors give for
    # the story's alignment (which ends before the trailing silence)
    align = noisy.alignments["story02"]
    feats = noisy.features["story02"]
    extracted = extract(
        ["phonemes", "word_onsets"], words=align.words, phones=align.phones, sfreq=50.0
    )
    n_times = extracted.n_times
    assert n_times < feats.n_times
    simulated = feats.pick(extracted.names).data
    np.testing.assert_array_equal(simulated[:n_times], extracted.data)
    assert not simulated[n_times:].any()
    assert extracted.extractors == feats.pick(extracted.names).extractors


def test_determinism(noisy):
    again = simulate_naturalistic(**SMALL)
    other = simulate_naturalistic(**{**SMALL, "seed": 4})
    for story in noisy.stories:
        np.testing.assert_array_equal(
            again.features[story].data, noisy.features[story].data
        )
        np.testing.assert_array_equal(
            again.sources[story].data, noisy.sources[story].data
        )
        assert not np.array_equal(other.sources[story].data, noisy.sources[story].data)
        assert not np.array_equal(
            other.features[story].data, noisy.features[story].data
        )
    for ds, ds_again in ((noisy.train, again.train), (noisy.test, again.test)):
        for subject in ds.meg_subjects:
            for story in ds.stories:
                np.testing.assert_array_equal(
                    ds.meg(subject).runs[story], ds_again.meg(subject).runs[story]
                )
        for subject in ds.fmri_subjects:
            for story in ds.stories:
                np.testing.assert_array_equal(
                    ds.fmri(subject).runs[story], ds_again.fmri(subject).runs[story]
                )
    # subjects differ: noise, and head positions a few mm from the default
    assert not np.allclose(
        noisy.train.meg("meg01").runs["story01"],
        other.train.meg("meg01").runs["story01"],
        atol=0,
    )
    assert not np.array_equal(
        noisy.train.fmri("fmri01").runs["story01"],
        noisy.train.fmri("fmri02").runs["story01"],
    )
    for subject, fwd in noisy.forwards.items():
        info = noisy.train.meg(subject).info
        default = default_dev_head_t(
            mne.channels.read_meg_canonical_info(noisy.meg_systems[subject])
        )
        shift = np.linalg.norm(
            info["dev_head_t"]["trans"][:3, 3] - default["trans"][:3, 3]
        )
        assert 0.5e-3 < shift < 10e-3
        np.testing.assert_allclose(
            fwd["info"]["dev_head_t"]["trans"], info["dev_head_t"]["trans"]
        )


def test_defaults():
    # the default experiment, on a coarse cortex and a sphere head for speed
    exp = simulate_naturalistic(spacing="ico3", bem="sphere")
    assert repr(exp) == (
        "<SimulatedExperiment | 10 stories (9 train, 1 test), 3 MEG + 3 fMRI "
        "subjects, 1284 sources, MEG CNR 1, fMRI CNR 1>"
    )
    assert exp.test_stories == ["story10"]
    assert repr(exp.train) == (
        "<FusionDataset | 9 stories (540.0 s), 3 MEG + 3 fMRI subjects>"
    )
    assert exp.meg_systems == dict.fromkeys(["meg01", "meg02", "meg03"], "neuromag")
    assert exp.background == 1.0
    assert exp.sfreq == 50.0
    assert exp.tr == 2.0


def test_raw(noisy):
    raw = noisy.raw("meg01", "story03")
    assert isinstance(raw, mne.io.RawArray)
    assert raw.info["sfreq"] == 50.0
    np.testing.assert_array_equal(
        raw.get_data(), noisy.test.meg("meg01").runs["story03"]
    )
    raw._data[:] = 0  # a copy: the dataset is untouched
    assert noisy.test.meg("meg01").runs["story03"].any()
    with pytest.raises(ValueError, match="story"):
        noisy.raw("meg01", "nope")


@pytest.mark.parametrize(
    ("kwargs", "match", "error"),
    [
        ({"n_stories": 1}, "n_stories", ValueError),
        ({"n_stories": 2.5}, "n_stories", TypeError),
        ({"story_duration": -1.0}, "story_duration", ValueError),
        ({"story_duration": 5.0}, "story_duration", ValueError),
        ({"tr": 3.0}, "story_duration", ValueError),
        ({"story_duration": 13.0}, "story_duration", ValueError),
        ({"n_test_stories": 0}, "n_test_stories", ValueError),
        ({"n_test_stories": 3}, "n_test_stories", ValueError),
        ({"n_meg_subjects": -1}, "n_meg_subjects", ValueError),
        ({"n_fmri_subjects": "2"}, "n_fmri_subjects", TypeError),
        ({"n_meg_subjects": 0, "n_fmri_subjects": 0}, "n_meg_subjects", ValueError),
        ({"meg_cnr": 0.0}, "meg_cnr", ValueError),
        ({"meg_cnr": "high"}, "meg_cnr", TypeError),
        ({"fmri_cnr": -1.0}, "fmri_cnr", ValueError),
        ({"fmri_cnr": np.nan}, "fmri_cnr", ValueError),
        ({"spacing": "ico9"}, "spacing", ValueError),
        ({"meg_system": "bti"}, "meg_system", ValueError),
        ({"meg_system": ["neuromag"]}, "meg_system", ValueError),
        ({"meg_system": 3}, "meg_system", TypeError),
        ({"bem": "three-layer"}, "bem", ValueError),
        ({"sfreq": 10.0}, "sfreq", ValueError),
        ({"sfreq": 0.0}, "sfreq", ValueError),
        ({"tr": 0.0}, "tr", ValueError),
        (
            {"tr": 0.01},
            r"tr must be at least one sample \(1 / sfreq = 0.02 s\)",
            ValueError,
        ),
        ({"seed": -1}, "seed", ValueError),
        ({"seed": 1.5}, "seed", TypeError),
        ({"background": -0.5}, "background", ValueError),
    ],
)
def test_bad_arguments(kwargs, match, error):
    params = {**SMALL, "n_meg_subjects": 2, "story_duration": 20.0, **kwargs}
    with pytest.raises(error, match=match):
        simulate_naturalistic(**params)


def test_stimulus_response_errors(noisy):
    feats = noisy.features["story01"]
    with pytest.raises(TypeError, match="features"):
        noisy.stimulus_response([1, 2, 3])
    with pytest.raises(ValueError, match="sfreq"):
        noisy.stimulus_response(feats.resample(100.0))
    with pytest.raises(ValueError, match="shape"):
        noisy.stimulus_response(feats.data[:, :5])
    with pytest.raises(ValueError, match="envelope"):
        noisy.stimulus_response(feats.pick(feats.names[1:]))


@pytest.fixture(scope="module")
def with_ecog():
    return simulate_naturalistic(**SMALL, n_ecog_subjects=2)


def test_ecog_subjects(with_ecog, noisy):
    from mne.transforms import _get_trans, apply_trans, invert_transform

    exp = with_ecog
    assert repr(exp) == (
        "<SimulatedExperiment | 3 stories (2 train, 1 test), 2 MEG + 2 fMRI + 2 ECoG "
        "subjects, 1284 sources, MEG CNR 1, fMRI CNR 1>"
    )
    assert list(exp.ecog) == ["ecog01", "ecog02"]
    assert exp.ecog_cnr == 1.0
    assert noisy.ecog == {}
    assert noisy.ecog_gains == {}
    # adding ECoG subjects draws from streams of their own: nothing else changes
    for story in exp.stories:
        np.testing.assert_array_equal(
            exp.sources[story].data, noisy.sources[story].data
        )
        for ds, ref in ((exp.train, noisy.train), (exp.test, noisy.test)):
            if story not in ds.stories:
                continue
            for subject in ds.meg_subjects:
                np.testing.assert_array_equal(
                    ds.meg(subject).runs[story], ref.meg(subject).runs[story]
                )
            for subject in ds.fmri_subjects:
                np.testing.assert_array_equal(
                    ds.fmri(subject).runs[story], ref.fmri(subject).runs[story]
                )
    head_mri = invert_transform(_get_trans("fsaverage")[0])
    points = np.concatenate([s["rr"][s["vertno"]] for s in exp.src])
    for k, (subject, runs) in enumerate(exp.ecog.items()):
        assert list(runs) == exp.stories
        raw = runs["story02"]
        assert isinstance(raw, mne.io.RawArray)
        assert raw.get_channel_types() == ["ecog"] * 64
        assert raw.ch_names[:2] == ["E01", "E02"]
        assert raw.info["sfreq"] == 50.0
        assert raw.n_times == 1000
        positions = exp.ecog_positions[subject]
        locs = np.array([ch["loc"][:3] for ch in raw.info["chs"]])
        np.testing.assert_allclose(apply_trans(head_mri, locs), positions, atol=1e-6)
        # left hemisphere for ecog01, right for ecog02; lateral temporal/frontal
        sign = -1 if k == 0 else 1
        assert np.all(sign * positions[:, 0] > 0.03)
        assert np.all((positions[:, 1] > -0.09) & (positions[:, 1] < 0.065))
        assert len(np.unique(positions.round(6), axis=0)) == 64
        # each electrode is 5 mm above a source; the kernel h / (4 pi s (d2 + h2)^1.5)
        gain = exp.ecog_gains[subject]
        assert gain.shape == (64, 1284)
        under = np.argmax(gain, axis=1)
        np.testing.assert_allclose(
            np.linalg.norm(positions - points[under], axis=1), 5e-3, rtol=1e-5
        )
        np.testing.assert_allclose(
            gain.max(axis=1), 5e-3 / (4 * np.pi * 0.33 * 5e-3**3)
        )
        d = np.linalg.norm(points - points[under[0]], axis=1)
        np.testing.assert_allclose(
            gain[0], 5e-3 / (4 * np.pi * 0.33 * (d**2 + 25e-6) ** 1.5), rtol=1e-6
        )
    assert not np.array_equal(
        exp.ecog_positions["ecog01"], exp.ecog_positions["ecog02"]
    )
    clean = simulate_naturalistic(
        **{**SMALL, "n_meg_subjects": 1, "meg_system": "neuromag"},
        n_ecog_subjects=1,
        ecog_cnr=np.inf,
    )
    np.testing.assert_array_equal(
        clean.ecog_positions["ecog01"], exp.ecog_positions["ecog01"]
    )
    # white noise at CNR 1 on top of the noiseless recording of the same seed
    signal = np.concatenate(
        [clean.ecog["ecog01"][s].get_data() for s in exp.stories], 1
    )
    data = np.concatenate([exp.ecog["ecog01"][s].get_data() for s in exp.stories], 1)
    noise = data - signal
    np.testing.assert_allclose(signal.std(1) / noise.std(1), 1.0, rtol=0.1)
    assert abs(np.corrcoef(noise[:, 1:].ravel(), noise[:, :-1].ravel())[0, 1]) < 0.05
    assert abs(np.corrcoef(noise[0], noise[1])[0, 1]) < 0.1
    # microvolts, as the dipole potential of nAm sources
    assert 1e-7 < signal.std() < 1e-4
    # the same stimulus drive as the MEG subjects, but their own background
    gain = clean.ecog_gains["ecog01"]
    ecog = clean.ecog["ecog01"]["story01"].get_data()
    drive = gain @ clean.stimulus_drive["story01"].data
    own = ecog - drive
    shared = gain @ clean.sources["story01"].data - drive
    assert 0.5 < own.std() / shared.std() < 2.0
    assert abs(np.corrcoef(own.ravel(), shared.ravel())[0, 1]) < 0.2


@pytest.mark.parametrize(
    ("kwargs", "match", "error"),
    [
        ({"n_ecog_subjects": -1}, "n_ecog_subjects must be a non-negative", ValueError),
        ({"n_ecog_subjects": "2"}, "n_ecog_subjects must be an instance of", TypeError),
        ({"ecog_cnr": 0.0}, "ecog_cnr must be a positive number, got 0.0", ValueError),
    ],
)
def test_bad_ecog_arguments(kwargs, match, error):
    with pytest.raises(error, match=match):
        simulate_naturalistic(**SMALL, **kwargs)
