"""The training step of ``FusionEncoder.fit``: progress, checkpoints, Ctrl-C.

What: :func:`train_network` runs :func:`mne_fusion.model.train` with a progress bar
over the batches of all epochs and the epoch lines in the log, with the fit's
checkpoint file (:class:`mne_fusion.model.checkpoint.Checkpoint`, written with
:func:`mne_fusion.utils.write_atomic`) and, in a ``torchrun`` launch, this process's
:class:`~mne_fusion.model.distributed.Shard`. :func:`fingerprint` names what a
checkpoint was made for, so that a checkpoint of other data or parameters is refused.
:func:`progress_bar` is the bar of both passes of the fit; :func:`restored_on_failure`
leaves the estimator as it was when a fit does not finish.
"""

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from mne.utils import ProgressBar, logger
from scipy import sparse

from ..model import batches, segment_lengths, train
from ..model.checkpoint import Checkpoint
from ..utils import write_atomic

# Parameters that may change between a fit and its resumption from a checkpoint.
RESUMABLE = ("max_epochs", "patience", "verbose")


def _update(digest, array):
    if sparse.issparse(array):
        array = sparse.csr_array(array)
        for part in (array.data, array.indices, array.indptr, array.shape):
            _update(digest, np.asarray(part))
        return
    array = np.ascontiguousarray(array)
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.reshape(-1).view(np.uint8))


def _described(value):
    """Return a parameter as a string that a rerun of the same script reproduces."""
    if isinstance(value, np.random.RandomState):
        # its repr holds a memory address; its state is what the fit draws from
        kind, keys, pos, has_gauss, gauss = value.get_state()
        state = [kind, hashlib.sha256(keys.tobytes()).hexdigest(), pos, has_gauss]
        return f"RandomState({json.dumps([*state, gauss])})"
    return repr(value)


def fingerprint(est, data, meg, fmri):
    """Return what a checkpoint of this fit is made for: strings only.

    The parameters (but :data:`RESUMABLE`), the stories and subjects, and a SHA-256
    of the prepared data (features, MEG runs and their samples left out,
    standardised BOLD, its TR and first volume's time), the excerpts' positions and
    the subjects' lead fields, whiteners and target maps.
    """
    params = {
        name: _described(value)
        for name, value in sorted(est.get_params().items())
        if name not in RESUMABLE
    }
    digest = hashlib.sha256()
    for story in sorted(data.features):
        _update(digest, data.features[story])
    for runs in (*data.meg.values(), *data.bold.values()):
        for story in sorted(runs):
            _update(digest, runs[story])
    # the samples left out and the volumes' times: the same runs marked or timed
    # otherwise are other data
    for name in sorted(data.meg_bad):
        for story, bad in sorted(data.meg_bad[name].items()):
            digest.update(json.dumps([name, story, bad is None]).encode())
            if bad is not None:
                _update(digest, bad)
    times = {n: [fmri[n].tr, data.bold_tmin.get(n)] for n in sorted(fmri)}
    digest.update(json.dumps(times, sort_keys=True).encode())
    for setup in meg.values():
        _update(digest, setup.gain)
        _update(digest, setup.whitener)
    for setup in fmri.values():
        if setup.target_map is not None:
            _update(digest, setup.target_map)
    for part in sorted(data.segments):
        spans = [(seg.story, seg.start, seg.stop) for seg in data.segments[part]]
        digest.update(json.dumps([part, spans]).encode())
    stories = {"train": est.train_stories_, "validation": est.validation_stories_}
    subjects = {"meg": list(meg), "fmri": list(fmri)}
    return {
        "parameters": params,
        "stories": json.dumps(stories),
        "subjects": json.dumps(subjects),
        "data": digest.hexdigest(),
    }


def train_network(est, items, objective, config, seed, weights, shard, checkpoint):
    """Train ``est.model_`` on ``items``; return the history.

    ``checkpoint`` is None or a :class:`Checkpoint` (see :func:`make_checkpoint`).
    Only rank 0 shows progress and logs the epochs. On Ctrl-C, one line names the
    last complete checkpoint, then KeyboardInterrupt goes on.
    """
    show = shard.rank == 0
    n_batches = len(batches(segment_lengths(items["train"]), config.batch_size))
    if checkpoint is not None and checkpoint.fname.exists() and show:
        logger.info(f"Resuming the fit from the checkpoint {checkpoint.fname}")
    total = est.max_epochs * n_batches
    # the records name subjects, not the network's heads ("meg0")
    names = {setup.key: name for name, setup in {**est._meg, **est._fmri}.items()}
    try:
        with progress_bar(total, "Fitting FusionEncoder", show) as update:
            history = train(
                est.model_,
                items["train"],
                items["validation"],
                objective,
                config,
                np.random.default_rng(seed),
                channel_weights=weights,
                callback=(lambda record: _report(_named(record, names)))
                if show
                else None,
                checkpoint=checkpoint,
                progress=update and (lambda done, _: update(done)),
                shard=shard,
            )
    except KeyboardInterrupt:
        if checkpoint is not None and show:
            logger.warning(_interrupted(checkpoint))
        raise
    return [_named(record, names) for record in history]


def _named(record, names):
    """Return an epoch's record with its validation r keyed by subject name."""
    if "val_r" not in record:
        return record
    return {**record, "val_r": {names[k]: r for k, r in record["val_r"].items()}}


@contextmanager
def restored_on_failure(est):
    """Put back the estimator's attributes as they were if the block does not end.

    A fit stopped by an error or Ctrl-C would leave a half-trained network that looks
    fitted (or, refitting, the new network beside the previous fit's read-out).
    """
    before = dict(vars(est))
    try:
        yield
    except BaseException:
        vars(est).clear()
        vars(est).update(before)
        raise


@contextmanager
def progress_bar(total, mesg, show):
    """Show MNE's progress bar of ``total`` steps; yield its update function.

    Yields None when not ``show``. The bar is not MNE's context manager: that
    starts a thread, meant for ``pb.subset`` in parallel jobs, that sets the bar
    back to its memory map's count (0 here) 30 times a second. The rate shown is
    that of the whole run (``smoothing=0``): steps are fast and each epoch's
    validation slow, and a moving average of the last steps' rate underestimates
    the time left.
    """
    if not show:
        yield None
        return
    bar = ProgressBar(total, mesg=mesg, smoothing=0)
    try:
        yield bar.update
    finally:
        bar._tqdm.close()  # MNE's ProgressBar closes only on deletion otherwise


def make_checkpoint(fname, est, data, meg, fmri):
    """Return the :class:`Checkpoint` of ``fname`` for this fit (None for None)."""
    if fname is None:
        return None
    return Checkpoint(Path(fname), fingerprint(est, data, meg, fmri), write_atomic)


def _interrupted(checkpoint):
    if checkpoint.saved_epoch is None:
        return (
            "Fit interrupted before its first epoch ended: no checkpoint written to "
            f"{checkpoint.fname}"
        )
    return (
        f"Fit interrupted: the last complete checkpoint (epoch "
        f"{checkpoint.saved_epoch}) is {checkpoint.fname}; fit again with "
        "checkpoint= to resume"
    )


def _report(record):
    val = ", ".join(f"{k} {v:.3f}" for k, v in record.get("val_r", {}).items())
    logger.info(
        f"Epoch {record['epoch']} ({record['phase']}): train loss "
        f"{record['train_loss']:.4f}, validation loss "
        f"{record.get('val_loss', float('nan')):.4f}, r: {val}"
    )
