"""Shards checked against the ``index.json`` that ``vrt-prep`` wrote: size, sha256, samples.

``vrt-prep verify DIR`` checks a whole dataset; training checks its shard lists at start-up
(``data.verify``) so a truncated, bit-flipped or swapped shard stops the run before it trains on
a silently thinner or different corpus. Each shard is read once: the bytes go through sha256
while the tar headers are parsed for the sample keys, and shards are checked in parallel threads
(``hashlib`` and file reads release the GIL).

Passed checks are cached by absolute path, size and mtime (``~/.cache/vrt-finetune`` or
``$VRT_CACHE_DIR``), so a restarted run does not re-hash terabytes; a changed file has a new
mtime or size and is checked again. Failures are never cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tarfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vrt_finetune.io_utils import atomic_write_text
from vrt_finetune.shard_format import (
    INDEX_FILE,
    RUN_CONFIG,
    ShardFormatError,
    read_index,
    unit_marker,
    unit_of_shard,
)

log = logging.getLogger(__name__)

CACHE_FILE = "verified_shards.json"


@dataclass(frozen=True)
class ShardCheck:
    """The verdict on one shard."""

    path: Path
    name: str
    """Name in the index (relative to the dataset directory)."""
    ok: bool
    problem: str = ""
    """What differs from the index (empty when ``ok``)."""
    cached: bool = False
    """Passed earlier with the same size and mtime; not re-read."""

    def fix(self, root: Path) -> str:
        """The command that re-creates this shard (``vrt-prep`` redoes the unit that wrote it)."""
        unit = unit_of_shard(self.name)
        if unit is None:
            return f"re-create {self.path} with the tool that wrote it"
        return (
            f"rm {unit_marker(root, unit)} && vrt-prep run --config {root / RUN_CONFIG} "
            f"(vrt-prep redoes unit {unit} alone and rewrites its shards)"
        )


def _cache_path() -> Path:
    base = os.environ.get("VRT_CACHE_DIR") or Path.home() / ".cache" / "vrt-finetune"
    return Path(base) / CACHE_FILE


def _cache_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _load_cache() -> dict[str, str]:
    try:
        return json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_cache(entries: dict[str, str]) -> None:
    try:
        _cache_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(_cache_path(), json.dumps(entries, sort_keys=True))
    except OSError as err:  # a read-only home must not stop verification
        log.warning("could not save the shard-check cache %s: %s", _cache_path(), err)


class _HashingReader:
    """A file object that feeds every byte read to sha256 (tarfile reads the stream once)."""

    def __init__(self, f) -> None:
        self.f, self.sha, self.n = f, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.sha.update(data)
        self.n += len(data)
        return data


def _sample_keys(tar: tarfile.TarFile) -> list[str]:
    """Sample keys in order, by webdataset's rule: the member name up to its first dot."""
    keys: list[str] = []
    for member in tar:
        if not member.isfile():
            continue
        directory, _, base = member.name.rpartition("/")
        key = (directory + "/" if directory else "") + base.split(".", 1)[0]
        if not keys or keys[-1] != key:
            keys.append(key)
    return keys


def check_shard(path: Path, entry: dict) -> ShardCheck:
    """Read ``path`` once and compare it with its ``index.json`` entry."""
    name = entry["name"]
    if not path.is_file():
        return ShardCheck(path, name, False, "missing")
    size = path.stat().st_size
    problems = []
    with path.open("rb") as f:
        reader = _HashingReader(f)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                keys = _sample_keys(tar)
        except (tarfile.TarError, OSError, EOFError) as err:
            keys = None
            problems.append(f"not a readable tar ({err})")
        while reader.read(1 << 20):  # the end-of-archive padding counts in the checksum
            pass
    if "bytes" in entry and size < entry["bytes"]:
        problems.append(f"{size} bytes, less than the {entry['bytes']} bytes of samples listed")
    if entry.get("sha256") and reader.sha.hexdigest() != entry["sha256"]:
        problems.append("sha256 differs (the file changed after vrt-prep wrote it)")
    expected = entry.get("samples")
    if keys is not None and expected is not None and keys != list(expected):
        problems.append(f"{len(keys)} samples, the index lists {len(expected)}")
    elif keys is not None and "n_samples" in entry and len(keys) != entry["n_samples"]:
        problems.append(f"{len(keys)} samples, the index lists {entry['n_samples']}")
    return ShardCheck(path, name, not problems, "; ".join(problems))


def verify_entries(
    items: Sequence[tuple[Path, dict]], workers: int = 4, use_cache: bool = True
) -> list[ShardCheck]:
    """Check ``(path, index entry)`` pairs in parallel; results in the order given."""
    cache = _load_cache() if use_cache else {}
    results: list[ShardCheck | None] = [None] * len(items)
    todo = []
    for i, (path, entry) in enumerate(items):
        key = _cache_key(path) if path.is_file() else None
        if key is not None and cache.get(key) == entry.get("sha256"):
            results[i] = ShardCheck(path, entry["name"], True, cached=True)
        else:
            todo.append(i)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, check in zip(todo, pool.map(lambda i: check_shard(*items[i]), todo), strict=True):
            results[i] = check
    if use_cache:
        fresh = {
            _cache_key(c.path): items[i][1].get("sha256", "")
            for i, c in enumerate(results)
            if c is not None and c.ok and not c.cached and items[i][1].get("sha256")
        }
        if fresh:
            _save_cache({**_load_cache(), **fresh})
    return [c for c in results if c is not None]


def verify_dataset(
    root: str | Path, splits: Iterable[str] | None = None, workers: int = 4, use_cache: bool = False
) -> list[ShardCheck]:
    """Check every shard ``root/index.json`` lists (of ``splits``, default all).

    Raises:
        ShardFormatError: no ``index.json`` at ``root``.
    """
    root = Path(root)
    wanted = set(splits) if splits is not None else None
    entries = [
        e for e in read_index(root).get("shards", []) if wanted is None or e["split"] in wanted
    ]
    return verify_entries([(root / e["name"], e) for e in entries], workers, use_cache)


def _index_entry(path: Path, indexes: dict[Path, dict[str, dict]]) -> tuple[Path, dict] | None:
    """The dataset directory and ``index.json`` entry that list the shard at ``path``.

    ``indexes`` caches each directory's entries by name: a list of thousands of shards reads
    each ``index.json`` (which lists every sample key) once, not once per shard.
    """
    for root in list(path.parents)[:3]:  # DIR/split/shard.tar: the index is two levels up
        if root not in indexes:
            if not (root / INDEX_FILE).is_file():
                continue
            indexes[root] = {e["name"]: e for e in read_index(root).get("shards", [])}
        entry = indexes[root].get(path.relative_to(root).as_posix())
        if entry is not None:
            return root, entry
    return None


class ShardVerificationError(ShardFormatError):
    """Shards that do not match their index; the message says how to re-create each."""


def verify_shard_list(urls: Sequence[str], workers: int = 4) -> int:
    """Check the local shards of a training or validation list against their indexes.

    Remote URLs and shards no ``index.json`` lists cannot be checked and are counted in the log.

    Returns:
        how many shards were checked (cached passes included).

    Raises:
        ShardVerificationError: a shard is missing, truncated, changed or holds other samples.
    """
    items, roots, unlisted = [], [], 0
    indexes: dict[Path, dict[str, dict]] = {}
    for url in urls:
        path = Path(url.removeprefix("file:"))
        local = "://" not in url and not url.startswith("pipe:")
        found = _index_entry(path, indexes) if local else None
        if found is None:
            unlisted += 1
            continue
        roots.append(found[0])
        items.append((path, found[1]))
    if unlisted:
        log.warning(
            "%d of %d shards are remote or not listed in an index.json: not verified",
            unlisted,
            len(urls),
        )
    checks = verify_entries(items, workers)
    bad = [(c, root) for c, root in zip(checks, roots, strict=True) if not c.ok]
    if bad:
        lines = [f"{c.path}: {c.problem}\n  re-create: {c.fix(root)}" for c, root in bad[:10]]
        more = f"\n… and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise ShardVerificationError(
            f"{len(bad)} of {len(checks)} shards do not match their index.json:\n"
            + "\n".join(lines)
            + more
            + "\n(data.verify=false trains on them anyway, counting unreadable samples)"
        )
    log.info(
        "verified %d shards against their index.json (%d from the cache)",
        len(checks),
        sum(c.cached for c in checks),
    )
    return len(checks)
