"""Reading a prepared dataset directory back: its splits, samples and rejected items.

What the inspection page (:mod:`data_prep.inspect_page`) and the boundary scorer
(:mod:`data_prep.score`) read from a ``vrt-prep`` output; file names and the sample layout are
the shard contract's (:mod:`vrt_finetune.shard_format`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import webdataset as wds

from vrt_finetune.shard_format import (
    SPLITS,
    SUMMARY_FILE,
    UNITS_DIR,
    ShardFormatError,
    ShardSample,
    from_tar_sample,
    read_index,
)


def dataset_splits(root: str | Path) -> dict[str, list[Path]]:
    """The splits a dataset directory holds and their shards, in index order.

    Args:
        root: The dataset directory (``vrt-prep``'s output).

    Returns:
        Split name → shard paths, for each split with at least one shard (train, valid, test
        first, then any other in index order).

    Raises:
        ShardFormatError: no ``index.json`` there, or it lists no shard at all.
    """
    index = read_index(root)
    out: dict[str, list[Path]] = {}
    for shard in index.get("shards", []):
        out.setdefault(str(shard["split"]), []).append(Path(root) / shard["name"])
    if not out:
        raise ShardFormatError(
            f"{Path(root)} holds no shards (its index lists none): nothing to read; "
            "prepare data with `vrt-prep run`"
        )
    order = {s: i for i, s in enumerate(SPLITS)}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def iter_samples(shards: list[Path]) -> Iterator[tuple[ShardSample, bytes]]:
    """Every sample of some shards, in order, with its FLAC bytes.

    Raises:
        ShardFormatError: a shard is missing or unreadable, or a sample breaks the contract.
    """
    for shard in shards:
        if not shard.is_file():
            raise ShardFormatError(f"{shard}: listed in index.json but missing")
        try:
            for raw in wds.tarfile_samples([{"url": str(shard)}]):
                yield from_tar_sample(raw)
        except (OSError, EOFError, ValueError) as err:
            if isinstance(err, ShardFormatError):
                raise
            raise ShardFormatError(f"{shard}: unreadable shard ({err})") from err


def read_samples(root: str | Path) -> dict[str, list[ShardSample]]:
    """Every sample's metadata (no audio), per split.

    Raises:
        ShardFormatError: see :func:`dataset_splits` and :func:`iter_samples`.
    """
    return {
        split: [sample for sample, _ in iter_samples(shards)]
        for split, shards in dataset_splits(root).items()
    }


def read_rejects(root: str | Path) -> list[dict]:
    """Examples of rejected items (``key``, ``source``, ``reason``, ``message``).

    Read from ``summary.json``'s ``reject_examples`` and, for a run whose summary is not
    written yet (ranks still working), from the work units' completion markers; an item listed
    in both appears once.

    Args:
        root: The dataset directory.

    Returns:
        The examples, sorted by reason then key.
    """
    root = Path(root)
    found: list[dict] = []
    summary = root / SUMMARY_FILE
    if summary.is_file():
        found += json.loads(summary.read_text(encoding="utf-8")).get("reject_examples", [])
    for marker in sorted((root / UNITS_DIR).glob("unit-*.json")):
        found += json.loads(marker.read_text(encoding="utf-8")).get("examples", [])
    unique = {(e.get("reason", ""), e.get("key", ""), e.get("source", "")): e for e in found}
    return [unique[k] for k in sorted(unique)]
