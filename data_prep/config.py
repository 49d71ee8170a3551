"""The ``vrt-prep`` recipe: typed dataclasses that a YAML file under ``recipes/data/`` fills.

The signature is the config: every knob has a type, a default and a one-line docstring, and bad
values fail in ``__post_init__`` before any audio is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_type_hints

import yaml

from data_prep.segment import Filters
from vrt_finetune.targets import TargetOptions


@dataclass
class SourceConfig:
    """Where the audio and transcripts are."""

    kind: Literal["manifest", "folder", "hf", "synthetic"] = "manifest"
    path: str = ""
    """Manifest file (JSONL/CSV), folder, saved dataset directory or dataset name."""
    language: str = "en"
    """Language of rows that do not name one."""
    split: str = "train"
    """``hf`` only: the dataset split to read."""
    config_name: str | None = None
    """``hf`` only: the dataset configuration."""
    audio_column: str = "audio"
    text_column: str = "text"
    language_column: str | None = None
    speaker_column: str | None = None
    n_general: int = 200
    """``synthetic`` only: general sentences."""
    n_medical: int = 0
    """``synthetic`` only: sentences carrying medical terms."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind != "synthetic" and not self.path:
            raise ValueError(f"source.path is required for a {self.kind!r} source")


@dataclass
class AlignerConfig:
    """Which forced aligner places the words."""

    backend: Literal["whisperx", "mms", "pocketsphinx", "given"] = "whisperx"
    """``given`` uses the timestamps the data already has (synthetic speech, whisperX JSON …)
    and rejects items without them (``no_timestamps``); ``pocketsphinx`` is a light English
    aligner without torch (``model``/``device``/``batch_size`` unused); under the others too,
    items with given times keep them and only the others are aligned
    (``data_prep.align.make_aligner``)."""
    model: str | None = None
    """Model name or local directory; ``None``: the language's default."""
    device: str = "cpu"
    batch_size: int = 8
    """Utterances per acoustic-model forward pass."""
    max_seconds: float = 60.0
    """Longest recording aligned in one piece: the CTC trellis grows with frames × characters,
    the acoustic model's attention with frames² (wav2vec2-base over 600 s would need ~40 GB per
    layer; over 60 s ~0.4 GB). Longer ones go through ``long_form``, which matches the one-piece
    times on oracle emissions."""
    long_form: bool = True
    """Align recordings longer than ``max_seconds`` with no word times the long-form way
    (emissions window by window, text chunk by chunk: ``data_prep.align.longform``; memory
    bounded by one 36 s window's activations, ~0.4 GB for wav2vec2-base). ``false``: reject
    them as ``too_long_to_align`` (give word times or ``start``/``end`` windows instead)."""


@dataclass
class ShardConfig:
    max_samples: int = 1000
    max_bytes: int = 512 * 2**20
    items_per_unit: int = 256
    """Input items per work unit: the grain of resume, parallelism and shard naming."""
    valid_fraction: float = 0.02
    test_fraction: float = 0.02


@dataclass
class PrepConfig:
    """A whole ``vrt-prep`` run."""

    source: SourceConfig
    output: str
    tokenizer: str
    """Model directory or ``tekken.json`` whose ids the targets use."""
    aligner: AlignerConfig = field(default_factory=AlignerConfig)
    filters: Filters = field(default_factory=Filters)
    targets: TargetOptions = field(default_factory=TargetOptions)
    shards: ShardConfig = field(default_factory=ShardConfig)
    workers: int = 1
    """Processes on this machine."""
    glossary: str | None = None
    """Optional file of domain terms (one per line) whose coverage the card reports."""
    name: str = "dataset"

    @property
    def output_dir(self) -> Path:
        return Path(self.output)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if is_dataclass(hint) and isinstance(value, dict):
            value = _build(hint, value, f"{where}.{key}")
        kwargs[key] = value
    return cls(**kwargs)


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """Apply a CLI override such as ``filters.max_duration=20``."""
    *parents, leaf = dotted.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = yaml.safe_load(value) if isinstance(value, str) else value


def load_config(path: str | Path | None, overrides: list[str] = ()) -> PrepConfig:  # type: ignore[assignment]
    """Read a YAML recipe and apply ``key.sub=value`` overrides."""
    data: dict = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, value = item.split("=", 1)
        set_dotted(data, key, value)
    return _build(PrepConfig, data, str(path or "config"))
