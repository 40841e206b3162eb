"""Synthetic spoken stories: word and phoneme alignments and their stimulus features.

The features mimic the built-in extractors (``envelope``, ``mel``, ``phonemes``,
``word_onsets``, ``lm``) column for column, so that simulated and real stories look
alike to every model.
"""

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

from ..features import Features
from ..features._features import nearest_samples

# The 39 ARPAbet phonemes of the CMU pronouncing dictionary (stress marks stripped),
# with a rough share of each in running English speech (percent) and its class.
_PHONEME_TABLE = (
    # phoneme, share (%), class
    ("AA", 1.5, "vowel"),
    ("AE", 2.3, "vowel"),
    ("AH", 10.0, "vowel"),
    ("AO", 1.0, "vowel"),
    ("AW", 0.5, "vowel"),
    ("AY", 1.6, "vowel"),
    ("B", 1.8, "stop"),
    ("CH", 0.4, "stop"),
    ("D", 4.3, "stop"),
    ("DH", 3.5, "voiced_fricative"),
    ("EH", 3.0, "vowel"),
    ("ER", 2.5, "vowel"),
    ("EY", 1.6, "vowel"),
    ("F", 1.6, "fricative"),
    ("G", 0.8, "stop"),
    ("HH", 1.6, "fricative"),
    ("IH", 6.0, "vowel"),
    ("IY", 3.5, "vowel"),
    ("JH", 0.5, "stop"),
    ("K", 3.2, "stop"),
    ("L", 4.0, "sonorant"),
    ("M", 3.0, "sonorant"),
    ("N", 7.0, "sonorant"),
    ("NG", 1.0, "sonorant"),
    ("OW", 1.2, "vowel"),
    ("OY", 0.1, "vowel"),
    ("P", 2.0, "stop"),
    ("R", 5.5, "sonorant"),
    ("S", 5.0, "fricative"),
    ("SH", 0.8, "fricative"),
    ("T", 7.0, "stop"),
    ("TH", 0.5, "fricative"),
    ("UH", 0.4, "vowel"),
    ("UW", 1.5, "vowel"),
    ("V", 2.0, "voiced_fricative"),
    ("W", 2.3, "sonorant"),
    ("Y", 0.9, "sonorant"),
    ("Z", 3.0, "voiced_fricative"),
    ("ZH", 0.1, "voiced_fricative"),
)
PHONEMES = tuple(row[0] for row in _PHONEME_TABLE)
_SHARE = np.array([row[1] for row in _PHONEME_TABLE])
_CLASS = np.array([row[2] for row in _PHONEME_TABLE])
_VOWEL = _CLASS == "vowel"
# Loudness of each class relative to a vowel, and where its spectral energy lies
# (fraction of the mel axis): formants for vowels, low murmur for sonorants, high
# frication noise, broadband bursts.
_CLASS_LOUDNESS = {
    "vowel": 0.85,
    "sonorant": 0.5,
    "voiced_fricative": 0.3,
    "fricative": 0.2,
    "stop": 0.25,
}
_CLASS_SPECTRUM = {
    "vowel": ((0.1, 0.35), (0.3, 0.6)),
    "sonorant": ((0.02, 0.2),),
    "voiced_fricative": ((0.05, 0.15), (0.6, 0.9)),
    "fricative": ((0.65, 0.98),),
    "stop": ((0.3, 0.8),),
}

# Timing constants, chosen so that speech runs at about 2.5 words/s and 12 phonemes/s
# like the narrated stories of the Moth Radio Hour.
VOCABULARY_SIZE = 2000
MEAN_PHONEMES_PER_WORD = 4.75
VOWEL_DURATION = 0.08  # s, mean
CONSONANT_DURATION = 0.058  # s, mean
MIN_PHONEME_DURATION = 0.025  # s, longer than one 50 Hz sample
PAUSE_PROBABILITY = 0.1  # a phrase boundary after a word
PAUSE_RANGE = (0.2, 0.7)  # s
MEAN_WORD_GAP = 0.012  # s, between words within a phrase
LEAD_SILENCE = 0.3  # s of silence before the first word
CONTEXT_CORRELATION = 0.98  # per word: the topic drifts over ~50 words (~20 s)
CONTEXT_SHARE = 0.4  # share of the embedding's variance that is context
TOPIC_SELECTIVITY = 4.0  # how strongly the topic biases the choice of words
ENVELOPE_FLOOR = 0.01  # background noise level of the recording
MEL_FLOOR = 1e-3  # power floor under the log-mel spectrum
FINE_FACTOR = 20  # the fine time grid (audio-like) runs at FINE_FACTOR x sfreq


@dataclass(frozen=True)
class StoryAlignment:
    """Word and phone intervals of a story, like the tiers of a Praat TextGrid.

    Attributes
    ----------
    words : list of tuple
        ``(onset, offset, label)`` of each word, in seconds.
    phones : list of tuple
        ``(onset, offset, label)`` of each phoneme (ARPAbet, no stress marks).
    duration : float
        Duration of the story in seconds.
    """

    words: list
    phones: list
    duration: float


@dataclass(frozen=True)
class Language:
    """A synthetic language: vocabulary, pronunciations, word vectors, phone spectra."""

    frequency: np.ndarray  # (n_words,) Zipf probabilities
    pronunciations: tuple  # per word, tuple of phoneme indices
    vectors: np.ndarray  # (n_words, n_dims), each of norm ~1
    spectra: np.ndarray  # (n_phonemes, n_mel) mean power profile of each phoneme


def make_language(rng, n_dims, n_mel):
    """Draw a vocabulary with Zipf frequencies, pronunciations and word vectors."""
    rank = np.arange(1, VOCABULARY_SIZE + 1)
    frequency = 1.0 / rank
    frequency /= frequency.sum()
    # Frequent words are short (Zipf's law of abbreviation); scale so that the mean
    # word of running speech has MEAN_PHONEMES_PER_WORD phonemes.
    log_rank = np.log1p(rank)
    extra = (MEAN_PHONEMES_PER_WORD - 1) * log_rank / (frequency @ log_rank)
    lengths = 1 + rng.poisson(extra)
    consonant_p = np.where(_VOWEL, 0.0, _SHARE)
    consonant_p /= consonant_p.sum()
    vowel_p = np.where(_VOWEL, _SHARE, 0.0)
    vowel_p /= vowel_p.sum()
    # consonant-vowel alternation with occasional clusters and diphthong pairs
    n_phones = int(lengths.sum())
    stay = rng.random(n_phones)
    first = np.zeros(n_phones, bool)
    first[np.cumsum(lengths)[:-1]] = True
    first[0] = True
    is_vowel = np.empty(n_phones, bool)
    for k in range(n_phones):
        if first[k]:
            is_vowel[k] = stay[k] > 0.65
        else:
            is_vowel[k] = stay[k] < (0.15 if is_vowel[k - 1] else 0.75)
    phones = np.where(
        is_vowel,
        rng.choice(len(PHONEMES), n_phones, p=vowel_p),
        rng.choice(len(PHONEMES), n_phones, p=consonant_p),
    )
    pronunciations = tuple(
        tuple(int(p) for p in word)
        for word in np.split(phones, np.cumsum(lengths)[:-1])
    )
    vectors = rng.standard_normal((VOCABULARY_SIZE, n_dims)) / np.sqrt(n_dims)
    axis = np.linspace(0.0, 1.0, n_mel)
    spectra = np.full((len(PHONEMES), n_mel), 0.05)
    for k, kind in enumerate(_CLASS):
        for low, high in _CLASS_SPECTRUM[kind]:
            center = rng.uniform(low, high)
            spectra[k] += np.exp(-0.5 * ((axis - center) / 0.08) ** 2)
    spectra /= spectra.mean(axis=1, keepdims=True)
    return Language(frequency, pronunciations, vectors, spectra)


def make_story(language, duration, rng):
    """Draw the words of one story: alignment, word identities and their embeddings.

    Returns the alignment, the embedding of each word (n_words, n_dims) and the
    loudness of each phone.
    """
    n_dims = language.vectors.shape[1]
    log_frequency = np.log(language.frequency)
    context = rng.standard_normal(n_dims) / np.sqrt(n_dims)
    innovation = np.sqrt(1 - CONTEXT_CORRELATION**2)
    words, phones, embeddings, loudness = [], [], [], []
    time = LEAD_SILENCE
    while True:
        # the topic (context) biases which words are said, so meaning drifts slowly
        logits = log_frequency + TOPIC_SELECTIVITY * language.vectors @ context
        prob = np.exp(logits - logits.max())
        word = rng.choice(len(prob), p=prob / prob.sum())
        pronunciation = language.pronunciations[word]
        means = np.where(
            _VOWEL[list(pronunciation)], VOWEL_DURATION, CONSONANT_DURATION
        )
        durations = np.maximum(rng.gamma(6.0, means / 6.0), MIN_PHONEME_DURATION)
        if time + durations.sum() > duration - LEAD_SILENCE:
            break
        onset = time
        stress = rng.uniform(0.7, 1.0)
        for phone, phone_duration in zip(pronunciation, durations, strict=True):
            phones.append((time, time + phone_duration, PHONEMES[phone]))
            level = _CLASS_LOUDNESS[_CLASS[phone]] * stress
            loudness.append(level * np.exp(0.15 * rng.standard_normal()))
            time += phone_duration
        words.append((onset, time, f"w{word:04d}"))
        embeddings.append(
            np.sqrt(1 - CONTEXT_SHARE) * language.vectors[word]
            + np.sqrt(CONTEXT_SHARE) * context
        )
        context = CONTEXT_CORRELATION * context + innovation * rng.standard_normal(
            n_dims
        ) / np.sqrt(n_dims)
        if rng.random() < PAUSE_PROBABILITY:
            time += rng.uniform(*PAUSE_RANGE)
        else:
            time += rng.exponential(MEAN_WORD_GAP)
    alignment = StoryAlignment(words, phones, float(duration))
    return alignment, np.array(embeddings).reshape(-1, n_dims), np.array(loudness)


def _first_sample(times, sfreq):
    """Index of the first sample at or after each time."""
    return np.ceil(np.asarray(times) * sfreq - 1e-9).astype(int)


def story_features(language, alignment, embeddings, loudness, sfreq, rng):
    """Rasterise a story into features named like the built-in extractors."""
    n_times = int(round(alignment.duration * sfreq))
    n_mel = language.spectra.shape[1]
    phone_on = np.array([p[0] for p in alignment.phones])
    phone_off = np.array([p[1] for p in alignment.phones])
    phone_idx = np.array([PHONEMES.index(p[2]) for p in alignment.phones], int)
    word_on = np.array([w[0] for w in alignment.words])

    phonemes = np.zeros((n_times, len(PHONEMES)))
    starts, stops = _first_sample(phone_on, sfreq), _first_sample(phone_off, sfreq)
    for start, stop, idx in zip(starts, stops, phone_idx, strict=True):
        phonemes[start:stop, idx] = 1.0
    # like the word_onsets and lm extractors: at the sample nearest to the onset
    onsets = nearest_samples(word_on, sfreq, n_times)
    word_onset = np.zeros((n_times, 1))
    np.add.at(word_onset[:, 0], onsets, 1.0)
    lm = np.zeros((n_times, embeddings.shape[1]))
    np.add.at(lm, onsets, embeddings)

    # Acoustics on an audio-like fine grid, then anti-aliased (boxcar) to sfreq: the
    # amplitude of each phone, its spectrum varying from one utterance to the next.
    fine = sfreq * FINE_FACTOR
    n_fine = n_times * FINE_FACTOR
    fine_start = _first_sample(phone_on, fine)
    fine_stop = _first_sample(phone_off, fine)
    amplitude = np.zeros(n_fine)
    spectrum = np.zeros((n_fine, n_mel))
    variation = np.exp(0.2 * rng.standard_normal((len(phone_idx), n_mel)))
    for k, (start, stop) in enumerate(zip(fine_start, fine_stop, strict=True)):
        amplitude[start:stop] = loudness[k]
        spectrum[start:stop] = language.spectra[phone_idx[k]] * variation[k]
    # 10 ms ramps between phones, as the vocal tract cannot jump
    amplitude = uniform_filter1d(amplitude, int(0.01 * fine) or 1)
    power = amplitude[:, np.newaxis] ** 2 * spectrum
    envelope = _to_samples(amplitude, FINE_FACTOR) + ENVELOPE_FLOOR
    mel = np.log(_to_samples(power, FINE_FACTOR) + MEL_FLOOR)

    names = (
        ["envelope"]
        + [f"mel_{k:02d}" for k in range(n_mel)]
        + [f"phoneme_{p}" for p in PHONEMES]
        + ["word_onset"]
        + [f"lm_{k:03d}" for k in range(embeddings.shape[1])]
    )
    extractors = (
        ["envelope"]
        + ["mel"] * n_mel
        + ["phonemes"] * len(PHONEMES)
        + ["word_onsets"]
        + ["lm"] * embeddings.shape[1]
    )
    data = np.concatenate([envelope[:, np.newaxis], mel, phonemes, word_onset, lm], 1)
    return Features(data, sfreq, names, 0.0, extractors)


def _to_samples(fine, factor):
    """Average a fine-grid signal over the window centred on each coarse sample."""
    smooth = uniform_filter1d(fine, factor, axis=0, mode="constant")
    return smooth[::factor]
