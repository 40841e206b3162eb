"""Feature extractor plugins installed through the entry-point group."""

import textwrap

import numpy as np
import pytest

from mne_fusion import FusionDataset
from mne_fusion.features import (
    Envelope,
    Stimulus,
    available_extractors,
    extract,
    get_extractor,
)
from mne_fusion.features._registry import ENTRY_POINT_GROUP, _registry

BUILTINS = ["envelope", "mel", "phonemes", "word_onsets", "word_rate", "lm"]

PLUGIN = '''
import numpy as np

from mne_fusion.features import FeatureExtractor


class Loudness(FeatureExtractor):
    """Root-mean-square audio level per sample period, in decibels."""

    name = "loudness"
    requires = ("audio",)

    def __init__(self, floor=1e-6):
        self.floor = floor

    def compute(self, stimulus, sfreq):
        n_times = stimulus.n_times(sfreq)
        edges = np.round(np.arange(n_times + 1) * stimulus.audio_sfreq / sfreq)
        edges = np.minimum(edges.astype(int), stimulus.audio.size)
        power = [np.mean(stimulus.audio[a:b] ** 2) for a, b in zip(edges, edges[1:])]
        return 10 * np.log10(np.maximum(power, self.floor))


class Envelope(Loudness):
    name = "envelope"


class NotAnExtractor:
    name = "not_an_extractor"


class Unfinished(FeatureExtractor):
    name = "unfinished"
'''


def _install(site, dist, module, entries, source=PLUGIN):
    """Install a distribution into ``site`` the way pip lays it out."""
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8"
    )
    lines = "\n".join(f"{name} = {value}" for name, value in entries.items())
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{lines}\n", encoding="utf-8"
    )


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site-packages folder on sys.path; the registry forgets it afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    monkeypatch.undo()
    _registry.cache_clear()


def _stimulus(sfreq=8000):
    times = np.arange(2 * sfreq) / sfreq
    audio = np.where(times < 1.0, 0.1, 1.0) * np.sin(2 * np.pi * 500.0 * times)
    return Stimulus(audio, sfreq)


def test_builtins_come_first():
    """Built-ins are registered in a fixed order before any plugin."""
    assert available_extractors(refresh=True)[:6] == BUILTINS
    assert isinstance(get_extractor("envelope"), Envelope)
    with pytest.raises(TypeError, match="refresh must be an instance of bool"):
        available_extractors(refresh=1)
    with pytest.raises(TypeError, match="name must be an instance of str"):
        get_extractor(Envelope)


def test_plugin_entry_point(site):
    """An installed plugin appears by name, works, and feeds a FusionDataset."""
    _install(
        site,
        "mne-fusion-loudness",
        "fusion_loudness",
        {"loudness": "fusion_loudness:Loudness"},
    )
    # the list is cached until refreshed
    assert "loudness" not in available_extractors()
    names = available_extractors(refresh=True)
    assert names == BUILTINS + ["loudness"]
    extractor = get_extractor("loudness", floor=1e-3)
    assert extractor.parameters == {"floor": 1e-3}
    feats = extract(["envelope", "loudness"], _stimulus(), sfreq=50.0)
    assert feats.names == ["envelope", "loudness"]
    assert feats.extractors == ["envelope", "loudness"]
    loudness = feats.pick("loudness").data[:, 0]
    # RMS of a sine of amplitude a is a / sqrt(2): -23.0 dB then -3.0 dB
    np.testing.assert_allclose(
        loudness[:50], 20 * np.log10(0.1 / np.sqrt(2)), atol=0.01
    )
    np.testing.assert_allclose(loudness[50:], 20 * np.log10(1 / np.sqrt(2)), atol=0.01)
    dataset = FusionDataset()
    dataset.add_stimulus("story", feats)
    np.testing.assert_array_equal(dataset.stimulus("story").data, feats.data)
    assert dataset.stimulus("story").names == ["envelope", "loudness"]


def test_broken_plugins_only_warn(site):
    """Import errors, wrong objects and taken names warn; the rest still loads."""
    _install(
        site,
        "mne-fusion-broken",
        "fusion_broken",
        {"broken": "fusion_broken:Loudness"},
        source="raise ImportError('needs a package that is not installed')\n",
    )
    _install(
        site,
        "mne-fusion-exits",
        "fusion_exits",
        {"exits": "fusion_exits:Loudness"},
        source="import sys\nsys.exit('no GPU found')\n",
    )
    _install(
        site,
        "mne-fusion-odd",
        "fusion_odd",
        {
            "envelope": "fusion_odd:Envelope",
            "not_an_extractor": "fusion_odd:NotAnExtractor",
            "renamed": "fusion_odd:Loudness",
            "unfinished": "fusion_odd:Unfinished",
            "loudness": "fusion_odd:Loudness",
        },
    )
    # mne-fusion's own metadata listing a built-in is no duplicate
    _install(
        site,
        "mne-fusion-self",
        "fusion_self",
        {"mel": "mne_fusion.features._acoustic:Mel"},
        source="",
    )
    with pytest.warns(RuntimeWarning) as record:
        names = available_extractors(refresh=True)
    messages = "\n".join(str(w.message) for w in record)
    assert "'broken' (" in messages
    assert "failed to load and is skipped: ImportError: needs a package" in messages
    assert "'exits' (" in messages  # sys.exit at import is no Exception
    assert "failed to load and is skipped: SystemExit: no GPU found" in messages
    assert "'envelope' from 'fusion_odd:Envelope' of mne-fusion-odd is ignored" in (
        messages
    )
    assert "'not_an_extractor' (" in messages
    assert "is not a FeatureExtractor subclass" in messages
    assert "has name='loudness', not the entry-point name" in messages
    assert "'unfinished' (" in messages
    assert "does not implement ['compute']" in messages
    assert len(record) == 6
    assert names == BUILTINS + ["loudness"]
    # the first "envelope" (the built-in) wins
    assert type(get_extractor("envelope")) is Envelope
    with pytest.raises(
        ValueError, match=r"Unknown feature extractor 'broken'.*loudness"
    ):
        get_extractor("broken")


def test_subclass_methods_get_the_base_parameter_docs():
    """compute/feature_names without a Parameters section get the base's."""
    from mne_fusion.features import FeatureExtractor

    class Level(FeatureExtractor):
        name = "level"

        def compute(self, stimulus, sfreq):
            """Compute the level (100% of the audio)."""

        def feature_names(self, n_features):
            """Name the column.

            Parameters
            ----------
            n_features : int
                Ignored.
            """

    doc = Level.compute.__doc__
    assert doc.startswith("Compute the level (100% of the audio).\n\nParameters\n")
    assert "stimulus : Stimulus" in doc
    assert "data : array" in doc
    # a docstring with its own parameters is left alone
    assert "n_features : int\n                Ignored." in Level.feature_names.__doc__
