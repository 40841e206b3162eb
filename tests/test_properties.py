"""Property-based tests of the input validators (hypothesis).

Every public entry point that takes user data is fed random shapes, dtypes, non-finite
values, empty arrays and wrong types. The property is always the same: the call either
succeeds with a correct result (the stored array equals the input converted, shapes
consistent, nothing non-finite stored) or raises ValueError or TypeError (an OSError
for a missing file) whose message names the offending argument (or the file), and
errors about non-finite values say "NaN" or "finite". Never an exception from deep in
numpy, scipy, mne or torch (IndexError, KeyError, AttributeError, RuntimeError,
UnpicklingError, EOFError, ...).

Examples are derandomised so that CI is reproducible; the whole file runs in well under
a minute on two slow cores.
"""

import contextlib
import math
import numbers
import warnings
from unittest import mock

import mne
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import sparse

from mne_fusion import FusionDataset, FusionEncoder, read_fusion_encoder
from mne_fusion.encoder import _estimator
from mne_fusion.features import Features

SFREQ = 10.0
N_TIMES = 20  # samples of every story of the base dataset (2 s)
N_CHANNELS = 30  # channels of the toy forward

BASE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

# Exceptions a validator may raise; anything else is a bug.
ALLOWED = (ValueError, TypeError)
NON_FINITE_WORDS = ("NaN", "finite")


# --------------------------------------------------------------------------- helpers
def _call(func, *args, **kwargs):
    """Return (result, None) or (None, error) for the allowed error types only."""
    try:
        with warnings.catch_warnings():
            # A deprecation notice is not an error; any other warning (ComplexWarning
            # on a discarded imaginary part, RuntimeWarning on invalid values) is.
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return func(*args, **kwargs), None
    except ALLOWED as err:
        return None, err


def _assert_names(err, names, non_finite=False):
    """Assert that ``err`` names one of ``names`` (and says NaN/finite if asked)."""
    msg = str(err)
    assert any(name in msg for name in names), (
        f"{type(err).__name__}: {msg!r} names none of {sorted(names)}"
    )
    if non_finite:
        assert any(word in msg for word in NON_FINITE_WORDS), (
            f"error about a non-finite value does not say NaN or finite: {msg!r}"
        )


def _is_real_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _positive(value):
    return _is_real_number(value) and math.isfinite(value) and value > 0


def _finite_number(value):
    return _is_real_number(value) and math.isfinite(value)


def _has_non_finite(value):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except Exception:
        return False
    return not np.all(np.isfinite(arr))


def _real_array(value):
    """Return ``value`` as a float64 array, or None if it is not a real array."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "iufb":
        return value.astype(np.float64)
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        try:
            if all(_is_real_number(v) for v in value.ravel()):
                return value.astype(np.float64)
        except Exception:
            return None
    return None


# --------------------------------------------------------------------------- strategies
WRONG_TYPES = st.sampled_from([None, "abc", "", [1.0, 2.0], {"a": 1}, object(), b"x"])
SPECIAL_FLOATS = st.sampled_from([0.0, -1.0, -0.0, np.nan, np.inf, -np.inf, 1e-300])
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-5, 100),
    SPECIAL_FLOATS,
    st.booleans(),
    st.just(np.float32(2.5)),
    st.just(np.int64(3)),
)
DTYPES = st.sampled_from(
    [np.int64, np.int32, np.float32, np.float64, np.complex128, np.bool_, object]
)


@st.composite
def arrays(draw, min_dims=0, max_dims=3, min_side=0, max_side=6, shape=None):
    """Arrays of random dtype and shape, with NaN and Inf among the floats."""
    dtype = draw(DTYPES)
    if shape is None:
        shape = draw(
            hnp.array_shapes(
                min_dims=min_dims,
                max_dims=max_dims,
                min_side=min_side,
                max_side=max_side,
            )
        )
    if dtype is object:
        elements = st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(-3, 3),
            st.none(),
            st.sampled_from(["1.5", "x", ""]),
        )
        return draw(hnp.arrays(object, shape, elements=elements))
    if dtype is np.complex128:
        return draw(hnp.arrays(dtype, shape))
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(
            allow_nan=True, allow_infinity=True, width=32 if dtype is np.float32 else 64
        )
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))


FINITE_2D = hnp.arrays(
    np.float64,
    st.tuples(st.integers(0, 30), st.integers(1, 4)),
    elements=st.floats(-1e6, 1e6),
)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def meg_info(toy_forward):
    """The Info of the toy forward's 30 Neuromag channels, at SFREQ."""
    return _with_sfreq(toy_forward)


def _with_sfreq(forward):
    info = mne.pick_info(
        mne.channels.read_meg_canonical_info("neuromag"), np.arange(N_CHANNELS)
    )
    assert info["ch_names"] == forward["info"]["ch_names"]
    with info._unlock():
        info["sfreq"] = SFREQ
    return info


def _base_dataset(n_stories=2):
    ds = FusionDataset()
    rng = np.random.default_rng(0)
    for k in range(n_stories):
        ds.add_stimulus(f"s{k}", rng.standard_normal((N_TIMES, 2)), sfreq=SFREQ)
    return ds


# =========================================================================== Features
NAMES = st.one_of(
    st.none(),
    st.lists(st.sampled_from(["a", "b", "c", "d", 1, 2.0]), max_size=5),
    st.lists(st.sampled_from(["a", "b"]), max_size=3).map(tuple),
    WRONG_TYPES,
)


@settings(BASE, max_examples=300)
@given(
    data=st.one_of(arrays(), WRONG_TYPES, st.lists(st.floats(), max_size=4)),
    sfreq=NUMBERS | WRONG_TYPES,
    names=NAMES,
    tmin=NUMBERS | WRONG_TYPES,
)
def test_features_constructor(data, sfreq, names, tmin):
    """Features() stores finite float64 (n_times, n_features) data or names it."""
    feats, err = _call(Features, data, sfreq, names=names, tmin=tmin)
    array = (
        _real_array(np.asarray(data)) if isinstance(data, list) else _real_array(data)
    )
    if array is not None and array.ndim == 1:
        array = array[:, np.newaxis]
    bad = set()
    if array is None or array.ndim != 2 or not np.all(np.isfinite(array)):
        bad.add("data")
    if not _positive(sfreq):
        bad.add("sfreq")
    if not _finite_number(tmin):
        bad.add("tmin")
    if array is not None and array.ndim == 2:
        if names is not None and (
            not isinstance(names, list | tuple)
            or len(names) != array.shape[1]
            or len({str(n) for n in names}) != len(names)
        ):
            bad.add("names")
    elif names is not None and not isinstance(names, list | tuple):
        bad.add("names")
    if err is None:
        assert not bad, f"Features accepted invalid {sorted(bad)}"
        assert feats.data.dtype == np.float64
        np.testing.assert_array_equal(feats.data, array)
        assert np.all(np.isfinite(feats.data))
        assert feats.sfreq == float(sfreq)
        assert feats.tmin == float(tmin)
        assert math.isfinite(feats.tmin)
        assert len(feats.names) == feats.n_features == array.shape[1]
        assert all(isinstance(n, str) for n in feats.names)
        assert feats.n_times == array.shape[0]
        return
    assert bad, f"valid input refused: {err!r}"
    non_finite = bad <= {"data", "sfreq", "tmin"} and (
        ("data" in bad and array is not None and array.ndim == 2 and len(bad) == 1)
        or (bad == {"tmin"} and _is_real_number(tmin))
    )
    _assert_names(err, bad, non_finite=non_finite)


# ====================================================================== add_stimulus
STORY = st.one_of(st.sampled_from(["s0", "new", "", "ß story"]), WRONG_TYPES)


@st.composite
def stimulus_features(draw):
    kind = draw(st.sampled_from(["array", "features", "wrong"]))
    if kind == "array":
        return draw(st.one_of(arrays(min_dims=1, max_dims=3), FINITE_2D))
    if kind == "features":
        data = draw(FINITE_2D.filter(lambda a: a.size))
        fsfreq = draw(st.sampled_from([SFREQ, SFREQ * (1 + 1e-9), 20.0]))
        tmin = draw(st.sampled_from([0.0, 1e-3, -0.5, 0.2, 1e-9]))
        return Features(data, fsfreq, tmin=tmin)
    return draw(st.one_of(WRONG_TYPES, st.lists(st.floats(), max_size=3)))


@settings(BASE, max_examples=300)
@given(
    story=STORY,
    features=stimulus_features(),
    sfreq=st.one_of(st.none(), st.sampled_from([SFREQ, 20.0]), NUMBERS),
    first=st.booleans(),
)
def test_add_stimulus(story, features, sfreq, first):
    """add_stimulus stores the features as given (float64, finite) or names them."""
    ds = FusionDataset() if first else _base_dataset(1)
    n_before = len(ds.stories)
    out, err = _call(ds.add_stimulus, story, features, sfreq)
    if err is None:
        assert out is ds
        assert ds.stories[-1] == story
        assert len(ds.stories) == n_before + 1
        stored = ds.stimulus(story)
        expected = features.data if isinstance(features, Features) else features
        expected = np.asarray(expected, dtype=np.float64)
        if expected.ndim == 1:
            expected = expected[:, np.newaxis]
        np.testing.assert_array_equal(stored.data, expected)
        assert stored.data.dtype == np.float64
        assert np.all(np.isfinite(stored.data))
        assert stored.n_times >= 2
        assert stored.tmin == 0.0
        assert stored.sfreq == ds.sfreq
        assert stored.names == ds.feature_names
        if isinstance(features, np.ndarray):
            assert not np.iscomplexobj(features) or not np.any(features.imag)
        return
    assert len(ds.stories) == n_before, "a refused story was added"
    assert not isinstance(story, str) or story not in ds.stories[n_before:]
    names = {"story", "features", "sfreq"}
    non_finite = (
        isinstance(story, str)
        and story
        and story not in ds.stories
        and isinstance(features, np.ndarray)
        and features.dtype.kind in "f"
        and features.ndim in (1, 2)
        and _positive(sfreq)
        and _has_non_finite(features)
    )
    _assert_names(err, names, non_finite=bool(non_finite))


@settings(BASE, max_examples=60)
@given(data=FINITE_2D, sfreq=st.sampled_from([SFREQ, 20.0, SFREQ * (1 + 1e-8)]))
def test_add_stimulus_consistency(data, sfreq):
    """A second story must match the first's sampling rate and columns."""
    ds = _base_dataset(1)  # two columns at SFREQ
    out, err = _call(ds.add_stimulus, "next", data, sfreq)
    ok = data.shape[0] >= 2 and data.shape[1] == 2 and abs(sfreq - SFREQ) < 1e-6
    if err is None:
        assert ok
        assert ds.stimulus("next").sfreq == ds.stimulus("s0").sfreq
        assert ds.stimulus("next").names == ds.stimulus("s0").names
    else:
        assert not ok, f"valid input refused: {err!r}"
        _assert_names(err, {"features", "sfreq"})


# ============================================================================ add_meg
@st.composite
def meg_runs(draw, info):
    """A runs argument: a dict of Raw/Epochs of random length, rate, values, or junk."""
    kind = draw(st.sampled_from(["dict"] * 6 + ["wrong", "empty"]))
    if kind == "wrong":
        return draw(WRONG_TYPES), {}
    if kind == "empty":
        return {}, {}
    stories = draw(
        st.lists(st.sampled_from(["s0", "s1", "unknown", 3]), min_size=1, unique=True)
    )
    runs, meta = {}, {}
    for story in stories:
        what = draw(
            st.sampled_from(["raw"] * 4 + ["epochs", "array", "none", "features"])
        )
        n_times = draw(
            st.sampled_from([N_TIMES, N_TIMES - 1, N_TIMES + 7, N_TIMES - 2, 1])
        )
        values = draw(st.sampled_from(["normal"] * 4 + ["nan", "inf", "zero", "const"]))
        rate = draw(st.sampled_from([SFREQ] * 4 + [2 * SFREQ, SFREQ * (1 + 1e-9)]))
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        shape = (N_CHANNELS, n_times)
        data = rng.standard_normal(shape) * 1e-12
        if values == "nan":
            data[rng.integers(N_CHANNELS), rng.integers(n_times)] = np.nan
        elif values == "inf":
            data[rng.integers(N_CHANNELS), -1] = -np.inf
        elif values == "zero":
            data[:] = 0.0
        elif values == "const":
            data[:] = 1e-12
        run_info = info.copy()
        with run_info._unlock():
            run_info["sfreq"] = rate
        n_bads = draw(st.sampled_from([0, 0, 3, N_CHANNELS]))
        run_info["bads"] = run_info["ch_names"][:n_bads]
        if what == "raw":
            first_samp = draw(st.sampled_from([0, 0, 37]))
            runs[story] = mne.io.RawArray(
                data, run_info, first_samp=first_samp, verbose=False
            )
        elif what == "epochs":
            n_epochs = draw(st.integers(1, 3))
            tmin = draw(st.sampled_from([0.0, -0.2, 0.05, -0.01]))
            epochs_data = np.repeat(data[np.newaxis], n_epochs, axis=0)
            epochs_data += rng.standard_normal(epochs_data.shape) * 1e-13
            if values == "zero":
                epochs_data[:] = 0
            runs[story] = mne.EpochsArray(
                epochs_data, run_info, tmin=tmin, verbose=False
            )
        elif what == "array":
            runs[story] = data
        elif what == "features":
            runs[story] = Features(np.zeros((N_TIMES, 1)), SFREQ)
        else:
            runs[story] = None
        meta[story] = dict(
            what=what, n_times=n_times, values=values, rate=rate, n_bads=n_bads
        )
    return runs, meta


def _meg_run_valid(meta, epochs_tmin=None):
    if meta["what"] not in ("raw", "epochs"):
        return False
    if meta["values"] in ("nan", "inf", "zero", "const"):
        return False
    if abs(meta["rate"] - SFREQ) > 1e-6 * SFREQ or meta["n_bads"] == N_CHANNELS:
        return False
    return True


@settings(BASE, max_examples=150)
@given(
    subject=st.one_of(st.sampled_from(["A", "", "taken"]), WRONG_TYPES),
    data=st.data(),
    forward_kind=st.sampled_from(["forward"] * 5 + ["none", "str", "free"]),
)
def test_add_meg(toy_forward, meg_info, subject, data, forward_kind):
    """add_meg stores finite runs cut to the features, or names subject/runs/forward."""
    runs, meta = data.draw(meg_runs(meg_info))
    ds = _base_dataset(2)
    ds.add_fmri(
        "taken", {"s0": np.zeros((2, 1)) + [[1.0], [2.0]]}, 1.0, np.ones((1, 3))
    )
    forward = {
        "forward": toy_forward,
        "none": None,
        "str": "fwd.fif",
        "free": _free_forward(toy_forward),
    }[forward_kind]
    out, err = _call(ds.add_meg, subject, runs, forward)
    valid = (
        isinstance(subject, str)
        and subject not in ("", "taken")
        and isinstance(runs, dict)
        and runs
        and forward_kind == "forward"
        and all(story in ("s0", "s1") for story in runs)
        and all(_meg_run_valid(meta[s]) for s in runs)
    )
    if err is None:
        meg = ds.meg(subject)
        assert set(meg.runs) == set(runs)
        n_channels = meg.gain.shape[0]
        assert meg.gain.shape[1] == sum(len(v) for v in meg.vertices)
        assert len(meg.info["ch_names"]) == n_channels
        for story, run in meg.runs.items():
            assert run.dtype == np.float32  # MEG runs are kept in float32
            assert run.shape[-2:] == (n_channels, N_TIMES)
            assert np.all(np.isfinite(run)), "a non-finite MEG run was stored"
            inst = runs[story]
            picks = [inst.ch_names.index(c) for c in meg.info["ch_names"]]
            if isinstance(inst, mne.BaseEpochs):
                onset = int(np.argmin(np.abs(inst.times)))
                source = inst.get_data(picks=picks)[..., onset:]
            else:
                source = inst.get_data(picks=picks)
            m = min(N_TIMES, source.shape[-1])
            np.testing.assert_array_equal(
                run[..., :m], source[..., :m].astype(np.float32)
            )
            assert np.any(run), "an all-zero MEG run was stored"
        if meg.noise_ceiling is not None:
            assert meg.noise_ceiling.shape == (n_channels,)
            assert np.all(np.isfinite(meg.noise_ceiling))
        return
    assert subject not in ds.meg_subjects or subject == "taken"
    non_finite = valid is False and (
        isinstance(subject, str)
        and subject not in ("", "taken")
        and forward_kind == "forward"
        and isinstance(runs, dict)
        and runs
        and all(
            story in ("s0", "s1")
            and meta[story]["what"] in ("raw", "epochs")
            and abs(meta[story]["rate"] - SFREQ) <= 1e-6 * SFREQ
            and meta[story]["n_bads"] < N_CHANNELS
            and meta[story]["n_times"] >= N_TIMES - 1
            and meta[story]["values"] in ("normal", "nan", "inf")
            for story in runs
        )
        and any(meta[s]["values"] in ("nan", "inf") for s in runs)
    )
    _assert_names(err, {"subject", "runs", "forward"}, non_finite=non_finite)


_FREE = {}


def _free_forward(forward):
    """A copy of ``forward`` that claims free orientations (must be refused)."""
    if "free" not in _FREE:
        fwd = forward.copy()
        fwd["source_ori"] = mne.io.constants.FIFF.FIFFV_MNE_FREE_ORI
        _FREE["free"] = fwd
    return _FREE["free"]


# =========================================================================== add_fmri
@st.composite
def fmri_args(draw):
    """Array runs with a mapping, or SourceEstimate runs, or junk."""
    kind = draw(st.sampled_from(["arrays"] * 4 + ["stc", "wrong", "mixed"]))
    n_targets = draw(st.integers(0, 4))
    mapping_kind = draw(
        st.sampled_from(["dense"] * 3 + ["sparse", "none", "1d", "junk", "random"])
    )
    if mapping_kind == "dense":
        mapping = np.ones((n_targets, 5))
    elif mapping_kind == "sparse":
        mapping = sparse.random(n_targets, 5, density=0.5, random_state=0, format="csr")
    elif mapping_kind == "none":
        mapping = None
    elif mapping_kind == "1d":
        mapping = np.ones(5)
    elif mapping_kind == "random":
        mapping = draw(arrays(min_dims=2, max_dims=2, min_side=0, max_side=4))
    else:
        mapping = draw(WRONG_TYPES)
    if kind == "wrong":
        return draw(WRONG_TYPES), mapping, n_targets, kind
    stories = draw(
        st.lists(st.sampled_from(["s0", "s1", "unknown"]), min_size=0, unique=True)
    )
    runs = {}
    for k, story in enumerate(stories):
        if kind == "stc" or (kind == "mixed" and k == 0):
            n_trs = draw(st.integers(1, 4))
            data = draw(st.sampled_from(["normal", "nan"]))
            values = np.random.default_rng(k).standard_normal((6, n_trs))
            if data == "nan":
                values[0, 0] = np.nan
            tstep = draw(st.sampled_from([1.0, 0.5]))
            runs[story] = mne.SourceEstimate(
                values, [np.arange(3), np.arange(3)], tmin=0.0, tstep=tstep
            )
        else:
            shape = draw(
                st.sampled_from(
                    [(2, n_targets), (3, n_targets), (0, n_targets), (2, n_targets + 1)]
                )
            )
            runs[story] = draw(
                st.one_of(
                    arrays(shape=shape),
                    hnp.arrays(np.float64, shape, elements=st.floats(-10, 10)),
                    hnp.arrays(np.float64, shape, elements=st.floats(-10, 10)),
                    arrays(min_dims=0, max_dims=3, max_side=3),
                )
            )
    return runs, mapping, n_targets, kind


TR = st.one_of(st.sampled_from([1.0, 0.5, 2.0]), NUMBERS, WRONG_TYPES)
FMRI_TMIN = st.one_of(
    st.none(),
    st.sampled_from([0.0, -0.5, 1.0, np.nan, np.inf, -5.0, 30.0]),
    st.dictionaries(st.sampled_from(["s0", "s1"]), st.sampled_from([0.0, 0.5, np.nan])),
    WRONG_TYPES,
)
CEILING = st.one_of(
    st.none(),
    st.integers(0, 4).flatmap(
        lambda n: hnp.arrays(
            np.float64, n, elements=st.floats(-0.5, 1.5) | st.just(np.nan)
        )
    ),
    WRONG_TYPES,
)


def _stored_runs_ok(fmri, runs):
    for story, run in fmri.runs.items():
        source = runs[story]
        source = source.data.T if isinstance(source, mne.SourceEstimate) else source
        assert run.dtype == np.float64
        assert run.ndim == 2
        np.testing.assert_array_equal(run, np.asarray(source, dtype=np.float64))
        assert np.all(np.isfinite(run)), "a non-finite BOLD run was stored"
        assert math.isfinite(fmri.tmin[story]), "a non-finite tmin was stored"
        assert len(fmri.tr_times(story)) == run.shape[0]
        assert np.all(np.isfinite(fmri.tr_times(story)))


@settings(BASE, max_examples=300)
@given(
    subject=st.one_of(st.sampled_from(["F", "F", "", "taken"]), WRONG_TYPES),
    args=fmri_args(),
    tr=TR,
    tmin=FMRI_TMIN,
    noise_ceiling=CEILING,
)
def test_add_fmri(subject, args, tr, tmin, noise_ceiling):
    """add_fmri stores finite (n_trs, n_targets) runs or names the bad argument."""
    runs, mapping, n_targets, kind = args
    ds = _base_dataset(2)
    ds.add_fmri("taken", {"s0": np.ones((2, 1))}, 1.0, np.ones((1, 3)))
    out, err = _call(
        ds.add_fmri, subject, runs, tr, mapping, tmin, noise_ceiling=noise_ceiling
    )
    if err is None:
        fmri = ds.fmri(subject)
        assert set(fmri.runs) == set(runs)
        assert math.isfinite(fmri.tr)
        assert fmri.tr > 0
        _stored_runs_ok(fmri, runs)
        widths = {run.shape[1] for run in fmri.runs.values()}
        assert len(widths) == 1
        if fmri.mapping is not None:
            assert fmri.mapping.shape[0] == widths.pop()
            assert np.all(np.isfinite(fmri.mapping.data))
        if fmri.noise_ceiling is not None:
            assert np.all((fmri.noise_ceiling >= 0) & (fmri.noise_ceiling <= 1))
        return
    assert subject not in ds.fmri_subjects or subject == "taken"
    names = {"subject", "runs", "tr", "mapping", "tmin", "noise_ceiling"}
    _assert_names(err, names, non_finite=_fmri_non_finite_only(args, tr, tmin))


def _fmri_non_finite_only(args, tr, tmin):
    """Whether the only fault of an array-run call is a NaN/Inf tmin or run value."""
    runs, mapping, n_targets, kind = args
    if kind != "arrays" or not isinstance(runs, dict) or not runs:
        return False
    if not _positive(tr) or not isinstance(mapping, np.ndarray) or mapping.ndim != 2:
        return False
    if mapping.shape != (n_targets, 5):
        return False
    if any(s not in ("s0", "s1") for s in runs):
        return False
    for run in runs.values():
        if run.dtype.kind != "f" or run.ndim != 2 or run.shape[0] == 0:
            return False
        if run.shape[1] != n_targets:
            return False
    run_nan = any(_has_non_finite(run) for run in runs.values())
    tmin_values = (
        [0.0]
        if tmin is None
        else list(tmin.values())
        if isinstance(tmin, dict)
        else [tmin]
    )
    if isinstance(tmin, dict) and set(runs) - set(tmin):
        return False
    if not all(_is_real_number(t) for t in tmin_values):
        return False
    tmin_nan = any(not math.isfinite(t) for t in tmin_values)
    if tmin_nan:
        return True
    return run_nan and all(
        t > -tr - 1e-9 and t + (run.shape[0] - 1) * tr < N_TIMES / SFREQ + tr
        for t, run in zip(
            [
                tmin.get(s, 0.0) if isinstance(tmin, dict) else tmin_values[0]
                for s in runs
            ],
            runs.values(),
            strict=True,
        )
    )


# ===================================================================== FusionEncoder
TINY = dict(
    sfreq=SFREQ,
    d_model=4,
    n_heads=2,
    n_layers=1,
    dim_feedforward=4,
    context=0.5,
    input_kernel=0.1,
    linear_lags=0.1,
    spacing="ico3",
    segment_length=1.0,
    burn_in=0.2,
    batch_size=2,
    max_epochs=1,
    validation=None,
    device="cpu",
    source_refit=False,
    random_state=0,
)
POSITIVE = ("sfreq", "context", "segment_length", "lr", "input_kernel")
POSITIVE_INT = (
    "d_model",
    "n_heads",
    "n_layers",
    "dim_feedforward",
    "batch_size",
    "max_epochs",
    "patience",
)
NON_NEGATIVE = (
    "burn_in",
    "weight_decay",
    "meg_weight",
    "fmri_weight",
    "smoothness",
    "spatial_smoothness",
    "source_prior",
    "linear_lags",
)
FRACTION = ("dropout", "fmri_prior", "overlap")
PARAM_VALUES = {
    **dict.fromkeys(POSITIVE + POSITIVE_INT + NON_NEGATIVE + FRACTION, NUMBERS),
    "warmup_epochs": NUMBERS,
    "loss": st.sampled_from(["likelihood", "correlation", "mse", "", None, 1]),
    "readout": st.sampled_from(["map", "trained", "MAP", None, 0]),
    "readout_snr": st.one_of(
        st.sampled_from(["auto", "maps", "Auto"]), NUMBERS, WRONG_TYPES
    ),
    "snr": st.one_of(st.none(), st.just("auto"), NUMBERS),
    "spacing": st.sampled_from(["ico3", "ico4", "oct5", "ico9", "", None, 4]),
    "device": st.sampled_from(["cpu", "auto", "cuda", "cuda:1", "gpu", "", None, 0]),
    "validation": st.one_of(
        st.none(),
        NUMBERS,
        st.lists(st.sampled_from(["s0", "s1", "s9"]), max_size=2, unique=True),
        st.just(("s1",)),
        st.just("s1"),
    ),
    "random_state": st.one_of(
        st.none(),
        st.integers(-3, 2**33),
        st.just(np.random.RandomState(0)),
        st.sampled_from([1.5, "0", [1, 2]]),
    ),
}


class _Stop(Exception):
    """Raised in place of the expensive part of fit once every check has passed."""


def _param_valid(params, stories):
    """The oracle: whether ``params`` (TINY plus one or two changes) may be fitted."""
    p = {**FusionEncoder().get_params(), **params}
    bad = set()
    for name in POSITIVE:
        if not _positive(p[name]):
            bad.add(name)
    for name in POSITIVE_INT:
        if not (isinstance(p[name], numbers.Integral) and _positive(p[name])):
            bad.add(name)
    warm = p["warmup_epochs"]
    if not (
        isinstance(warm, numbers.Integral) and not isinstance(warm, bool) and warm >= 0
    ):
        bad.add("warmup_epochs")
    for name in NON_NEGATIVE:
        if not (_finite_number(p[name]) and p[name] >= 0):
            bad.add(name)
    for name in FRACTION:
        if not (_finite_number(p[name]) and 0 <= p[name] < 1):
            bad.add(name)
    if not bad & {"d_model", "n_heads"} and p["d_model"] % p["n_heads"]:
        bad |= {"d_model", "n_heads"}
    if not bad & {"burn_in", "segment_length"} and p["burn_in"] >= p["segment_length"]:
        bad |= {"burn_in", "segment_length"}
    shared = {"burn_in", "segment_length", "overlap"}
    if not bad & shared and p["burn_in"] > p["overlap"] * p["segment_length"] + 1e-9:
        bad |= shared  # samples after a story's first excerpt never scored
    if p["sfreq"] != SFREQ:
        bad.add("sfreq")
    if p["loss"] not in ("likelihood", "correlation"):
        bad.add("loss")
    if p["readout"] not in ("map", "trained"):
        bad.add("readout")
    snr = p["snr"] if p["snr"] is not None else p["readout_snr"]
    if not (snr in ("auto", "maps") if isinstance(snr, str) else _positive(snr)):
        bad.add("snr" if p["snr"] is not None else "readout_snr")
    if p["spacing"] not in ("ico3", "ico4", "ico5", "oct5", "oct6"):
        bad.add("spacing")
    if p["device"] not in ("cpu", "auto") and not (
        isinstance(p["device"], str)
        and p["device"].startswith("cuda")
        and torch.cuda.is_available()
    ):
        bad.add("device")
    val = p["validation"]
    if val is None:
        pass
    elif isinstance(val, list | tuple):
        if any(s not in stories for s in val) or set(val) >= set(stories):
            bad.add("validation")
    elif not (_is_real_number(val) and (val == 0 or 0 < val < 1)):
        bad.add("validation")
    rs = p["random_state"]
    if not (
        rs is None
        or isinstance(rs, np.random.RandomState)
        or (isinstance(rs, numbers.Integral) and 0 <= rs < 2**32)
    ):
        bad.add("random_state")
    return bad


@pytest.fixture(scope="module")
def tiny_meg_dataset(toy_forward, meg_info):
    ds = _base_dataset(2)
    rng = np.random.default_rng(1)
    runs = {
        s: mne.io.RawArray(
            rng.standard_normal((N_CHANNELS, N_TIMES)) * 1e-12, meg_info, verbose=False
        )
        for s in ds.stories
    }
    return ds.add_meg("A", runs, toy_forward)


@settings(BASE, max_examples=300)
@given(
    changes=st.dictionaries(
        st.sampled_from(sorted(PARAM_VALUES)), st.none(), min_size=1, max_size=2
    ).flatmap(lambda keys: st.fixed_dictionaries({k: PARAM_VALUES[k] for k in keys}))
)
def test_encoder_params(tiny_meg_dataset, toy_forward, changes):
    """fit refuses an invalid parameter naming it, before any expensive work."""
    from mne_fusion.anatomy._source_space import SPACINGS
    from mne_fusion.utils import _check_option

    def fake_source_space(spacing, subjects_dir=None, verbose=None):
        _check_option("spacing", spacing, SPACINGS)
        return toy_forward["src"]

    def stop(*args, **kwargs):
        raise _Stop

    params = {**TINY, **changes}
    bad = _param_valid(params, tiny_meg_dataset.stories)
    enc = FusionEncoder(**params)
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            mock.patch.object(_estimator, "template_source_space", fake_source_space)
        )
        stack.enter_context(mock.patch.object(_estimator, "prepare", stop))
        try:
            _, err = _call(enc.fit, tiny_meg_dataset)
        except _Stop:
            err = None
    if err is None:
        assert not bad, f"fit accepted invalid {sorted(bad)} ({changes})"
        return
    assert bad, f"valid parameters refused: {changes}: {err!r}"
    # NaN/Inf where a float is expected; a float where an int is, is a type error
    floats = {
        name
        for name, v in changes.items()
        if _is_real_number(v)
        and not math.isfinite(v)
        and name not in (*POSITIVE_INT, "warmup_epochs", "random_state")
    }
    non_finite = bool(floats) and bad == floats
    _assert_names(err, bad, non_finite=non_finite)


# ====================================================================== file reader
@pytest.fixture(scope="module")
def saved_encoder(tmp_path_factory, meg_info):
    """A tiny fitted encoder (one epoch, ico3 template) saved once for the module."""
    from mne_fusion.anatomy import template_forward

    root = tmp_path_factory.mktemp("enc")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNE_DATA", str(root))
        fwd = template_forward(meg_info, spacing="ico3", bem="sphere")
    rng = np.random.default_rng(2)
    ds = _base_dataset(2)
    runs = {
        s: mne.io.RawArray(
            rng.standard_normal((N_CHANNELS, N_TIMES)) * 1e-12, meg_info, verbose=False
        )
        for s in ds.stories
    }
    ds.add_meg("A", runs, fwd)
    bold = {s: rng.standard_normal((3, 2)) for s in ds.stories}
    mapping = sparse.random(2, sum(len(s["vertno"]) for s in fwd["src"]), 0.01, "csr")
    ds.add_fmri("M", bold, tr=1.0, mapping=mapping)
    params = {**TINY, "readout": "trained", "segment_length": 2.0, "fmri_weight": 0}
    enc = FusionEncoder(**params).fit(ds)
    fname = root / "enc.pt"
    enc.save(fname)
    state = torch.load(fname, weights_only=True)
    return dict(fname=fname, state=state, params=enc.get_params())


def _read(fname):
    enc, err = _call(read_fusion_encoder, fname)
    if err is not None:
        _assert_names(err, {str(fname), fname.name})
    return enc, err


def test_read_valid_file(saved_encoder):
    enc = read_fusion_encoder(saved_encoder["fname"])
    assert enc.get_params() == saved_encoder["params"]


@settings(BASE, max_examples=40)
@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b),
        st.binary(max_size=300).map(lambda b: b"\x80\x02" + b),
        st.text(max_size=200).map(lambda t: t.encode()),
        st.just(b""),
    )
)
def test_read_garbage_file(tmp_path_factory, content):
    """Random bytes, empty files and text are refused with an error naming the file."""
    fname = tmp_path_factory.mktemp("garbage") / "enc.pt"
    fname.write_bytes(content)
    enc, err = _read(fname)
    assert err is not None, "garbage was read as an encoder"


def test_read_missing_or_wrong_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        read_fusion_encoder(tmp_path / "nothing.pt")
    for fname in (None, 3, ["a.pt"]):
        with pytest.raises(TypeError, match="fname"):
            read_fusion_encoder(fname)
    with pytest.raises((ValueError, IsADirectoryError), match=tmp_path.name):
        read_fusion_encoder(tmp_path)


TENSORS = st.builds(
    lambda shape, seed: torch.as_tensor(
        np.random.default_rng(seed).standard_normal(shape)
    ),
    hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
    st.integers(0, 100),
)
# Bounded numbers: a huge size in network_config would make the reader allocate it.
JUNK = st.one_of(
    st.none(),
    st.integers(-2, 5),
    st.floats(-10, 10) | st.sampled_from([np.nan, np.inf]),
    st.text(max_size=5),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    TENSORS,
)


@settings(BASE, max_examples=25)
@given(
    state=st.dictionaries(
        st.sampled_from(["format", "version", "params", "meg", "x", "state_dict"]),
        JUNK,
        max_size=5,
    ),
    tagged=st.booleans(),
)
def test_read_random_dict(tmp_path_factory, state, tagged):
    """torch-saved dicts that are not encoders are refused naming the file."""
    if tagged:
        state = {**state, "format": "mne-fusion-encoder", "version": 3}
    fname = tmp_path_factory.mktemp("dict") / "enc.pt"
    torch.save(state, fname)
    enc, err = _read(fname)
    assert err is not None, "a random dict was read as an encoder"


def _mutate(state, path, value):
    """Return a copy of ``state`` with ``path`` removed (value is _DROP) or replaced."""
    out = dict(state)
    node = out
    for key in path[:-1]:
        node[key] = dict(node[key])
        node = node[key]
    if value is _DROP:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


_DROP = object()


def _paths(state):
    """Every key path of the saved state down to the subjects' and config's entries."""
    paths = [(k,) for k in state if k not in ("format", "version")]
    for key in ("network_config", "params"):
        paths += [(key, k) for k in state[key]]
    for kind in ("meg", "fmri"):
        for name, meta in state[kind].items():
            paths += [(kind, name, k) for k in meta]
    paths += [("state_dict", k) for k in list(state["state_dict"])[:6]]
    return paths


@settings(BASE, max_examples=40)
@given(data=st.data())
def test_read_missing_keys(saved_encoder, tmp_path_factory, data):
    """A saved state with a key removed is refused with an error naming the file."""
    state = saved_encoder["state"]
    path = data.draw(st.sampled_from(_paths(state)), label="path")
    if path[0] == "params" or path in (("readout_rank",), ("readout_prior",)):
        # a missing parameter takes its default, a missing read-out rank or prior
        # is None: files written before they existed
        assume(False)
    fname = tmp_path_factory.mktemp("missing") / "enc.pt"
    torch.save(_mutate(state, path, _DROP), fname)
    enc, err = _read(fname)
    assert err is not None, f"a file without {path} was read"


# no shrinking: each example reads a file; the failing path and value are plain
@settings(BASE, max_examples=40, phases=[Phase.explicit, Phase.generate])
@given(data=st.data(), value=JUNK)
def test_read_wrong_values(saved_encoder, tmp_path_factory, data, value):
    """A value of a wrong type or shape in a saved state is refused naming the file."""
    state = saved_encoder["state"]
    path = data.draw(st.sampled_from(_paths(state)), label="path")
    old = state
    for key in path:
        old = old[key]
    assume(type(old) is not type(value) or isinstance(value, torch.Tensor))
    if isinstance(old, torch.Tensor) and isinstance(value, torch.Tensor):
        assume(old.shape != value.shape)
    fname = tmp_path_factory.mktemp("wrong") / "enc.pt"
    torch.save(_mutate(state, path, value), fname)
    enc, err = _read(fname)
    if err is None:
        # accepted: then the encoder must be usable as saved
        assert enc.get_params() == {
            **saved_encoder["params"],
            **({path[1]: value} if path[0] == "params" else {}),
        }
