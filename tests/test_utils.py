import io
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import mne_fusion as mf
from mne_fusion.utils import (
    _check_option,
    _check_positive,
    _validate_type,
    fill_doc,
    get_cache_dir,
    get_data_root,
    nearest_whole,
    onset_margin,
)
from mne_fusion.utils._resampling import whole_margin
from mne_fusion.utils.sys_info import _source_commit


def test_validate_type_messages():
    assert _validate_type(3, "int", "n") == 3
    with pytest.raises(TypeError, match=r"n must be an instance of int, got float"):
        _validate_type(3.0, "int", "n")
    with pytest.raises(TypeError, match=r"n must be an instance of int, got bool"):
        _validate_type(True, "int", "n")
    with pytest.raises(
        TypeError, match=r"path must be an instance of None or path-like"
    ):
        _validate_type(1, (None, "path-like"), "path")
    assert _validate_type(len, "callable", "fun") is len


def test_check_option_and_positive():
    assert _check_option("kind", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"'kind' parameter.*'a' or 'b', but got 'c'"):
        _check_option("kind", "c", ("a", "b"))
    with pytest.raises(ValueError, match=r"\(none available\), but got 'c'"):
        _check_option("kind", "c", ())
    assert _check_positive(2, "x") == 2.0
    assert _check_positive(0, "x", allow_zero=True) == 0.0
    with pytest.raises(ValueError, match="x must be a positive finite number, got 0.0"):
        _check_positive(0, "x")
    with pytest.raises(ValueError, match="x must be a positive finite number, got inf"):
        _check_positive(float("inf"), "x")
    assert _check_positive(float("inf"), "x", allow_inf=True) == float("inf")


def test_data_root_follows_mne_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MNE_DATA", str(tmp_path))
    assert get_data_root() == tmp_path / "MNE-fusion-data"
    assert get_data_root(tmp_path / "x") == tmp_path / "x" / "MNE-fusion-data"
    cache = get_cache_dir("forward")
    assert cache.is_dir()
    assert cache == tmp_path / "MNE-fusion-data" / "cache" / "forward"
    assert isinstance(cache, Path)


def test_fill_doc_indents_entries():
    @fill_doc
    def func(spacing):
        """Do something.

        Parameters
        ----------
        %(spacing_template)s
        """

    lines = func.__doc__.splitlines()
    k = next(i for i, line in enumerate(lines) if line.strip() == "spacing : str")
    indent = len(lines[k]) - len(lines[k].lstrip())
    assert indent == len(lines[k - 1]) - len(lines[k - 1].lstrip())  # like "-----"
    assert lines[k + 1].startswith(" " * (indent + 4) + "Decimation")

    def bad():
        """%(no_such_entry)s."""

    with pytest.raises(RuntimeError, match="Could not fill the docstring of"):
        fill_doc(bad)


def test_sys_info_lists_versions():
    import torch

    out = io.StringIO()
    mf.sys_info(out)
    text = out.getvalue()
    assert f"mne-fusion:  {mf.__version__}" in text
    assert "torch:" in text
    assert "mne:" in text
    assert f"torch threads: {torch.get_num_threads()}\n" in text


def _git(folder, *args):
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_source_commit_of_a_checkout(tmp_path):
    package = tmp_path / "repo" / "mne_fusion"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    assert _source_commit(package) is None  # not a checkout
    _git(package.parent, "init", "-q")
    _git(package.parent, "add", ".")
    who = ["-c", "user.name=t", "-c", "user.email=t@t"]
    _git(package.parent, *who, "commit", "-q", "-m", "first")
    head = subprocess.run(
        ["git", "-C", str(package), "rev-parse", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert _source_commit(package) == head
    (package / "__init__.py").write_text("x = 1\n")  # a tracked file changed
    assert _source_commit(package) == head + "-dirty"
    # a package folder inside some other checkout (e.g. site-packages) is not one
    nested = package / "lib" / "mne_fusion"
    nested.mkdir(parents=True)
    assert _source_commit(nested) is None
    text = io.StringIO()
    mf.sys_info(text)
    assert (_source_commit() is None) != ("git commit:" in text.getvalue())


def test_lazy_public_names():
    assert "FusionEncoder" in dir(mf)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        mf.nope  # noqa: B018


def test_whole_margin():
    """The longest margin whose resampled length is whole, or within a twentieth of
    an input sample of whole at rates with no whole period (Neuromag's 600.615 Hz)."""
    to_50 = Fraction(1, 20)  # 1000 Hz -> 50 Hz: whole every 20 input samples
    assert whole_margin(1000, to_50) == 1000
    assert whole_margin(999, to_50) == 980
    assert whole_margin(19, to_50) == 19  # none whole: the nearest, the longest of ties
    assert whole_margin(0, to_50) == 0
    ratio = 50 / 600.615
    margin = whole_margin(601, ratio)
    off = margin * ratio - round(margin * ratio)
    assert abs(off) <= 0.05 * ratio
    # the longest such: no longer margin up to 601 comes as close
    longer = np.arange(margin + 1, 602) * ratio
    assert np.all(np.abs(longer - np.round(longer)) > 0.05 * ratio)
    assert nearest_whole([], ratio) == 0
    assert nearest_whole([3, 40], to_50) == 40


def test_onset_margin_reaches_past_the_filter():
    """At least the filter's 10 output samples before the onset: within a second
    where there is such a margin, else within four (600.615 Hz: 48 samples, 80 ms,
    within a second)."""
    to_50 = Fraction(1, 20)
    assert onset_margin(5000, 1000.0, to_50) == 1000
    ratio = Fraction(50 / 600.615).limit_denominator(2**16)
    margin = onset_margin(10_000, 600.615, ratio)
    assert whole_margin(601, ratio) == 48
    assert 10 / float(ratio) <= margin <= 4 * 600.615
    assert abs(margin * ratio - round(margin * ratio)) <= 0.05 * ratio
    # a recording that starts shortly before the onset gives what it has
    assert onset_margin(30, 600.615, ratio) <= 30
    assert onset_margin(0, 1000.0, to_50) == 0
