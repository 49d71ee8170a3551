"""WebDataset tar shards written atomically and reproducibly, and the index that cards read.

Each work unit of the pipeline writes its own rolling run of shards per split,
``{split}/{split}-u{unit:05d}-{part:03d}.tar``, rolling over by sample count and bytes. Names
depend only on the unit, never on a run-wide counter, and every tar entry has a fixed mtime,
owner and mode (``webdataset.TarWriter(mtime=0)``), so the same input gives byte-identical
shards and a unit redone after a crash rewrites exactly the files it would have written.
Shards are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import webdataset as wds

from vrt_finetune.io_utils import atomic_write_text, no_space_as
from vrt_finetune.shard_format import INDEX_FILE, SPLITS, ShardSample, shard_name, to_tar_sample


@dataclass
class ShardInfo:
    """One finished shard, as listed in ``index.json``."""

    name: str
    """Path relative to the output directory."""
    split: str
    samples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bytes: int = 0
    sha256: str = ""

    @property
    def hours(self) -> float:
        return self.seconds / 3600


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class UnitShardWriter:
    """Writes one work unit's samples of one split into rolling shards.

    Args:
        out_dir: dataset root.
        split: ``train``/``valid``/``test``.
        unit: work-unit number (part of every shard name).
        max_samples: roll over after this many samples.
        max_bytes: roll over before a shard passes this many bytes of payload.
    """

    def __init__(
        self, out_dir: Path, split: str, unit: int, max_samples: int, max_bytes: int
    ) -> None:
        self.out_dir, self.split, self.unit = Path(out_dir), split, unit
        self.max_samples, self.max_bytes = max_samples, max_bytes
        self.finished: list[ShardInfo] = []
        self._current: ShardInfo | None = None
        self._tmp: Path | None = None
        self._writer: wds.TarWriter | None = None

    def _open(self) -> None:
        part = len(self.finished)
        name = shard_name(self.split, self.unit, part)
        final = self.out_dir / name
        final.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = final.with_name(f".{final.name}.tmp")
        self._writer = wds.TarWriter(str(self._tmp), mtime=0, user="", group="", mode=0o644)
        self._current = ShardInfo(name=name, split=self.split)

    def _close(self) -> None:
        if self._writer is None or self._current is None or self._tmp is None:
            return
        final = self.out_dir / self._current.name
        with no_space_as(final, self._current.bytes):
            self._writer.close()
        self._current.sha256 = _sha256(self._tmp)
        os.replace(self._tmp, final)
        self.finished.append(self._current)
        self._writer = self._current = self._tmp = None

    def write(self, sample: ShardSample, flac: bytes) -> None:
        """Add one sample (``KEY.flac`` + ``KEY.json``, ``vrt_finetune.shard_format``)."""
        members = to_tar_sample(sample, flac)
        size = len(flac) + len(members["json"])
        cur = self._current
        if cur is not None and (
            len(cur.samples) >= self.max_samples
            or (cur.samples and cur.bytes + size > self.max_bytes)
        ):
            self._close()
        if self._current is None:
            self._open()
        assert self._writer is not None and self._current is not None
        with no_space_as(self.out_dir / self._current.name, self._current.bytes + size):
            self._writer.write(members)
        self._current.samples.append(sample.key)
        self._current.seconds += sample.duration
        self._current.bytes += size

    def close(self) -> list[ShardInfo]:
        """Finish the last shard; returns every shard this unit wrote."""
        self._close()
        return self.finished

    def abort(self) -> None:
        """Drop the shard being written (on error); finished shards stay."""
        if self._writer is not None:
            with contextlib.suppress(OSError):  # e.g. the disk is full: the file goes anyway
                self._writer.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._writer = self._current = self._tmp = None


def clean_temporaries(out_dir: Path) -> int:
    """Remove half-written shards left by a killed run; returns how many."""
    n = 0
    for tmp in Path(out_dir).glob("*/.*.tar.tmp"):
        tmp.unlink()
        n += 1
    return n


def write_index(out_dir: Path, shards: list[ShardInfo], extra: dict | None = None) -> dict:
    """Write ``index.json``: per shard its samples, hours and sha256; per split the totals."""
    shards = sorted(shards, key=lambda s: s.name)
    splits = {
        split: {
            "shards": sum(s.split == split for s in shards),
            "samples": sum(len(s.samples) for s in shards if s.split == split),
            "hours": round(sum(s.hours for s in shards if s.split == split), 6),
        }
        for split in SPLITS
    }
    index = {
        "shards": [
            {
                "name": s.name,
                "split": s.split,
                "n_samples": len(s.samples),
                "samples": s.samples,
                "hours": round(s.hours, 6),
                "bytes": s.bytes,
                "sha256": s.sha256,
            }
            for s in shards
        ],
        "splits": splits,
        **(extra or {}),
    }
    atomic_write_text(Path(out_dir) / INDEX_FILE, json.dumps(index, indent=1, sort_keys=True))
    return index


def shard_info_from_json(data: dict) -> ShardInfo:
    return ShardInfo(**data)


def shard_info_to_json(info: ShardInfo) -> dict:
    return asdict(info)
