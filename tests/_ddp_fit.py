"""A tiny FusionEncoder fit, run by tests/test_training_scale.py under ``torchrun``.

Usage: ``torchrun --standalone --nproc_per_node N _ddp_fit.py OUT_DIR``. Each rank
writes ``OUT_DIR/rank{R}.json``: hashes of its parameters after training (before the
read-out and the final broadcast), of the network of the second pass (the default
``source_refit="auto"``) and at the end, its history and validation r, the stories
whose data-informed estimate it computed for the second pass, and a small network
trained as the second pass trains, on fixed targets (:func:`second_pass_alone`).
Rank 0 also checkpoints to ``OUT_DIR/fit.ckpt``.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import mne
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_encoder import TINY, make_experiment  # noqa: E402

from mne_fusion import FusionEncoder  # noqa: E402
from mne_fusion.encoder import _estimator, _fit  # noqa: E402
from mne_fusion.model import FusionNetwork, NetworkConfig  # noqa: E402
from mne_fusion.model.distributed import process_group  # noqa: E402
from mne_fusion.model.low_rank import LowRankRows, RowSketch  # noqa: E402
from mne_fusion.model.source_training import (  # noqa: E402
    TargetTraining,
    train_to_targets,
)


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


def second_pass_alone(shard=None):
    """Train a small network on fixed targets as the second pass does; return its
    parameters (lists). Every excerpt counts as many values: the shares' mean
    losses, averaged by DDP, are the global batch's."""
    rng = np.random.default_rng(0)
    features, rows = {}, {}
    for story in ("a", "b", "c"):
        features[story] = rng.standard_normal((300, 3)).astype(np.float32)
        rows[story] = np.tanh(features[story][:, :2]).astype(np.float32)
    targets = LowRankRows(rows, np.eye(2, dtype=np.float32))
    config = NetworkConfig(
        n_features=3, n_sources=2, d_model=8, n_heads=2, n_layers=1,
        dim_feedforward=16, window=20, input_kernel=5, dropout=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    network = FusionNetwork(config)
    training = TargetTraining(
        segment=100, burn_in=10, lr=3e-3, weight_decay=0.0, max_epochs=2,
        patience=2, steps_per_epoch=5,
    )  # fmt: skip
    errors = train_to_targets(
        network, features, targets, ["a", "b"], ["c"], training, rng, shard
    )
    return errors, [t.tolist() for t in network.state_dict().values()]


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
    with process_group("cpu") as shard:
        alone = second_pass_alone(shard)
    result = {
        "alone": alone,
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
