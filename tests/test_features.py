"""Stimulus parsing, built-in extractors and the extraction front end."""

import numpy as np
import pytest
from praatio import textgrid as praat_textgrid
from praatio.data_classes.interval_tier import IntervalTier
from scipy.io import wavfile

from mne_fusion.features import (
    Envelope,
    FeatureExtractor,
    Features,
    LanguageModel,
    Mel,
    Phonemes,
    Stimulus,
    WordOnsets,
    WordRate,
    _acoustic,
    extract,
    get_extractor,
)
from mne_fusion.features._acoustic import _hz_to_mel, _mel_filterbank
from mne_fusion.features._linguistic import ARPABET

# A TextGrid as the LeBel / Moth corpus (OpenNeuro ds003020) ships them: long text
# format, phone tier first, upper-case phones with stress digits, lower-case words,
# "sp" and empty silences, bracketed noises, a first interval that starts after 0.
LEBEL_TEXTGRID = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0.0124716553288
xmax = 2.5
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "{phone}"
        xmin = 0.0124716553288
        xmax = 2.5
        intervals: size = 8
        intervals [1]:
            xmin = 0.0124716553288
            xmax = 0.5
            text = ""
        intervals [2]:
            xmin = 0.5
            xmax = 0.61
            text = "S"
        intervals [3]:
            xmin = 0.61
            xmax = 0.83
            text = "OW1"
        intervals [4]:
            xmin = 0.83
            xmax = 1.1
            text = "sp"
        intervals [5]:
            xmin = 1.1
            xmax = 1.17
            text = "W"
        intervals [6]:
            xmin = 1.17
            xmax = 1.29
            text = "IY0"
        intervals [7]:
            xmin = 1.29
            xmax = 1.5
            text = "ns"
        intervals [8]:
            xmin = 1.5
            xmax = 2.5
            text = ""
    item [2]:
        class = "IntervalTier"
        name = "{word}"
        xmin = 0.0124716553288
        xmax = 2.5
        intervals: size = 6
        intervals [1]:
            xmin = 0.0124716553288
            xmax = 0.5
            text = "sp"
        intervals [2]:
            xmin = 0.5
            xmax = 0.83
            text = "so"
        intervals [3]:
            xmin = 0.83
            xmax = 1.1
            text = ""
        intervals [4]:
            xmin = 1.1
            xmax = 1.29
            text = "we"
        intervals [5]:
            xmin = 1.29
            xmax = 1.5
            text = "{{LG}}"
        intervals [6]:
            xmin = 1.5
            xmax = 2.5
            text = "sp"
"""

WORDS = [(0.5, 0.83, "so"), (1.1, 1.29, "we")]
PHONES = [(0.5, 0.61, "S"), (0.61, 0.83, "OW1"), (1.1, 1.17, "W"), (1.17, 1.29, "IY0")]


def _write_textgrid(path, phone="phone", word="word"):
    path.write_text(LEBEL_TEXTGRID.format(phone=phone, word=word), encoding="utf-8")
    return path


def _assert_alignment(alignment, rows):
    onset, offset, label = zip(*rows, strict=True)
    np.testing.assert_allclose(alignment.onset, onset, rtol=0, atol=1e-12)
    np.testing.assert_allclose(alignment.offset, offset, rtol=0, atol=1e-12)
    assert alignment.label == label


def _random_alignment(rng, duration, n, labels):
    """Adjacent intervals with random durations, random labels."""
    edges = np.sort(rng.uniform(0.05, duration - 0.05, 2 * n))
    return [
        (edges[2 * k], edges[2 * k + 1], labels[rng.integers(len(labels))])
        for k in range(n)
    ]


@pytest.mark.parametrize(("phone", "word"), [("phone", "word"), ("Phones", "WORD")])
def test_lebel_textgrid_layout(tmp_path, phone, word):
    """Moth TextGrids parse: silences, noises and empty labels are dropped."""
    path = _write_textgrid(tmp_path / "story.TextGrid", phone, word)
    stim = Stimulus(textgrid=path, name="story")
    _assert_alignment(stim.words, WORDS)
    _assert_alignment(stim.phones, PHONES)
    # without audio the stimulus ends with the TextGrid
    assert stim.duration == pytest.approx(2.5)
    assert "2 words" in repr(stim)
    assert "'story'" in repr(stim)
    # a praatio object gives the same alignments as the file
    grid = praat_textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    same = Stimulus(textgrid=grid)
    np.testing.assert_array_equal(same.words.onset, stim.words.onset)
    assert same.phones.label == stim.phones.label


def test_textgrid_with_overlapping_intervals(tmp_path):
    """Aligners' rounding leaves tiny overlaps that praatio refuses: the intervals are
    read as they are (as a table's may overlap), with a warning; UTF-16 too."""
    text = LEBEL_TEXTGRID.format(phone="phone", word="word")
    # "we" ends 1 ms after the noise after it starts
    text = text.replace("xmax = 1.29\n            text = \"we\"", "xmax = 1.291\n"
                        "            text = \"we\"")  # fmt: skip
    assert "1.291" in text
    for encoding in ("utf-8", "utf-16"):
        path = tmp_path / f"{encoding}.TextGrid"
        path.write_text(text, encoding=encoding)
        with pytest.warns(RuntimeWarning, match=r"overlap.*read as they are"):
            stim = Stimulus(textgrid=path)
        _assert_alignment(stim.words, [(0.5, 0.83, "so"), (1.1, 1.291, "we")])
        _assert_alignment(stim.phones, PHONES)
        assert stim.duration == pytest.approx(2.5)


def test_textgrid_errors(tmp_path):
    """A missing tier names the tiers there are; None skips a tier."""
    path = _write_textgrid(tmp_path / "story.TextGrid", "segments", "word")
    with pytest.raises(
        ValueError, match=r"no tier named 'phone'.*\['segments', 'word'\]"
    ):
        Stimulus(textgrid=path)
    stim = Stimulus(textgrid=path, phone_tier=None)
    assert stim.phones is None
    assert len(stim.words) == 2
    assert len(Stimulus(textgrid=path, phone_tier="segments").phones) == 4
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Stimulus(textgrid=tmp_path / "missing.TextGrid")
    (tmp_path / "junk.TextGrid").write_text("not a TextGrid", encoding="utf-8")
    with pytest.raises(ValueError, match="Could not read .*junk.TextGrid.* as a Praat"):
        Stimulus(textgrid=tmp_path / "junk.TextGrid")
    empty = path.read_text(encoding="utf-8").replace("xmax = 1.17", "xmax = 1.1")
    (tmp_path / "empty.TextGrid").write_text(empty, encoding="utf-8")
    with pytest.raises(ValueError, match=r"as a Praat TextGrid.*start time .*\(1.1\)"):
        Stimulus(textgrid=tmp_path / "empty.TextGrid")
    with pytest.raises(TypeError, match="textgrid must be an instance of a path"):
        Stimulus(textgrid=3)
    with pytest.raises(ValueError, match="either as a textgrid or as words"):
        Stimulus(textgrid=path, words=WORDS)
    grid = praat_textgrid.Textgrid()
    grid.addTier(IntervalTier("word", [(0.1, 0.2, "a")], 0, 1))
    grid.addTier(praat_textgrid.PointTier("phone", [(0.1, "x")], 0, 1))
    with pytest.raises(ValueError, match="is a TextTier, expected an IntervalTier"):
        Stimulus(textgrid=grid)


def test_alignment_tables():
    """Rows, column mappings and data frames give the same sorted alignment."""
    rows = list(reversed(WORDS)) + [(1.3, 1.4, "sp")]
    columns = {
        "onset": [r[0] for r in rows],
        "offset": [r[1] for r in rows],
        "label": [r[2] for r in rows],
    }
    for table in (rows, columns):
        _assert_alignment(Stimulus(words=table).words, WORDS)
    pd = pytest.importorskip("pandas")
    _assert_alignment(Stimulus(words=pd.DataFrame(columns)).words, WORDS)
    # an empty cell (read as NaN or None) is a silence, not the word "nan"
    gaps = {k: [*v, 1.5 if k == "onset" else 1.6 if k == "offset" else np.nan]
            for k, v in columns.items()}  # fmt: skip
    _assert_alignment(Stimulus(words=pd.DataFrame(gaps)).words, WORDS)
    _assert_alignment(Stimulus(words=[*rows, (1.5, 1.6, None)]).words, WORDS)
    with pytest.raises(
        ValueError, match=r"columns 'onset', 'offset' and 'label'.*'label'"
    ):
        Stimulus(words={"onset": [0.1], "offset": [0.2]})
    with pytest.raises(ValueError, match="must end after they start.*'so'"):
        Stimulus(words=[(0.5, 0.5, "so")])
    with pytest.raises(ValueError, match=r"onsets must be >= 0 s"):
        Stimulus(phones=[(-0.1, 0.2, "AA")])
    with pytest.raises(ValueError, match="triples"):
        Stimulus(words=[(0.1, 0.2)])
    with pytest.raises(ValueError, match=r"words must hold \(onset, offset, label\)"):
        Stimulus(words=[("hello", 0.1, 0.4)])
    with pytest.raises(ValueError, match="audio or at least one non-empty"):
        Stimulus(words=[(0.1, 0.2, "sp")])


def test_audio_input(tmp_path, rng):
    """WAV files are read, scaled to [-1, 1) and averaged to mono."""
    sfreq = 8000
    samples = rng.integers(-32768, 32767, (4000, 2), dtype=np.int16)
    wavfile.write(tmp_path / "story.wav", sfreq, samples)
    stim = Stimulus(tmp_path / "story.wav", words=[(0.1, 0.3, "so")])
    assert stim.audio_sfreq == sfreq
    assert stim.duration == pytest.approx(0.5)
    np.testing.assert_allclose(stim.audio, samples.mean(axis=1) / 32768.0, atol=1e-12)
    assert stim.n_times(50.0) == 25
    assert stim.n_times(3.0) == 2
    same = Stimulus(samples / 32768.0, float(sfreq))
    np.testing.assert_allclose(same.audio, stim.audio, atol=1e-12)
    # the integer array scipy.io.wavfile.read returns is scaled as the file is
    np.testing.assert_allclose(Stimulus(samples, sfreq).audio, stim.audio, atol=1e-12)
    # channels first (librosa's and MNE's layout) would be read as 2 samples
    with pytest.raises(ValueError, match=r"got \(2, 4000\): channels first"):
        Stimulus(samples.T / 32768.0, float(sfreq))
    # unsigned 8-bit PCM is centred on 128
    wavfile.write(tmp_path / "byte.wav", sfreq, np.array([0, 128, 255], np.uint8))
    np.testing.assert_allclose(
        Stimulus(tmp_path / "byte.wav").audio, [-1.0, 0.0, 127 / 128], atol=1e-12
    )
    with pytest.raises(ValueError, match="does not match the 8000 Hz"):
        Stimulus(tmp_path / "story.wav", audio_sfreq=16000)
    with pytest.raises(ValueError, match="audio_sfreq is required"):
        Stimulus(samples)
    with pytest.raises(ValueError, match="audio_sfreq must be a positive finite"):
        Stimulus(samples, audio_sfreq=0)
    with pytest.raises(ValueError, match="audio_sfreq was given without audio"):
        Stimulus(audio_sfreq=100.0, words=[(0.1, 0.3, "so")])
    with pytest.raises(ValueError, match="must be WAV files"):
        Stimulus(tmp_path / "story.mp3")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Stimulus(tmp_path / "other.wav")
    with pytest.raises(ValueError, match="shape \\(n_samples,\\)"):
        Stimulus(np.zeros((2, 2, 2)), 100.0)
    with pytest.raises(ValueError, match="audio contains 1 NaN"):
        Stimulus(np.array([0.0, np.nan]), 100.0)


def test_bad_wav_files(tmp_path, rng):
    """Empty, text, truncated and sample-less WAV files: errors name file and fault."""
    good = tmp_path / "good.wav"
    wavfile.write(good, 8000, rng.integers(-99, 99, 800, dtype=np.int16))
    content = good.read_bytes()
    cases = {
        "empty.wav": (b"", r"is empty \(0 bytes\)"),
        "text.wav": (b"onset offset word\n" * 4, "is not a WAV file"),
        "short.wav": (content[:6], "is truncated"),
        "header.wav": (content[:30], "is truncated"),
        "data.wav": (content[: len(content) // 2], "is truncated"),
    }
    for name, (data, fault) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=f"Audio file '.*{name}' {fault}"):
            Stimulus(tmp_path / name)
    wavfile.write(tmp_path / "none.wav", 8000, np.zeros(0, np.int16))
    with pytest.raises(ValueError, match="Audio file '.*none.wav' holds no samples"):
        Stimulus(tmp_path / "none.wav", words=[(0.1, 0.3, "so")])


def test_audio_shorter_than_alignment():
    """Audio that ends before the alignment does is refused."""
    with pytest.raises(
        ValueError, match=r"audio \(1.000 s\) is shorter than the align"
    ):
        Stimulus(np.zeros(1000), 1000.0, words=[(0.5, 1.2, "late")])
    # within the tolerance of aligners' rounding the pair is accepted
    assert Stimulus(np.zeros(1000), 1000.0, words=[(0.5, 1.005, "ok")]).duration == 1


@pytest.mark.parametrize(
    ("audio_sfreq", "sfreq"),
    [(16000, 100.0), (22050, 60.0), (44100, 600.614990234375), (44100, 50.86)],
)
def test_envelope_recovers_modulator(audio_sfreq, sfreq):
    """The envelope of an amplitude-modulated tone is its modulator, at any rate
    (at the Neuromag rate, 600.615 Hz, limiting each rate's terms apart asked for a
    filter of 859 million taps)."""
    times = np.arange(int(4 * audio_sfreq)) / audio_sfreq
    modulator = 1.0 + 0.5 * np.sin(2 * np.pi * 3.0 * times)
    audio = modulator * np.sin(2 * np.pi * 1000.0 * times)
    feats = Envelope().extract(Stimulus(audio, audio_sfreq), sfreq)
    assert feats.names == ["envelope"]
    assert feats.extractors == ["envelope"]
    assert feats.n_times == int(np.ceil(4 * sfreq))
    assert feats.tmin == 0.0
    expected = 1.0 + 0.5 * np.sin(2 * np.pi * 3.0 * feats.times)
    assert np.corrcoef(feats.data[:, 0], expected)[0, 1] > 0.99
    # away from the edges the amplitude itself is right, within a few percent
    inner = slice(int(0.2 * sfreq), -int(0.2 * sfreq))
    np.testing.assert_allclose(feats.data[inner, 0], expected[inner], atol=0.03)


def test_envelope_is_anti_aliased():
    """Modulations above the feature Nyquist frequency are filtered out."""
    audio_sfreq, sfreq = 8000, 50.0
    times = np.arange(4 * audio_sfreq) / audio_sfreq
    # 40 Hz modulation would alias to 10 Hz if the envelope were just sampled
    audio = (1.0 + 0.8 * np.sin(2 * np.pi * 40.0 * times)) * np.sin(
        2 * np.pi * 700.0 * times
    )
    envelope = Envelope().extract(Stimulus(audio, audio_sfreq), sfreq).data[10:-10, 0]
    assert np.std(envelope) < 0.02
    assert np.mean(envelope) == pytest.approx(1.0, abs=0.02)


def test_envelope_in_blocks(monkeypatch, rng):
    """The blockwise analytic signal gives the envelope of the whole signal."""
    audio_sfreq = 8000
    times = np.arange(10 * audio_sfreq) / audio_sfreq
    audio = (1.2 + np.sin(2 * np.pi * 2.0 * times)) * rng.standard_normal(times.size)
    stim = Stimulus(audio, audio_sfreq)
    whole = Envelope().extract(stim, 50.0).data[:, 0]
    monkeypatch.setattr(_acoustic, "_HILBERT_BLOCK", 3 * audio_sfreq)
    blocks = Envelope().extract(stim, 50.0).data[:, 0]
    # edge effects of the Hilbert transform beyond the one-second overlap are
    # broadband and mostly removed by the anti-aliasing filter
    np.testing.assert_allclose(blocks, whole, atol=5e-3 * whole.mean())
    assert np.abs(blocks - whole).max() > 0  # ten blocks did run


def test_mel_filterbank_matches_reference():
    """The triangular HTK-mel filterbank equals transformers' implementation."""
    audio_utils = pytest.importorskip("transformers.audio_utils")
    weights = _mel_filterbank(20, 512, 16000.0, 50.0, 7000.0)
    reference = audio_utils.mel_filter_bank(
        257, 20, 50.0, 7000.0, 16000, mel_scale="htk"
    )
    np.testing.assert_allclose(weights, reference.T, atol=1e-10)
    np.testing.assert_allclose(_hz_to_mel(1000.0), 1000.0, atol=0.5)


def test_mel_tone():
    """A tone lights up the band centred nearest to it, from its onset on."""
    audio_sfreq, sfreq, n_bands = 16000, 100.0, 24
    times = np.arange(3 * audio_sfreq) / audio_sfreq
    audio = np.where(times >= 1.0, np.sin(2 * np.pi * 1500.0 * times), 0.0)
    feats = Mel(n_bands=n_bands, fmax=8000.0).extract(
        Stimulus(audio, audio_sfreq), sfreq
    )
    assert feats.names[0] == "mel_00"
    assert feats.names[-1] == "mel_23"
    mels = np.linspace(0.0, _hz_to_mel(8000.0), n_bands + 2)[1:-1]
    nearest = np.argmin(np.abs(mels - _hz_to_mel(1500.0)))
    assert np.all(np.argmax(feats.data[110:], axis=1) == nearest)
    band = feats.data[:, nearest]
    # silence sits at the floor, 100 dB below the loudest band power
    assert band[:90].max() == pytest.approx(band.max() - 100.0, abs=1e-6)
    # the frame centred 10 ms before the onset catches the tone in its second half
    assert np.all(band[100:] > band.max() - 10.0)
    assert band[98] < band.max() - 30.0


def test_mel_errors():
    """Bad mel settings name the offending value."""
    stim = Stimulus(np.zeros(8000), 8000.0)
    with pytest.raises(ValueError, match="above the Nyquist frequency"):
        Mel(fmax=6000.0).extract(stim, 50.0)
    with pytest.raises(ValueError, match="holds no frequency bin"):
        Mel(n_bands=200).extract(stim, 100.0)
    with pytest.raises(ValueError, match="too short"):
        Mel(window=1e-4).extract(stim, 50.0)
    with pytest.raises(ValueError, match="fmax must be above fmin"):
        Mel(fmin=300.0, fmax=200.0)
    with pytest.raises(ValueError, match="n_bands must be a positive"):
        Mel(n_bands=0)
    assert Mel(n_bands=8).parameters == {
        "n_bands": 8,
        "fmin": 0.0,
        "fmax": None,
        "window": None,
    }
    # silent audio stays finite
    assert np.isfinite(Mel(n_bands=8).extract(stim, 50.0).data).all()


def test_phonemes_match_intervals(rng):
    """Each phoneme column is 1 exactly at the sample times inside its intervals."""
    sfreq, duration = 100.0, 6.0
    rows = _random_alignment(rng, duration, 40, [p + "1" for p in ARPABET] + ["SP"])
    feats = Phonemes().extract(Stimulus(phones=rows), sfreq)
    assert feats.names == [f"phoneme_{p}" for p in ARPABET]
    assert len(ARPABET) == 39
    assert feats.names[:2] == ["phoneme_AA", "phoneme_AE"]
    times = np.arange(feats.n_times) / sfreq
    expected = np.zeros((feats.n_times, 39))
    for onset, offset, label in rows:
        if label != "SP":
            expected[(times >= onset) & (times < offset), ARPABET.index(label[:-1])] = 1
    np.testing.assert_array_equal(feats.data, expected)
    # an interval on exact sample times: its first sample in, its end sample out
    exact = Phonemes().extract(Stimulus(phones=[(0.3, 0.5, "ah0")]), sfreq)
    column = exact.data[:, ARPABET.index("AH")]
    assert np.flatnonzero(column).tolist() == list(range(30, 50))


def test_phonemes_unknown_label_warns():
    """Labels outside ARPAbet warn and stay out of the features."""
    stim = Stimulus(phones=[(0.1, 0.3, "AA1"), (0.3, 0.5, "XX")])
    with pytest.warns(RuntimeWarning, match=r"not ARPAbet phonemes.*'XX'"):
        feats = Phonemes().extract(stim, 50.0)
    assert feats.data.sum() == 10  # only AA, 0.1 <= k / 50 < 0.3


def test_word_onsets_and_rate(rng):
    """Onsets count the words; the rate integrates to the word count exactly."""
    sfreq, duration = 50.0, 8.0
    rows = _random_alignment(rng, duration, 20, ["word"])
    stim = Stimulus(np.zeros(int(duration * 1000)), 1000.0, words=rows)
    onsets = WordOnsets().extract(stim, sfreq)
    assert onsets.names == ["word_onset"]
    assert onsets.data.sum() == 20
    expected = np.zeros(onsets.n_times)
    np.add.at(
        expected, np.round(np.array(rows)[:, 0].astype(float) * sfreq).astype(int), 1
    )
    np.testing.assert_array_equal(onsets.data[:, 0], expected)
    # aligners' times on a 10 ms grid fall halfway between 50 Hz samples: all go to
    # the later sample (rounding half to even moved them by the sample's parity)
    grid = [(0.01 + 0.02 * k, 0.015 + 0.02 * k, "w") for k in range(8)]
    grid.append((0.4, 0.5, "end"))
    halfway = WordOnsets().extract(Stimulus(words=grid), sfreq).data[:, 0]
    np.testing.assert_array_equal(np.flatnonzero(halfway), [*range(1, 9), 20])
    rate = WordRate().extract(stim, sfreq)
    assert rate.names == ["word_rate"]
    assert rate.data.sum() / sfreq == pytest.approx(20, rel=1e-12)
    # reference: the overlap of every word with every sample's period, centred on the
    # sample's time as every feature's value is, in float64
    edges = (np.arange(rate.n_times + 1) - 0.5) / sfreq
    reference = np.zeros(rate.n_times)
    for onset, offset, _ in rows:
        overlap = np.minimum(edges[1:], offset) - np.maximum(edges[:-1], onset)
        reference += np.clip(overlap, 0, None) / (offset - onset) * sfreq
    np.testing.assert_allclose(rate.data[:, 0], reference, atol=1e-9)
    # one long word: the rate is 1 / its duration while it lasts; the first sample's
    # period is half before the audio, half in the word
    long = WordRate().extract(Stimulus(words=[(0.0, 2.0, "long")]), sfreq)
    np.testing.assert_allclose(long.data[1:, 0], 0.5)
    np.testing.assert_allclose(long.data[0, 0], 0.25)
    # the rate is centred on each sample's time, as the phonemes: a word from 1.01 s
    # to 1.51 s at 50 Hz fills the periods of samples 51 to 75 (1.02 to 1.50 s)
    one = WordRate().extract(Stimulus(words=[(1.01, 1.51, "one")]), 50.0).data[:, 0]
    assert np.flatnonzero(one).tolist() == list(range(51, 76))


class _Twice(FeatureExtractor):
    """Twice the envelope, as a minimal subclass would write it."""

    name = "twice"
    requires = ("audio",)

    def __init__(self, factor=2.0):
        self.factor = factor

    def compute(self, stimulus, sfreq):
        return self.factor * Envelope().compute(stimulus, sfreq)


class _Short(FeatureExtractor):
    name = "short"

    def compute(self, stimulus, sfreq):
        return np.zeros((3, 2))


class _Odd(FeatureExtractor):
    """A plugin whose output is complex, text or under too few names."""

    name = "odd"

    def __init__(self, kind="complex"):
        self.kind = kind

    def compute(self, stimulus, sfreq):
        n_times = stimulus.n_times(sfreq)
        if self.kind == "text":
            return np.full((n_times, 1), "a")
        return np.ones((n_times, 2)) * (1 + 2j if self.kind == "complex" else 1)

    def feature_names(self, n_features):
        return ["one"] if self.kind == "names" else super().feature_names(n_features)


def test_extractor_base():
    """The base class checks requirements and the shape of compute's output."""
    stim = Stimulus(words=WORDS)
    with pytest.raises(
        ValueError, match="'envelope' extractor needs the stimulus' audio"
    ):
        Envelope().extract(stim, 50.0)
    with pytest.raises(ValueError, match="'lm' extractor needs the stimulus' words"):
        LanguageModel().extract(Stimulus(phones=PHONES), 50.0)
    with pytest.raises(RuntimeError, match=r"returned shape \(3, 2\); expected \(65, "):
        _Short().extract(stim, 50.0)
    with pytest.raises(RuntimeError, match="_Odd.compute returned complex values"):
        _Odd("complex").extract(stim, 50.0)  # the imaginary part was dropped
    with pytest.raises(RuntimeError, match="_Odd.compute must return numbers"):
        _Odd("text").extract(stim, 50.0)
    with pytest.raises(RuntimeError, match=r"_Odd.feature_names\(2\) returned 1 name"):
        _Odd("names").extract(stim, 50.0)
    with pytest.raises(ValueError, match="sfreq must be a positive"):
        WordOnsets().extract(stim, -1.0)
    with pytest.raises(TypeError, match="stimulus must be an instance of Stimulus"):
        WordOnsets().extract(WORDS, 50.0)
    with pytest.raises(TypeError, match="abstract"):
        FeatureExtractor()
    assert repr(_Twice()) == "<_Twice | 'twice', factor=2.0>"
    assert repr(Envelope()) == "<Envelope | 'envelope'>"
    assert _Short().feature_names(2) == ["short_00", "short_01"]


def test_extract_front_end(tmp_path):
    """Names, instances and the keyword form give the same concatenated features."""
    audio_sfreq = 8000
    times = np.arange(int(2.5 * audio_sfreq)) / audio_sfreq
    audio = np.sin(2 * np.pi * 440.0 * times)
    wavfile.write(tmp_path / "story.wav", audio_sfreq, (audio * 2**14).astype(np.int16))
    path = _write_textgrid(tmp_path / "story.TextGrid")
    feats = extract(
        ["envelope", Mel(n_bands=8), "phonemes", "word_onsets", "word_rate"],
        audio=tmp_path / "story.wav",
        textgrid=path,
        sfreq=50.0,
    )
    assert isinstance(feats, Features)
    assert feats.n_times == 125
    assert feats.n_features == 1 + 8 + 39 + 1 + 1
    assert feats.extractors.count("mel") == 8
    assert feats.names[-1] == "word_rate"
    stim = Stimulus(tmp_path / "story.wav", textgrid=path)
    alone = extract("word_rate", stim, 50.0)
    np.testing.assert_array_equal(feats.pick("word_rate").data, alone.data)
    assert get_extractor("mel", n_bands=8).parameters["n_bands"] == 8
    with pytest.raises(
        TypeError, match=r"'envelope' takes the parameters none; got \['foo'\]"
    ):
        get_extractor("envelope", foo=1)
    with pytest.raises(TypeError, match=r"'mel' takes the parameters \['n_bands'"):
        get_extractor("mel", bands=8)
    with pytest.raises(
        ValueError, match=r"Unknown feature extractor 'pitch'.*'envelope'"
    ):
        extract(["pitch"], stim)
    with pytest.raises(ValueError, match="either a stimulus or its parts.*'audio'"):
        extract("envelope", stim, audio=audio)
    with pytest.raises(ValueError, match="at least one extractor"):
        extract([], stim)
    with pytest.raises(TypeError, match=r"extractors\[0\] must be an instance of str"):
        extract([3], stim)
    with pytest.raises(ValueError, match="sfreq must be a positive"):
        extract("envelope", stim, sfreq=0)
