"""Hugging Face datasets as a ``vrt-prep`` source: streamed or prepared, split across ranks,
resumable.

Rows → work units → ranks, the same rule as every other source (:mod:`data_prep.pipeline`):

* rows come in the dataset's order (data files sorted, rows in file order); unit ``u`` is rows
  ``[u·N, (u+1)·N)`` with ``N = shards.items_per_unit``, so keys, shard names and splits do not
  depend on how many machines run;
* ``IterableDataset.batch(N)`` makes each unit one element of the stream, and
  ``split_dataset_by_node(strategy="examples")`` gives rank ``r`` of ``W`` the units with
  ``u % W == r``. NOTE: the library's ``"shards"`` strategy (each rank reads only its own data
  files) reads less, but its unit boundaries would move with ``W`` and with the file sizes, so
  two ranks would not give the shards one rank gives. Here every rank reads every row's bytes;
  it turns only its own units into items and decodes only their audio;
* a unit whose marker exists (a finished unit of an earlier run) is skipped before its rows
  become items (:func:`data_prep.pipeline.run_unit_stream`): its audio is neither fetched nor
  decoded;
* the rank's units go to the worker pool, which decodes, aligns and writes; this process only
  reads the stream, at most ``2 × workers`` units ahead.

``streaming: false`` downloads and prepares the dataset first (``load_dataset``), then reads it
through the same stream (``Dataset.to_iterable_dataset``), so both give the same units.

Audio is read undecoded (``Audio(decode=False)``: the encoded bytes, or a path) and decoded by
:mod:`data_prep.audio_io`, as files from a manifest are. Why not the ``Audio`` feature's own
decoding: in ``datasets`` 5 it yields a lazy torchcodec ``AudioDecoder`` that would still need
the mix-down, resampling and checks ``audio_io`` does; with ``audio_io`` a row and the same
file in a manifest give byte-identical samples; a cell that cannot be decoded becomes a counted
reject in a worker (``unreadable``, ``truncated`` …) instead of an exception inside the
``datasets`` iterator, which would end the stream; and skipped rows cost no decoding.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_prep.align.base import AlignedWord
from data_prep.align.given import read_inline_words
from data_prep.column_presets import ColumnMap, describe_presets, resolve_columns
from data_prep.config import SourceConfig
from data_prep.errors import SourceError
from data_prep.language_codes import language_code
from data_prep.sources import AUDIO_EXTENSIONS, SourceItem, safe_key

if TYPE_CHECKING:
    import datasets

BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".tar": "webdataset"}
BUILDERS |= {ext: "audiofolder" for ext in AUDIO_EXTENSIONS}
"""``datasets`` builder of local data files, by extension (a directory: inferred by it)."""

KEY_COLUMN = "__key__"
"""WebDataset's sample key: names items whose audio cell has no file name."""

Unit = tuple[int, Callable[[], list[SourceItem]]]
"""A work unit's number and the function that makes its items (called only if it runs)."""


def columns_of(source: SourceConfig) -> ColumnMap:
    """The columns ``source`` reads: its preset's, with its ``*_column`` overrides."""
    return resolve_columns(
        source.preset,
        audio=source.audio_column,
        text=source.text_column,
        speaker=source.speaker_column,
        language=source.language_column,
        words=source.words_column,
        segments=source.segments_column,
    )


def _is_saved(path: Path) -> bool:
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def _load(source: SourceConfig) -> tuple[datasets.IterableDataset, int | None]:
    """The split as a stream, and its number of rows when known without reading it."""
    import datasets

    path, split = source.path, source.split
    local = Path(path)
    if local.is_dir() and _is_saved(local):
        ds = datasets.load_from_disk(path)
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise SourceError(f"{path}: no split {split!r} (splits: {list(ds)})")
            ds = ds[split]
        return ds.to_iterable_dataset(), len(ds)
    if local.exists() or re.search(r"[*?\[]", path):
        if local.is_dir():
            args: dict[str, Any] = {"path": path, "name": source.config_name}
        else:
            builder = BUILDERS.get(Path(path.rstrip("*")).suffix.lower())
            if builder is None:
                raise SourceError(
                    f"{path}: cannot tell the format of these files; give a directory, or "
                    f"files ending in {', '.join(sorted(BUILDERS))}"
                )
            args = {"path": builder, "data_files": {split: path}}
    else:
        args = {"path": path, "name": source.config_name, "revision": source.revision}
    ds = datasets.load_dataset(**args, split=split, streaming=source.streaming)
    if isinstance(ds, datasets.Dataset):  # streaming: false, prepared in the cache
        return ds.to_iterable_dataset(), len(ds)
    info = ds.info.splits.get(split) if ds.info.splits else None
    return ds, (info.num_examples or None) if info is not None else None


def open_stream(source: SourceConfig) -> tuple[datasets.IterableDataset, int | None]:
    """Open ``source`` (a hub name, a ``save_to_disk`` directory or local data files).

    Raises:
        SourceError: the dataset cannot be reached or found (the message names it and says
            what to do: log in, accept its terms, pass a local copy …).
    """
    try:
        return _load(source)
    except SourceError:
        raise
    except ConnectionError as err:
        raise SourceError(
            f"{source.path}: cannot reach the dataset on the Hugging Face hub ({err}). Offline "
            "(HF_HUB_OFFLINE=1) only local data is read: run where the hub is reachable, or "
            f"download it once (`hf download {source.path} --repo-type dataset --local-dir DIR`"
            ", or `save_to_disk`) and pass --source.path=DIR"
        ) from err
    except RuntimeError as err:
        if "scripts are no longer supported" not in str(err):
            raise
        raise SourceError(
            f"{source.path}: {err}; read the hub's Parquet conversion instead "
            "(--source.revision=refs/convert/parquet) or a local Parquet copy (--source.path)"
        ) from err
    except (FileNotFoundError, ValueError) as err:  # incl. DatasetNotFoundError, bad split
        hint = ""
        if "gated" in str(err) or "authenticated" in str(err):
            hint = (
                f"; accept its terms at https://huggingface.co/datasets/{source.path} "
                "and log in (`hf auth login`)"
            )
        raise SourceError(f"{source.path} (split {source.split!r}): {err}{hint}") from err


class HfUnits:
    """This rank's work units of a Hugging Face dataset, read as a stream.

    Args:
        source: The recipe's source (``kind: hf``).
        items_per_unit: Rows per work unit.
        rank: This machine's rank.
        world_size: Machines sharing the run.

    Raises:
        SourceError: the dataset cannot be opened, or lacks a column the recipe names (the
            message lists the columns it has and the presets).
    """

    def __init__(
        self, source: SourceConfig, items_per_unit: int, rank: int = 0, world_size: int = 1
    ) -> None:
        import datasets

        self.source, self.n, self.rank, self.world_size = source, items_per_unit, rank, world_size
        self.columns = columns_of(source)
        ds, self.n_rows = open_stream(source)
        names = ds.column_names
        if names is None:  # features unknown until read (e.g. JSON lines): the first row's
            first = next(iter(ds), None)
            names = list(first) if first is not None else None
        wanted = list(dict.fromkeys(self.columns.used()))  # one column may serve twice
        if names is not None:
            missing = [c for c in wanted if c not in names]
            if missing:
                raise SourceError(
                    f"{source.path} (split {source.split!r}): no column "
                    f"{', '.join(map(repr, missing))}; its columns: {names}. Choose the layout "
                    f"with source.preset ({describe_presets()}) or name the column with "
                    "source.audio_column / text_column / speaker_column / language_column / "
                    "words_column / segments_column"
                )
            if KEY_COLUMN in names:
                wanted.append(KEY_COLUMN)
            ds = ds.select_columns(wanted)
            if isinstance((ds.features or {}).get(self.columns.audio), datasets.Audio):
                ds = ds.cast_column(self.columns.audio, datasets.Audio(decode=False))
        self._ds = ds

    @property
    def n_rows_of_rank(self) -> int | None:
        """Items this rank processes, when known up front (progress bar total)."""
        if self.n_rows is None or self.columns.segments:
            return None
        starts = range(self.rank * self.n, self.n_rows, self.world_size * self.n)
        return sum(min(self.n, self.n_rows - s) for s in starts)

    def __iter__(self) -> Iterator[Unit]:
        from datasets.distributed import split_dataset_by_node

        stream = self._ds.batch(batch_size=self.n)
        if self.world_size > 1:
            stream = split_dataset_by_node(stream, self.rank, self.world_size, "examples")
        for k, batch in enumerate(stream):
            u = self.rank + k * self.world_size
            yield u, functools.partial(self._unit_items, u, batch)

    def _unit_items(self, unit: int, batch: dict[str, list]) -> list[SourceItem]:
        columns = list(batch.values())
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*columns, strict=True)]
        items: list[SourceItem] = []
        for j, row in enumerate(rows):
            items += row_items(row, unit * self.n + j, self.columns, self.source)
        return items


def hf_items(source: SourceConfig) -> Iterator[SourceItem]:
    """Every item of ``source``, in order (one machine, no units skipped)."""
    for _, make in HfUnits(source, items_per_unit=256):
        yield from make()


# -- one row → items --------------------------------------------------------------------------


def _name_of(path: str) -> str:
    """File stem of a local path or a URL (``zip://a.wav::/x.zip`` → ``a``)."""
    return Path(path.split("::")[0].split("://")[-1]).stem


def _read_url(url: str) -> bytes:
    """One file's bytes from a streamed dataset's URL (``hf://…``, ``zip://…::…``)."""
    from datasets.utils.file_utils import xopen

    with xopen(url, "rb") as f:
        return f.read()


def _audio_of(cell: Any, where: str) -> tuple[str | bytes | None, str, tuple[str, str] | None]:
    """``(audio for audio_io, file stem for the key, error)`` of an audio cell."""
    if isinstance(cell, bytes | bytearray):
        return bytes(cell), "", None
    if isinstance(cell, dict):
        data, path = cell.get("bytes"), cell.get("path")
    elif isinstance(cell, str):
        data, path = None, cell
    elif cell is None:
        data = path = None
    else:
        return None, "", ("unreadable", f"{where}: the audio cell is a {type(cell).__name__}")
    name = _name_of(path) if path else ""
    if data:
        return bytes(data), name, None
    if not path:
        return None, name, ("missing_file", f"{where}: no audio (the cell is empty)")
    if "://" in path:
        try:
            return _read_url(path), name, None
        except (OSError, ValueError) as err:
            return None, name, ("missing_file", f"{where}: cannot read the audio {path}: {err}")
    if Path(path).is_file():
        return path, name, None
    return (
        None,
        name,
        (
            "missing_file",
            f"{where}: the audio cell holds no bytes and its file {path} does not exist here; "
            "embed the audio in the dataset or fix the path",
        ),
    )


def _records(value: Any) -> list[dict]:
    """A list of dicts from a list of dicts or a dict of lists (``datasets``' ``Sequence`` of
    a struct reads as the latter)."""
    if isinstance(value, dict):
        keys = list(value)
        return [dict(zip(keys, vals, strict=True)) for vals in zip(*value.values(), strict=True)]
    return list(value or [])


def _words_of(value: Any, shift: float = 0.0) -> tuple[AlignedWord, ...] | None:
    """Word times from a words cell (``data_prep.align.given.read_inline_words``), ``shift``
    seconds subtracted; ``None`` when empty.

    Raises:
        ValueError, KeyError, TypeError: a malformed cell.
    """
    if not value:
        return None
    if isinstance(value, dict) and "word" in value:  # a Sequence of structs: a dict of lists
        value = _records(value)
    words = tuple(
        replace(w, start=w.start - shift, end=w.end - shift) for w in read_inline_words(value)
    )
    return words or None


def row_items(row: dict, index: int, columns: ColumnMap, source: SourceConfig) -> list[SourceItem]:
    """The items of one row: the row itself, or one per segment of a long recording.

    Never raises on bad data: an empty cell, a missing file, unreadable word times or a bad
    segment travel with the item as ``error`` and are counted as rejects.
    """
    where = f"{source.path}[{source.split}][{index}]"
    audio, name, error = _audio_of(row.get(columns.audio), where)
    if not name and row.get(KEY_COLUMN):
        name = str(row[KEY_COLUMN])
    key = safe_key(index, name)
    text = row.get(columns.text) if columns.text else None
    speaker = row.get(columns.speaker) if columns.speaker else None
    common = {
        "audio": audio,
        "language": language_code(
            row.get(columns.language) if columns.language else None, source.language
        ),
        "speaker": None if speaker in (None, "") else str(speaker),
    }
    segments = _records(row.get(columns.segments)) if columns.segments else []
    if not segments:
        words, words_error = None, None
        if columns.words:
            try:
                words = _words_of(row.get(columns.words))
            except (ValueError, KeyError, TypeError) as err:
                words_error = ("bad_timestamps", f"{where}: cannot read word times: {err!r}")
        text = None if text is None else str(text)
        item = SourceItem(key, text=text, source=where, words=words, **common)  # type: ignore[arg-type]
        if error or words_error:
            item = _with_error(item, error or words_error)
        return [item]
    items = []
    for j, seg in enumerate(segments):
        seg_where = f"{where} segment {j}"
        seg_key = f"{key}-{j:04d}"
        seg_error, start, end, words = error, None, None, None
        try:
            start, end = float(seg["start"]), float(seg["end"])
            if not 0 <= start < end:
                raise ValueError(f"need 0 <= start < end, got [{start}, {end})")
        except (ValueError, KeyError, TypeError) as err:
            start = end = None
            seg_error = seg_error or ("bad_segment", f"{seg_where}: no usable window: {err!r}")
        if start is not None:
            try:
                words = _words_of(seg.get("words"), shift=start)
            except (ValueError, KeyError, TypeError) as err:
                msg = f"{seg_where}: cannot read word times: {err!r}"
                seg_error = seg_error or ("bad_timestamps", msg)
        seg_text = seg.get("text")
        item = SourceItem(
            seg_key,
            text=None if seg_text is None else str(seg_text),
            source=seg_where,
            start=start,
            end=end,
            words=words,
            recording=key,  # the row: its segments share a split
            **common,  # type: ignore[arg-type]
        )
        items.append(_with_error(item, seg_error) if seg_error else item)
    return items


def _with_error(item: SourceItem, error: tuple[str, str]) -> SourceItem:
    return replace(item, error=error)
