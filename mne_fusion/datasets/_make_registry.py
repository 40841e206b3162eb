"""Regenerate the shipped OpenNeuro registries from the verified reference TSVs.

Run from the repository root, with the reference folder beside the clone::

    python -m mne_fusion.datasets._make_registry ../shared/reference/datasets

Each ``<accession>.tsv`` there (columns ``path size_bytes hash annex_key storage
s3_version_id url url_kind``) becomes ``registry/<accession>.tsv.gz`` in this package,
with the four columns the fetcher needs: ``path size hash url``. The ``url`` column is
copied as is, so ``url_kind`` is honoured: ``s3-exact`` and ``s3-samekey`` rows keep
their versioned S3 URL (for ``s3-samekey`` an older S3 key holding the same annex key),
``api-snapshot`` rows keep their snapshot-pinned OpenNeuro API URL.
"""

import argparse
import csv
import gzip
import io
import re
from pathlib import Path

REGISTRY_DIR = Path(__file__).parent / "registry"
COLUMNS = ("path", "size", "hash", "url")
_HASH = re.compile(r"^(md5:[0-9a-f]{32}|sha256:[0-9a-f]{64})$")


def read_reference_tsv(fname):
    """Read one reference TSV into rows of the shipped registry.

    Parameters
    ----------
    fname : path-like
        A ``<accession>.tsv`` of the reference folder.

    Returns
    -------
    rows : list of dict
        One dict per file with the keys ``path``, ``size`` (int), ``hash`` and ``url``,
        in the order of the TSV.
    """
    rows = []
    with open(fname, encoding="utf-8", newline="") as fid:
        for line in csv.DictReader(fid, delimiter="\t"):
            if not _HASH.match(line["hash"]):
                raise ValueError(
                    f"{fname}: bad hash {line['hash']!r} for {line['path']}"
                )
            if not line["url"].startswith("https://"):
                raise ValueError(f"{fname}: bad url {line['url']!r} for {line['path']}")
            rows.append(
                dict(
                    path=line["path"],
                    size=int(line["size_bytes"]),
                    hash=line["hash"],
                    url=line["url"],
                )
            )
    return rows


def write_registry(rows, fname):
    """Write registry rows as a deterministic gzipped TSV (same input, same bytes).

    Parameters
    ----------
    rows : list of dict
        Rows as returned by :func:`read_reference_tsv`.
    fname : path-like
        The ``.tsv.gz`` file to write.
    """
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    # mtime=0 keeps the archive byte-identical between regenerations
    with open(fname, "wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as fid:
        fid.write(text.getvalue().encode("utf-8"))


def main(argv=None):
    """Regenerate every registry from a folder of reference TSVs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding <accession>.tsv")
    parser.add_argument("--out", type=Path, default=REGISTRY_DIR)
    args = parser.parse_args(argv)
    tsvs = sorted(args.source.glob("ds*.tsv"))
    if not tsvs:
        parser.error(f"no ds*.tsv in {args.source}")
    args.out.mkdir(parents=True, exist_ok=True)
    for tsv in tsvs:
        rows = read_reference_tsv(tsv)
        out = args.out / f"{tsv.stem}.tsv.gz"
        write_registry(rows, out)
        print(f"{out}: {len(rows)} files")  # noqa: T201


if __name__ == "__main__":
    main()
