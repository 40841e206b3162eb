"""A tiny FusionEncoder fit, run by tests/test_training_scale.py under ``torchrun``.

Usage: ``torchrun --standalone --nproc_per_node N _ddp_fit.py OUT_DIR``. Each rank
writes ``OUT_DIR/rank{R}.json``: hashes of its parameters after training (before the
read-out and the final broadcast), of the network of the second pass (the default
``source_refit="auto"``) and at the end, its history and validation r, and the
stories whose data-informed estimate it computed for the second pass.
Rank 0 also checkpoints to ``OUT_DIR/fit.ckpt``.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import mne
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_encoder import TINY, make_experiment  # noqa: E402

from mne_fusion import FusionEncoder  # noqa: E402
from mne_fusion.encoder import _estimator, _fit  # noqa: E402
from mne_fusion.model.low_rank import RowSketch  # noqa: E402


def state_hash(model):
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class _Base:
    """What make_experiment needs of pytest's tmp_path_factory."""

    def __init__(self, path):
        self.path = Path(path)

    def getbasetemp(self):
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path


def main(out):
    torch.set_num_threads(1)
    mne.set_log_level("WARNING")
    rank = int(os.environ.get("RANK", "0"))
    exp = make_experiment(_Base(out / f"base{rank}"))
    trained = {}
    train_network = _fit.train_network

    def spy(est, *args):
        history = train_network(est, *args)
        trained["hash"] = state_hash(est.model_)
        return history

    refit_network = _estimator.refit_network

    def refit_spy(*args, **kwargs):
        network = refit_network(*args, **kwargs)
        trained["refit"] = state_hash(network)
        return network

    _fit.train_network, _estimator.refit_network = spy, refit_spy
    estimated, add = [], RowSketch.add

    def add_spy(sketch, key, block):
        estimated.append(key)
        return add(sketch, key, block)

    RowSketch.add = add_spy
    params = {**TINY, "max_epochs": 3, "device": "cpu", "source_refit": "auto"}
    est = FusionEncoder(**params)
    est.fit(exp["ds"], checkpoint=out / "fit.ckpt")
    result = {
        "trained": trained["hash"],
        "refit": trained.get("refit"),
        "estimated": estimated,
        "final": state_hash(est.model_),
        "history": [
            {k: v for k, v in rec.items() if k != "seconds"} for rec in est.history_
        ],
        "initialized": torch.distributed.is_initialized(),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
