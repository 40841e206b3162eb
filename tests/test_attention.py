"""The attention backends (banded, SDPA, FlexAttention) compute the same layer."""

import pytest
import torch

from mne_fusion.model import LocalCausalAttention
from mne_fusion.model.attention import BACKENDS, flex_available, select_backend
from mne_fusion.model.network import EncoderLayer

# Without torch.compile FlexAttention warns that it materialises the scores: expected
# here, where it only serves as a reference on the CPU.
pytestmark = pytest.mark.filterwarnings(
    "ignore:flex_attention called without torch.compile:UserWarning"
)
try:
    from torch.nn.attention import flex_attention  # noqa: F401

    HAS_FLEX = True
except ImportError:  # pragma: no cover - torch < 2.5
    HAS_FLEX = False

# (n_times, window, block_size): shorter than, equal to and longer than the window,
# lengths that are not multiples of the block size, a window of one sample.
SHAPES = [(20, 33, 8), (33, 33, 8), (101, 13, 16), (70, 25, 32), (40, 1, 7)]
TOL = {torch.float64: 1e-10, torch.float32: 2e-5}


def _pair(backend, window, block_size, dtype, d_model=12, n_heads=3):
    """Return a banded layer and a copy of it with ``backend`` (random lag bias)."""
    torch.manual_seed(0)
    ref = LocalCausalAttention(d_model, n_heads, window, block_size, backend="banded")
    with torch.no_grad():
        ref.lag_bias.normal_()
    other = LocalCausalAttention(d_model, n_heads, window, block_size, backend=backend)
    other.load_state_dict(ref.state_dict())
    return ref.to(dtype), other.to(dtype)


def _run(layer, x, backward):
    """Return the output and, with ``backward``, the input's and weights' gradients."""
    x = x.clone().requires_grad_(backward)
    y = layer(x)
    if not backward:
        return [y]
    layer.zero_grad()
    # A loss that weights every output differently, so that wrong gradients show.
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    return [y, x.grad] + [p.grad for p in layer.parameters()]


def _assert_close(got, want, dtype):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=TOL[dtype])


def test_select_backend_rule():
    assert BACKENDS == ("auto", "banded", "sdpa", "flex")
    # The CPU (and any device but CUDA) keeps the banded reference.
    for device_type in ("cpu", "mps", "xpu"):
        assert select_backend("auto", device_type, 64, flex_ok=True) == "banded"
    assert select_backend("auto", "cuda", 64, flex_ok=True) == "flex"
    assert select_backend("auto", "cuda", 16, flex_ok=True) == "flex"
    # Compiled FlexAttention needs heads of at least 16; no FlexAttention -> SDPA.
    assert select_backend("auto", "cuda", 8, flex_ok=True) == "sdpa"
    assert select_backend("auto", "cuda", 64, flex_ok=False) == "sdpa"
    for backend in ("banded", "sdpa", "flex"):
        assert select_backend(backend, "cpu", 4) == backend
        assert select_backend(backend, "cuda", 4, flex_ok=False) == backend
    assert not flex_available("cpu")
    if not torch.cuda.is_available():
        assert select_backend("auto", "cuda", 64) == "sdpa"
    with pytest.raises(ValueError, match="backend must be one of"):
        select_backend("fast", "cpu", 4)
    with pytest.raises(ValueError, match="backend must be one of"):
        LocalCausalAttention(8, 2, 5, backend="fast")


def test_auto_is_banded_on_cpu_bit_for_bit():
    ref, auto = _pair("auto", 9, 8, torch.float32)
    assert auto.backend == "auto"
    assert "backend" not in str(list(auto.state_dict()))
    x = torch.randn(2, 45, 12)
    for got, want in zip(_run(auto, x, True), _run(ref, x, True), strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("n_times", "window", "block_size"), SHAPES)
def test_sdpa_equals_banded(n_times, window, block_size, dtype):
    ref, sdpa = _pair("sdpa", window, block_size, dtype)
    x = torch.randn(2, n_times, 12, dtype=dtype)
    _assert_close(_run(sdpa, x, True), _run(ref, x, True), dtype)


@pytest.mark.skipif(not HAS_FLEX, reason="this torch has no FlexAttention")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("n_times", "window", "block_size"), SHAPES)
def test_flex_equals_banded_forward(n_times, window, block_size, dtype):
    ref, flex = _pair("flex", window, block_size, dtype)
    x = torch.randn(2, n_times, 12, dtype=dtype)
    with torch.no_grad():
        _assert_close(_run(flex, x, False), _run(ref, x, False), dtype)


@pytest.mark.skipif(not HAS_FLEX, reason="this torch has no FlexAttention")
def test_flex_equals_banded_backward():
    ref, flex = _pair("flex", 13, 16, torch.float64)
    x = torch.randn(2, 70, 12, dtype=torch.float64)
    try:
        got = _run(flex, x, True)
    except NotImplementedError as err:  # torch 2.13: no FlexAttention backward on CPU
        pytest.skip(f"FlexAttention has no backward on the CPU here: {err}")
    _assert_close(got, _run(ref, x, True), torch.float64)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("backend", ["sdpa", "flex"])
def test_encoder_layer_backends_with_dropout(backend, dropout):
    """In a training-mode layer with dropout, the backends draw the same masks."""
    if backend == "flex" and not HAS_FLEX:
        pytest.skip("this torch has no FlexAttention")
    backward = backend != "flex"  # no FlexAttention backward on the CPU
    torch.manual_seed(0)
    ref = EncoderLayer(16, 2, 11, 32, dropout).double().train()
    other = EncoderLayer(16, 2, 11, 32, dropout).double().train()
    other.load_state_dict(ref.state_dict())
    other.attention.backend = backend
    x = torch.randn(3, 57, 16, dtype=torch.float64)
    outputs = []
    for layer in (other, ref):
        torch.manual_seed(1)
        with torch.set_grad_enabled(backward):
            outputs.append(_run(layer, x, backward))
    _assert_close(*outputs, torch.float64)
    if dropout:  # the masks did act: another draw gives other numbers
        torch.manual_seed(2)
        with torch.no_grad():
            assert not torch.allclose(ref(x), outputs[1][0])
