"""The ``mne-fusion`` command: ``demo``, ``bench`` and ``sys-info``."""

import argparse
import sys
import tempfile
from pathlib import Path

from mne.utils import use_log_level

__all__ = ["main"]

_DEFAULT_SEEDS = {"quick": [0], "full": [0, 1, 2]}
_COMMANDS = ("demo", "bench", "sys-info")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2."""

    def error(self, message):
        if message.endswith("required: COMMAND"):
            message += f" ({', '.join(_COMMANDS[:-1])} or {_COMMANDS[-1]})"
        self.exit(2, f"{self.prog}: error: {message}\n")


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer, got {text!r}"
        )
    return value


def _condition(text):
    """Parse ``MEG,FMRI`` (two CNRs, ``inf`` for no noise) into a pair of floats."""
    parts = text.split(",")
    try:
        pair = tuple(float(part) for part in parts)
    except ValueError:
        pair = ()
    if len(pair) != 2 or not all(value > 0 for value in pair):
        raise argparse.ArgumentTypeError(
            f"expected MEG_CNR,FMRI_CNR (positive numbers or inf, e.g. 1,inf), got "
            f"{text!r}"
        )
    return pair


def _build_parser():
    parser = _Parser(
        prog="mne-fusion",
        description="MEG-fMRI fusion encoding models for MNE-Python.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="simulate, fit, compare with minimum norm and ridge, report (offline)",
        description=(
            "Simulate 3 MEG + 3 fMRI subjects (MEG CNR 1, fMRI CNR 1) on the template "
            "anatomy, fit the fusion encoder, estimate the held-out story's sources "
            "with every method, print the metrics table and write results.json, "
            "results.md and figures."
        ),
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("mne-fusion-demo"),
        help="output folder (default: ./mne-fusion-demo)",
    )
    demo.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    bench = commands.add_parser(
        "bench",
        help="the full comparison over MEG and fMRI CNRs and seeds",
        description=(
            "Every method at MEG CNR inf/1/0.1 x fMRI CNR inf/1 over several seeds: "
            "results.json (every value), results.md (mean ± std) and figures; "
            "--merge joins runs made over other seeds."
        ),
    )
    bench.add_argument(
        "--config",
        choices=("quick", "full"),
        help="'full' (default) or 'quick' (tiny sizes, a smoke test)",
    )
    bench.add_argument(
        "--out",
        type=Path,
        default=Path("mne-fusion-bench"),
        help="output folder (default: ./mne-fusion-bench)",
    )
    bench.add_argument(
        "--seeds",
        type=_seed,
        nargs="+",
        action="extend",
        help="random seeds (default: 0 for quick, 0 1 2 for full)",
    )
    bench.add_argument(
        "--conditions",
        type=_condition,
        nargs="+",
        action="extend",
        metavar="MEG,FMRI",
        help="the (MEG CNR, fMRI CNR) pairs to run, e.g. inf,1 1,1 0.1,1 (default: "
        "the config's: MEG inf/1/0.1 x fMRI inf/1 for full)",
    )
    bench.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        action="extend",
        metavar="FOLDER",
        help="merge the output folders of runs over other seeds into --out "
        "(no --config or --seeds)",
    )
    commands.add_parser("sys-info", help="versions of mne-fusion and its dependencies")
    return parser


def _created_by(out):
    """Return the folders that creating ``out`` makes, deepest first."""
    missing = []
    for folder in (out, *out.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _check_out(parser, out):
    """Create ``out`` and make sure it takes files, or exit with a one-line error."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        parser.error(f"argument --out: cannot write to {str(out)!r}: {err.strerror}")
    return out


def main(argv=None):
    """Run the ``mne-fusion`` command line.

    Parameters
    ----------
    argv : list of str | None
        The arguments; None (default) reads ``sys.argv``.

    Returns
    -------
    code : int
        The exit code: 0 on success, 130 when interrupted (Ctrl-C) and 1 when a
        file cannot be written, each with a one-line message on stderr. Bad
        arguments exit with code 2 and a one-line message on stderr.
    """
    parser = _build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # argparse checks the required command before unknown options: "--bogus" alone
    # would read "arguments are required: COMMAND"
    if argv and argv[0].startswith("-") and argv[0] not in ("-", "--", "-h", "--help"):
        parser.error(
            f"unrecognized arguments: {argv[0]} (the commands are "
            f"{', '.join(_COMMANDS[:-1])} and {_COMMANDS[-1]}; options go after the "
            "command)"
        )
    args = parser.parse_args(argv)
    if args.command == "sys-info":
        from .utils import sys_info

        sys_info()
        return 0
    from .bench import merge_bench, run_bench, run_demo

    if (
        args.command == "bench"
        and args.merge
        and (args.config or args.seeds or args.conditions)
    ):
        parser.error(
            "argument --merge: not allowed with --config, --seeds or --conditions"
        )
    if args.command == "bench" and args.seeds:
        repeated = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
        if repeated:
            parser.error(f"argument --seeds: repeated: {' '.join(map(str, repeated))}")
    if args.command == "bench" and args.conditions:
        repeated = {c for c in args.conditions if args.conditions.count(c) > 1}
        if repeated:
            pairs = ", ".join(f"{m:g},{f:g}" for m, f in sorted(repeated))
            parser.error(f"argument --conditions: repeated: {pairs}")
    created = _created_by(args.out)
    out = _check_out(parser, args.out)
    try:
        with use_log_level("INFO"):
            if args.command == "demo":
                text = run_demo(out, seed=args.seed)
            elif args.merge:
                try:
                    text = merge_bench(args.merge, out)
                except (ValueError, FileNotFoundError) as err:
                    for folder in created:
                        folder.rmdir()  # bad input leaves nothing behind
                    parser.error(f"argument --merge: {err}")
            else:
                config = args.config or "full"
                seeds = args.seeds or _DEFAULT_SEEDS[config]
                text = run_bench(config, out, seeds, conditions=args.conditions)
    except KeyboardInterrupt:
        sys.stderr.write(
            f"{parser.prog}: interrupted; {str(out)!r} may hold partial results.\n"
        )
        return 130
    except PermissionError as err:
        from .utils import get_data_root

        hint = "Make it writable"
        if Path(str(err.filename)).is_relative_to(get_data_root().parent):
            hint += (
                ", or point MNE_DATA (environment variable or mne.set_config) to a "
                "writable folder"
            )
        sys.stderr.write(
            f"{parser.prog}: error: cannot write {str(err.filename)!r}: "
            f"{err.strerror}. {hint}.\n"
        )
        return 1
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
