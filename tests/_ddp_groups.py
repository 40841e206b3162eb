"""Groups created one after another, run by tests/test_training_scale.py under
``torchrun``: as a script fitting several encoders does.

Usage: ``torchrun --standalone --nproc_per_node N _ddp_groups.py OUT_DIR K``. Each rank
enters :func:`~mne_fusion.model.distributed.process_group` K times, sums its rank + 1
over the processes in each, and writes the K sums to ``OUT_DIR/rank{R}.json``.
"""

import json
import os
import sys
from pathlib import Path

import torch

from mne_fusion.model.distributed import process_group


def main(out, n_groups):
    sums = []
    for _ in range(n_groups):
        with process_group("cpu") as shard:
            sums.append(float(shard.sum(torch.tensor(shard.rank + 1.0))))
    rank = os.environ.get("RANK", "0")
    (out / f"rank{rank}.json").write_text(json.dumps(sums))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
