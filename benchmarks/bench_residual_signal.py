"""How much signal is left for the data-informed estimate's correction to find.

The correction ``K (y - G s_enc)`` of ``FusionEncoder.apply_inverse(features,
inst=...)`` adds to the stimulus-driven estimate what the stimulus does not explain.
Could it be switched off where the residual holds nothing but sensor noise? This
script measures, on the full preset's simulations (no fit needed), the best residual
any stimulus model could leave: the recording minus the lead field times the true
stimulus drive, i.e. the spontaneous activity plus the sensor noise. For it and for
the recording itself: the whitened SNR (:func:`mne_fusion.inverse.whitened_snr`)
and the number of whitened components above the Marchenko-Pastur edge of pure noise.
Mean over the test story and the three MEG subjects.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_residual_signal.py --seeds 0 1 \
        --out benchmarks/results/bench_residual_signal.json
"""

import argparse

import mne
import numpy as np
from bench_ablation import write_results

from mne_fusion.bench import PRESETS
from mne_fusion.inverse import _whitened_covariance, whitened_snr
from mne_fusion.simulation import simulate_naturalistic


def components_above_noise(raw, noise_cov):
    """Return how many whitened eigenvalues lie above the pure-noise edge."""
    white, _, _, rank, n_samples, _ = _whitened_covariance(
        raw, noise_cov, raw.info, pca=False
    )
    edge = (1 + np.sqrt(rank / n_samples)) ** 2
    return int(np.sum(np.linalg.eigvalsh(white)[-rank:] > edge))


def measure(seed, meg_cnr):
    """Return the mean SNR and component count of the recording and the residual."""
    exp = simulate_naturalistic(
        **PRESETS["full"]["simulation"], meg_cnr=meg_cnr, seed=seed, verbose=False
    )
    cells = {"recording": [], "recording - G stimulus drive": []}
    for story in exp.test_stories:
        for name in exp.test.meg_subjects:
            subject = exp.test.meg(name)
            data = subject.average(story)
            fwd = exp.forwards[name]
            rows = [fwd["sol"]["row_names"].index(n) for n in subject.info["ch_names"]]
            drive = exp.stimulus_drive[story].data[:, : data.shape[1]]
            stimulus = fwd["sol"]["data"][rows] @ drive
            cov = exp.noise_covs[name]
            for label, x in zip(cells, (data, data - stimulus), strict=True):
                raw = mne.io.RawArray(x, subject.info, verbose=False)
                snr = whitened_snr(raw, cov, verbose=False)
                cells[label].append((snr, components_above_noise(raw, cov)))
    return {
        label: dict(
            snr=float(np.mean([c[0] for c in values])),
            components=float(np.mean([c[1] for c in values])),
        )
        for label, values in cells.items()
    }


def main():
    """Measure every seed and MEG CNR, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--meg-cnrs", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--out", default="bench_residual_signal.json")
    args = parser.parse_args()
    results = {
        str(cnr): {str(seed): measure(seed, cnr) for seed in args.seeds}
        for cnr in args.meg_cnrs
    }
    print("| MEG CNR | seed | recording: SNR, components | residual: SNR, components |")
    print("| --- | --- | --- | --- |")
    for cnr, by_seed in results.items():
        for seed, cell in by_seed.items():
            rec, res = cell.values()
            print(
                f"| {cnr} | {seed} | {rec['snr']:.3f}, {rec['components']:.1f} | "
                f"{res['snr']:.3f}, {res['components']:.1f} |"
            )
    write_results(args.out, results, seeds=args.seeds, fmri_cnr=1.0)


if __name__ == "__main__":
    main()
