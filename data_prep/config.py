"""The ``vrt-prep`` recipe: typed dataclasses that a YAML file under ``recipes/data/`` fills.

The signature is the config: every knob has a type, a default and a one-line docstring (its
``vrt-prep run --help`` line), and bad values fail in ``__post_init__`` before any audio is read.
:func:`prep_parser` is the one parser of recipes: ``vrt-prep run`` and :func:`load_config` both
read them through it (jsonargparse, as every command here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from jsonargparse import ArgumentError, ArgumentParser

from data_prep.column_presets import PresetName
from data_prep.segment import Filters
from data_prep.sentences import SENTENCE_LANGUAGES
from data_prep.voices import SynthVoice, assign_voices
from vrt_finetune.config_parser import dataclass_parser, legacy_argv, parse
from vrt_finetune.targets import TargetOptions


@dataclass
class SourceConfig:
    """Where the audio and transcripts are."""

    kind: Literal["manifest", "folder", "hf", "lhotse", "synthetic"] = "manifest"
    """``manifest`` (JSONL/CSV rows), ``folder`` (audio beside same-named ``.txt``), ``hf`` (a
    Hugging Face dataset), ``lhotse`` (a CutSet manifest or Shar directory: one item per
    supervision, word alignments as given times) or ``synthetic`` (espeak-ng speech with exact
    word times)."""
    path: str = ""
    """Manifest file (JSONL/CSV), folder, lhotse CutSet (``cuts.jsonl.gz``) or Shar directory,
    or for ``hf``: a dataset name on the hub, a ``save_to_disk`` directory, or local data files
    (a directory, file or glob of Parquet, Arrow, WebDataset ``.tar`` or audio files beside a
    ``metadata.csv``)."""
    language: str = "en"
    """Language of rows that do not name one (rows and this key may give a code or a name:
    ``English`` → ``en``, ``data_prep.language_codes``); ``synthetic``: the sentences'
    language, ``en``, ``es`` (Spanish) or ``ru`` (Russian)."""
    split: str = "train"
    """``hf`` only: the dataset split to read."""
    config_name: str | None = None
    """``hf`` only: the dataset configuration."""
    revision: str | None = None
    """``hf`` only: the hub revision to read; a commit hash pins the rows, so a rerun resumes
    onto the same work units."""
    streaming: bool = False
    """``hf`` only: read the rows as a stream (``datasets.IterableDataset``), never downloading
    the dataset whole; ``false``: download and prepare it first. Work units, ranks and resume
    are the same either way (``data_prep.hf_source``)."""
    preset: PresetName | None = None
    """``hf`` only: a known column layout (``data_prep.column_presets``): ``common_voice``,
    ``fleurs``, ``librispeech`` or ``long_audio``; each ``*_column`` key overrides one column."""
    audio_column: str | None = None
    """``hf`` only: the column holding the audio; ``null``: the preset's, else ``audio``."""
    text_column: str | None = None
    """``hf`` only: the column holding the transcript; ``null``: the preset's, else ``text``."""
    language_column: str | None = None
    """``hf`` only: the column naming each row's language; ``null``: the preset's, else
    ``language`` for all; ``""``: ``language`` for all even where the preset names a column."""
    speaker_column: str | None = None
    """``hf`` only: the column naming the speaker (splits never share a speaker); ``null``: the
    preset's; ``""``: none."""
    words_column: str | None = None
    """``hf`` only: the column of each row's word times, a list of ``{word, start, end}``
    (seconds into the row's audio; used as ``aligner.backend: given`` times); ``null``: none."""
    segments_column: str | None = None
    """``hf`` only: the column listing a long recording's ``{start, end, text[, words]}``
    segments, each an item of its own (a window of the recording); ``null``: the preset's."""
    n_general: int = 200
    """``synthetic`` only: general sentences."""
    vocabulary: Literal["general", "basic"] = "general"
    """``synthetic`` only: the everyday sentences' words: ``general`` (English: under 100 words;
    Spanish, Russian: several hundred, numbers as digits) or ``basic`` (English, Spanish: under
    100 words, no digits; a tiny model learns them in minutes)."""
    n_medical: int = 0
    """``synthetic`` only: sentences carrying medical terms (English only)."""
    seed: int = 0
    """``synthetic`` only: the seed of the sentence choice and of each sentence's voice."""
    voices: list[SynthVoice] | None = None
    """``synthetic`` only: espeak-ng voices of ``language``, one drawn per sentence by ``seed``,
    e.g. ``[{name: en-us}, {name: en-us, variant: f3, pitch: 60}, {name: en-gb, rate: 170}]``;
    each voice is a speaker (its id, ``en-us+f3_p60``), so use ``shards.split_by: key`` to
    have every voice in every split. ``null``: the language's default voice, no speaker."""

    def __post_init__(self) -> None:
        if self.kind != "synthetic" and not self.path:
            raise ValueError(f"source.path is required for a {self.kind!r} source")
        if self.kind != "hf" and (self.streaming or self.preset):
            raise ValueError("source.streaming and source.preset are for source.kind 'hf'")
        if self.kind == "synthetic":
            self._check_synthetic()

    def _check_synthetic(self) -> None:
        if self.language not in SENTENCE_LANGUAGES:
            raise ValueError(
                f"source.language {self.language!r}: the synthetic source writes sentences in "
                f"{', '.join(SENTENCE_LANGUAGES)}"
            )
        if self.n_medical > 0 and self.language != "en":
            raise ValueError(
                f"source.n_medical is {self.n_medical} but medical sentences are English only: "
                f"set source.n_medical: 0 for language {self.language!r}"
            )
        if self.vocabulary == "basic" and self.language not in ("en", "es"):
            raise ValueError(
                f"source.vocabulary 'basic' is English or Spanish, not {self.language!r}: "
                "use source.vocabulary: general"
            )
        if self.n_general < 0 or self.n_medical < 0:
            raise ValueError("source.n_general and source.n_medical must be >= 0")
        if self.voices is not None:
            # Dicts when built by hand (SourceConfig(voices=[{...}])); jsonargparse gives
            # dataclasses already.
            self.voices = [v if isinstance(v, SynthVoice) else SynthVoice(**v) for v in self.voices]
            assign_voices(0, self.voices, self.seed)  # no voices, or two with one id
            foreign = [v.id for v in self.voices if v.language != self.language]
            if foreign:
                raise ValueError(
                    f"source.voices {foreign} do not speak source.language {self.language!r}: "
                    f"pick voices of that language (espeak-ng --voices={self.language})"
                )


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
    """Model name or local directory; ``null``: the language's default."""
    device: str = "cpu"
    """Where the acoustic model runs: ``cpu`` or ``cuda`` (about 10x faster)."""
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
    use_given_times: bool = True
    """Keep the word times an item comes with (whisperX JSON, CTM, TextGrid, synthetic speech)
    and align only the others. ``false``: align every item with the backend and ignore given
    times, e.g. to measure an aligner against known times (``vrt-prep score``)."""

    def __post_init__(self) -> None:
        if self.backend == "given" and not self.use_given_times:
            raise ValueError("aligner.backend 'given' needs aligner.use_given_times: true")


@dataclass
class ShardConfig:
    """How samples are grouped into shards and splits."""

    max_samples: int = 1000
    """Samples per shard at most."""
    max_bytes: int = 512 * 2**20
    """Payload bytes per shard at most."""
    items_per_unit: int = 256
    """Input items per work unit: the grain of resume, parallelism and shard naming (``hf``:
    rows; the segments of a long recording stay in its row's unit)."""
    valid_fraction: float = 0.02
    """Share of speakers (of recordings, else items, where speakers are unknown) held out for
    validation."""
    test_fraction: float = 0.02
    """Share of speakers (of recordings, else items, where speakers are unknown) held out for
    testing."""
    split_by: Literal["speaker", "recording", "key"] = "speaker"
    """``speaker``: no speaker in two splits; items without one go by the recording they are cut
    from (no recording in two splits), else by key. ``recording``: speakers ignored, no
    recording in two splits (every speaker in every split). ``key``: each item by its key, e.g.
    a few synthetic voices that should all be in every split (hold a voice out with a run of
    its own and ``test_fraction: 1``); windows of one recording may then land in several."""


@dataclass
class PrepConfig:
    """A whole ``vrt-prep`` run."""

    source: SourceConfig
    output: str
    """Output directory: shards, ``index.json``, ``summary.json``, the card and the recipe."""
    tokenizer: str
    """Model directory or ``tekken.json`` whose ids the targets use."""
    aligner: AlignerConfig = field(default_factory=AlignerConfig)
    filters: Filters = field(default_factory=Filters)
    targets: TargetOptions = field(default_factory=TargetOptions)
    shards: ShardConfig = field(default_factory=ShardConfig)
    workers: int = 1
    """Processes on this machine."""
    reference: str | None = None
    """Reference word times to score the aligner against when the run finishes (another
    dataset directory, a CTM, a whisperX JSON ``{key: result}`` or a folder of
    ``KEY.TextGrid``/``KEY.json``/``KEY.ctm``; see ``vrt-prep score``): the figures go on the
    dataset card and in ``score/``."""
    glossary: str | None = None
    """Optional file of domain terms (one per line) whose coverage the card reports."""
    name: str = "dataset"
    """The dataset's name, on its card."""

    @property
    def output_dir(self) -> Path:
        return Path(self.output)


@dataclass
class RunOptions:
    """How this machine takes part in a run: ``--print_config`` shows these too, but the recipe
    a run saves for ``merge`` leaves them out."""

    rank: int | None = None
    """This machine's rank among ``world_size``; ``null``: ``RANK`` or SLURM's, else 0."""
    world_size: int | None = None
    """Machines sharing the run; ``null``: ``WORLD_SIZE`` or SLURM's, else 1."""
    progress: bool = True
    """Show a progress bar (``false`` for logs; ``--no-progress`` works too)."""


RUN_DESCRIPTION = """\
Prepare shards from a recipe (recipes/data/*.yaml): every key below can be set in the recipe or
on the command line, which overrides it:

    vrt-prep run --config recipes/data/medical_manifest.yaml --source.path=/data/manifest.jsonl
    vrt-prep run --config recipes/data/medical_manifest.yaml --print_config   # the full recipe

The earlier form of overrides, positional key.sub=value (source.path=/data/manifest.jsonl, the
value read as YAML), still works."""


def prep_parser(exit_on_error: bool = True) -> ArgumentParser:
    """The parser of ``vrt-prep run``: every :class:`PrepConfig` key and :class:`RunOptions`."""
    return dataclass_parser(
        PrepConfig,
        RunOptions,
        prog="vrt-prep run",
        description=RUN_DESCRIPTION,
        exit_on_error=exit_on_error,
    )


def prep_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` of ``vrt-prep run`` with the earlier forms rewritten (positional ``key=value``
    overrides, ``--world-size``, ``--no-progress``)."""
    return legacy_argv(
        argv,
        PrepConfig,
        RunOptions,
        positional_overrides=True,
        aliases={"--no-progress": "--progress=false", "--no_progress": "--progress=false"},
    )


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> PrepConfig:
    """Read a YAML recipe and apply overrides, exactly as ``vrt-prep run`` does.

    Args:
        path: the recipe (YAML or JSON), or ``None`` for overrides alone.
        overrides: ``key.sub=value`` (the value read as YAML) or ``--key.sub=value``.

    Raises:
        ValueError: an unknown key (named in the message), a value of the wrong type or one
            that a ``__post_init__`` rejects.
    """
    argv = (["--config", str(path)] if path is not None else []) + list(overrides)
    parser = prep_parser(exit_on_error=False)
    try:
        return parse(PrepConfig, parser, prep_argv(argv))
    except ArgumentError as err:
        raise ValueError(f"{path or 'config'}: {err}") from err
