"""The shard contract: what a prepared dataset directory holds and what one sample looks like.

``vrt-prep`` writes it (``data_prep.shards``, ``data_prep.unit_processor``); training
(``vrt_finetune.batches``), ``vrt-eval`` and the dataset card read it. Everything that names a
file of the layout or a field of a sample lives here, so writer and readers cannot drift apart::

    DIR/index.json                      per shard: name, split, samples, hours, bytes, sha256;
                                        per split: shards, samples, hours
    DIR/summary.json                    items kept and rejected (by reason), hours per split
    DIR/README.md                       the dataset card
    DIR/prep_config.yaml                the resolved recipe of the run that wrote DIR
    DIR/_units/unit-NNNNN.json          completion marker of vrt-prep's work unit NNNNN
    DIR/{split}/{split}-uNNNNN-PPP.tar  WebDataset shards of unit NNNNN (part PPP), two members
                                        per sample:
        KEY.flac   16-bit mono FLAC at 16 kHz (:func:`encode_flac`, :func:`decode_flac`)
        KEY.json   :meth:`ShardSample.to_json` (UTF-8, keys sorted): ``format``, ``text``,
                   ``language``, ``speaker`` (``""``: unknown), ``duration``, ``source``,
                   ``offset``, ``words``
                   (``word``, ``start``, ``end``, ``score``, ``flagged``) and ``targets``
                   (:meth:`vrt_finetune.targets.Targets.to_json`: the delay-independent
                   ``[P]``/``[W]`` stream, its groups and the rule's options)

Times are seconds from the start of the sample's audio, rounded to 0.1 ms; ``offset`` is where
the sample starts in its source recording. ``format`` is :data:`SAMPLE_FORMAT`; shards written
before the field existed have the same layout and read as format 1. A sample from a newer
format, or one that lacks the targets, fails with a message saying how to re-prepare.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from vrt_finetune import constants as C
from vrt_finetune.targets import Targets

INDEX_FILE = "index.json"
"""Shard list with per-shard sample keys, hours and sha256, and per-split totals."""
SUMMARY_FILE = "summary.json"
"""What ``vrt-prep`` kept and rejected (by reason)."""
CARD_FILE = "README.md"
"""The dataset card."""
RUN_CONFIG = "prep_config.yaml"
"""The resolved recipe of the ``vrt-prep run`` that wrote the directory (``--config`` reads it)."""
UNITS_DIR = "_units"
"""Completion markers of ``vrt-prep``'s work units: a unit without one is redone by a rerun."""
SPLITS = ("train", "valid", "test")
SAMPLE_FORMAT = 1
"""Version of the sample layout this code writes and the newest it reads."""

_TIME_DECIMALS = 4
"""Times, durations and scores are stored to 0.1 ms (a 16 kHz sample is 0.0625 ms)."""


class ShardFormatError(ValueError):
    """A shard sample or dataset directory that does not follow this contract."""


def shard_name(split: str, unit: int, part: int) -> str:
    """Path of a shard relative to the dataset directory: ``{split}/{split}-uNNNNN-PPP.tar``.

    Names depend only on the work unit and the part, never on a run-wide counter, so a unit
    redone after a crash rewrites exactly the files it would have written.
    """
    return f"{split}/{split}-u{unit:05d}-{part:03d}.tar"


def unit_of_shard(name: str) -> int | None:
    """The work unit a shard name belongs to (``None`` for a name ``vrt-prep`` did not make)."""
    match = re.fullmatch(r"(?:.*/)?[^/]+-u(\d{5,})-\d{3,}\.tar", name)
    return int(match.group(1)) if match else None


def unit_marker(root: str | Path, unit: int) -> Path:
    """The completion marker of work unit ``unit`` of the dataset at ``root``."""
    return Path(root) / UNITS_DIR / f"unit-{unit:05d}.json"


# --------------------------------------------------------------------------- audio codec


def encode_flac(audio: np.ndarray) -> bytes:
    """Encode a waveform as 16-bit mono FLAC at 16 kHz; the same input gives the same bytes.

    Args:
        audio: ``(n,)`` float samples at 16 kHz; values outside [-1, 1] are clipped.

    Returns:
        The FLAC file as bytes.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size == 0 or not np.isfinite(audio).all():
        raise ValueError("encode_flac needs a non-empty finite (n,) waveform")
    # Quantise here rather than in libsndfile, whose float→int conversion wraps instead of
    # clipping unless told otherwise; 32767 keeps +1.0 representable.
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, pcm, C.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes) -> np.ndarray:
    """FLAC bytes of a shard sample → ``(n,)`` float32 at 16 kHz.

    Raises:
        ShardFormatError: not a FLAC stream, or not 16 kHz mono.
    """
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ShardFormatError(f"not a FLAC stream ({err})") from err
    if sr != C.SAMPLE_RATE or audio.ndim != 1:
        raise ShardFormatError(
            f"shard audio must be {C.SAMPLE_RATE} Hz mono FLAC, got {sr} Hz shape {audio.shape}"
        )
    return audio


# --------------------------------------------------------------------------- one sample


@dataclass(frozen=True)
class SampleWord:
    """A written word and its span in the sample's audio."""

    word: str
    start: float
    """Seconds from the start of the sample."""
    end: float
    score: float
    """Aligner confidence in [0, 1]; 0 for interpolated words."""
    flagged: bool = False
    """The time is a guess (interpolated, or placed without the word's own sounds)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "start": round(self.start, _TIME_DECIMALS),
            "end": round(self.end, _TIME_DECIMALS),
            "score": round(self.score, _TIME_DECIMALS),
            "flagged": self.flagged,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SampleWord:
        return cls(
            str(data["word"]),
            float(data["start"]),
            float(data["end"]),
            float(data.get("score", 0.0)),
            bool(data.get("flagged", False)),
        )


@dataclass(frozen=True)
class ShardSample:
    """The ``KEY.json`` of one shard sample (the audio is the ``KEY.flac`` beside it)."""

    key: str
    text: str
    """The transcript as written (the words joined by spaces)."""
    duration: float
    """Seconds of audio."""
    targets: Targets
    words: tuple[SampleWord, ...] = ()
    language: str | None = None
    speaker: str | None = None
    source: str = ""
    """Where the audio came from (file, manifest line, dataset row)."""
    offset: float = 0.0
    """Seconds into the source recording where this sample starts."""
    format: int = SAMPLE_FORMAT

    def to_json(self) -> bytes:
        """The ``KEY.json`` member: UTF-8 JSON with sorted keys (byte-stable)."""
        data = {
            "format": self.format,
            "text": self.text,
            "language": self.language,
            # never null: tools that infer a schema from the first samples (datasets'
            # webdataset loader) fail on a name after a null; "" as in Common Voice
            "speaker": self.speaker or "",
            "duration": round(self.duration, _TIME_DECIMALS),
            "source": self.source,
            "offset": round(self.offset, _TIME_DECIMALS),
            "words": [w.to_json() for w in self.words],
            "targets": self.targets.to_json(),
        }
        return json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, key: str, data: bytes | str | dict[str, Any]) -> ShardSample:
        """Parse a ``KEY.json`` member.

        Raises:
            ShardFormatError: not JSON, a newer format than this code reads, or a field missing
                (the message names the key and says how to re-prepare).
        """
        try:
            meta = data if isinstance(data, dict) else json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ShardFormatError(f"sample {key}: KEY.json is not JSON ({err})") from err
        version = int(meta.get("format", 1))
        if version > SAMPLE_FORMAT:
            raise ShardFormatError(
                f"sample {key}: written in shard format {version}, but this vrt-finetune reads "
                f"up to format {SAMPLE_FORMAT}; upgrade vrt-finetune"
            )
        try:
            return cls(
                key=key,
                text=str(meta.get("text", "")),
                duration=float(meta["duration"]),
                targets=Targets.from_json(meta["targets"]),
                words=tuple(SampleWord.from_json(w) for w in meta.get("words") or ()),
                language=meta.get("language") or None,
                speaker=meta.get("speaker") or None,
                source=str(meta.get("source", "")),
                offset=float(meta.get("offset", 0.0)),
                format=version,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ShardFormatError(
                f"sample {key}: {type(err).__name__} {err} in KEY.json; shards must carry "
                "'duration' and 'targets' (stream, groups, options): re-prepare them with "
                "`vrt-prep run --config RECIPE`"
            ) from err


def to_tar_sample(sample: ShardSample, flac: bytes) -> dict[str, Any]:
    """The members ``webdataset.TarWriter`` writes for one sample."""
    return {"__key__": sample.key, "flac": flac, "json": sample.to_json()}


def from_tar_sample(raw: dict[str, Any]) -> tuple[ShardSample, bytes]:
    """A raw tar sample (``__key__``, ``flac`` and ``json`` bytes) → (sample, FLAC bytes).

    Raises:
        ShardFormatError: a member is missing or the JSON does not parse (see
            :meth:`ShardSample.from_json`).
    """
    key = str(raw.get("__key__", "?"))
    missing = [m for m in ("flac", "json") if m not in raw]
    if missing:
        where = raw.get("__url__", "shard")
        raise ShardFormatError(f"sample {key} in {where}: no {' or '.join(missing)} member")
    return ShardSample.from_json(key, raw["json"]), raw["flac"]


# --------------------------------------------------------------------------- the directory


def is_dataset_dir(path: str | Path) -> bool:
    """Whether ``path`` is a prepared dataset directory (has ``index.json``)."""
    return (Path(path) / INDEX_FILE).is_file()


def read_index(root: str | Path) -> dict[str, Any]:
    """``DIR/index.json`` as written by ``vrt-prep``.

    Raises:
        ShardFormatError: no index there (not a prepared dataset, or a run that did not finish).
    """
    path = Path(root) / INDEX_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ShardFormatError(
            f"{path}: no {INDEX_FILE}; prepare the data with `vrt-prep run`, or after a "
            f"multi-rank run write it with `vrt-prep merge --output {root}`"
        ) from err
    except json.JSONDecodeError as err:
        raise ShardFormatError(f"{path}: not valid JSON ({err})") from err


def split_shards(root: str | Path, split: str) -> list[str]:
    """Paths of one split's shards, in index order.

    Raises:
        ShardFormatError: no index, or it lists no shard of ``split``.
    """
    index = read_index(root)
    names = [s["name"] for s in index.get("shards", []) if s.get("split") == split]
    if not names:
        raise ShardFormatError(f"{Path(root) / INDEX_FILE} lists no {split!r} shards")
    return [str(Path(root) / n) for n in names]
