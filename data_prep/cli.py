"""Console script ``vrt-prep``: audio + transcripts → aligned [P]/[W] WebDataset shards."""

from __future__ import annotations

import sys


def main() -> int:
    """Entry point; the pipeline lands with the data-preparation issue."""
    print("vrt-prep: not yet available (the data pipeline has not landed yet)", file=sys.stderr)
    return 2
