"""``mne-fusion bench --config full`` at fMRI CNR 1 only: issue 17's conditions.

The full preset's three MEG CNRs at fMRI CNR 1, half the full bench's fits (the
MEG-only encoders, which the full bench fits at fMRI CNR inf and reuses, are fitted
here). Arguments are those of ``mne-fusion bench``; the output folder is one of
``mne-fusion bench`` (``results.json`` records the command as the full preset's).
``--merge`` joins such runs (``mne-fusion bench --merge`` refuses them as
interrupted full runs: they recorded no planned conditions). It made the committed
``benchmarks/results/bench_full_story_penalty`` and is kept to merge and reproduce
those; new runs take ``mne-fusion bench --config full --conditions inf,1 1,1 0.1,1``
(the same fits; ``mne-fusion bench --merge`` merges them)::

    OMP_NUM_THREADS=1 python benchmarks/bench_full_fmri_cnr1.py bench --config full \
        --seeds 0 --out /tmp/bench_s0
    python benchmarks/bench_full_fmri_cnr1.py bench --merge /tmp/bench_s0 \
        /tmp/bench_s1 --out benchmarks/results/bench_full_story_penalty
"""

import sys

from mne_fusion.bench import _protocol
from mne_fusion.cli import main

full = _protocol.PRESETS["full"]
full["conditions"] = tuple(c for c in full["conditions"] if c[1] == 1.0)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
