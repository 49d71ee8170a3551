"""Where a team keeps its speech: manifests, folders, Hugging Face datasets, or synthetic speech.

Every reader yields ``SourceItem`` in a stable order with a stable, tar-safe key, so the same
input always maps to the same work units and shard names. Readers never fail on one bad row:
problems (missing file, unreadable transcript) travel with the item as ``error`` and are counted
as rejects by the pipeline. A source that cannot be read at all (no such manifest or folder, a
manifest that is not UTF-8 text) raises :class:`~data_prep.errors.SourceError`.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_prep.align.base import AlignedWord
from data_prep.align.given import read_ctm, read_inline_words, read_textgrid, read_whisperx_json
from data_prep.audio_io import DeferredAudio
from data_prep.errors import SourceError
from data_prep.language_codes import language_code
from data_prep.spoken_form import TranscriptError, read_transcript
from data_prep.voices import SynthVoice
from vrt_finetune import constants as C

if TYPE_CHECKING:
    from data_prep.synth import SynthUtterance

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
"""Audio containers a folder source picks up (decoded by ``data_prep.audio_io``)."""


@dataclass(frozen=True)
class SourceItem:
    """One recording (or a ``[start, end)`` window of one) with its transcript."""

    key: str
    """Stable, tar-safe sample key (letters, digits, ``_`` and ``-``)."""
    audio: str | tuple[np.ndarray, int] | bytes | DeferredAudio | None
    text: str | None
    language: str
    source: str
    """Where it came from, for reports: ``file:line`` or ``dataset[row]``."""
    speaker: str | None = None
    start: float | None = None
    end: float | None = None
    words: tuple[AlignedWord, ...] | None = None
    """Word times the data already has (whisperX JSON, CTM, TextGrid, synthetic speech)."""
    recording: str | None = None
    """The recording this item is cut from, when other items may be cut from it too (a manifest
    row's ``recording`` or its audio path as written, a lhotse recording id, a dataset row with
    segments): items of one recording share a split when their speaker is unknown, so no
    recording is heard in training and in testing. ``None``: the item is its own recording."""
    error: tuple[str, str] | None = None
    """``(reason, message)`` when the item is already known to be unusable."""


def safe_key(index: int, name: str = "") -> str:
    """``{index:08d}`` plus a slug of ``name``: unique, sortable, no dots (WebDataset splits
    sample keys at the first dot)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:48].strip("_")
    return f"{index:08d}_{slug}" if slug else f"{index:08d}"


GIVEN_EXTENSIONS = (".json", ".textgrid", ".ctm")
"""Sidecar files with word timestamps: whisperX JSON output, Praat TextGrid, CTM."""


def read_given(path: str | Path, utterance: str) -> tuple[AlignedWord, ...]:
    """Word times from a whisperX JSON, TextGrid or CTM file (CTM: the ``utterance``'s rows).

    Raises:
        ValueError: unknown format, or a CTM without rows for ``utterance``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return tuple(read_whisperx_json(path))
    if suffix == ".textgrid":
        return tuple(read_textgrid(path))
    if suffix == ".ctm":
        rows = read_ctm(path)
        if utterance not in rows:
            raise ValueError(f"{path}: no rows for utterance {utterance!r}")
        return tuple(rows[utterance])
    raise ValueError(f"{path}: unknown timestamp format (use {', '.join(GIVEN_EXTENSIONS)})")


def _given_or_error(
    given: object, utterance: str, where: str
) -> tuple[tuple[AlignedWord, ...] | None, tuple[str, str] | None]:
    """Word times from a file (``read_given``) or inline (``read_inline_words``), or why not."""
    if not given:
        return None, None
    if isinstance(given, str | Path):
        try:
            return read_given(given, utterance), None
        except (OSError, ValueError, KeyError) as err:
            return None, ("bad_timestamps", f"{where}: cannot read word timestamps {given}: {err}")
    try:
        return tuple(read_inline_words(given)), None
    except (ValueError, KeyError, TypeError) as err:
        return None, (
            "bad_timestamps",
            f"{where}: cannot read the inline word times ({type(err).__name__}: {err}); give "
            "a whisperX result, a list of {word, start, end} or a file path",
        )


def _float(value: object) -> float | None:
    return None if value in (None, "") else float(value)  # type: ignore[arg-type]


def read_manifest(path: str | Path, default_language: str = "en") -> Iterator[SourceItem]:
    """JSONL or CSV rows with ``audio``, ``text`` and optional ``language``, ``speaker``,
    ``start``/``end`` (seconds into a longer file), ``id``, ``alignment`` (a whisperX JSON,
    TextGrid or CTM file with the row's word times, CTM rows matched by ``id``; or, in JSONL,
    the times themselves: a whisperX result or a list of ``{word, start, end}``; seconds into
    the row's audio, as in the files) and
    ``recording`` (what rows cut from one recording share; default: ``audio`` as written, so
    every window of a file goes to one split). Relative paths are resolved against the
    manifest's directory.

    Raises:
        SourceError: the manifest cannot be read (missing, a directory, not UTF-8, not CSV).
    """
    path = Path(path)
    base = path.parent
    default_language = language_code(None, default_language)  # "English" → "en"
    rows: list[dict] = []
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        else:
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    row = {"__error__": f"line {n} is not JSON ({err.msg})"}
                if not isinstance(row, dict):
                    row = {"__error__": f"line {n} is a JSON {type(row).__name__}, not an object"}
                rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise SourceError(
            f"{path}: cannot read the manifest ({type(err).__name__}: {err}); give a UTF-8 "
            "JSONL file (one object per line) or a CSV file with a header row"
        ) from err
    for i, row in enumerate(rows):
        where = f"{path}:{i + 1}"
        if "__error__" in row:
            yield SourceItem(
                safe_key(i),
                None,
                None,
                default_language,
                where,
                error=("bad_manifest_row", f"{path}: {row['__error__']}"),
            )
            continue
        audio = row.get("audio")
        # as written, not resolved: every rank and machine reading the manifest agrees on it
        recording = str(row.get("recording") or audio or "") or None
        error = None
        if not audio:
            error = ("bad_manifest_row", f"{where}: no 'audio' value; every row needs one")
        else:
            audio_path = Path(audio) if Path(audio).is_absolute() else base / audio
            audio = str(audio_path)
            if not audio_path.exists():
                error = (
                    "missing_file",
                    f"{where}: audio file {audio_path} does not exist; "
                    "fix the path or remove the row",
                )
        text = row.get("text")
        if text is None and error is None:
            error = ("empty_transcript", f"{where}: no 'text' value")
        name = str(row.get("id") or (Path(audio).stem if audio else ""))
        alignment = row.get("alignment")
        if alignment and isinstance(alignment, str) and not Path(alignment).is_absolute():
            alignment = str(base / alignment)
        words, given_error = _given_or_error(alignment, name, where)
        yield SourceItem(
            key=safe_key(i, name),
            audio=audio,
            text=text,
            language=language_code(row.get("language"), default_language),
            source=where,
            speaker=row.get("speaker") or None,
            start=_float(row.get("start")),
            end=_float(row.get("end")),
            words=words,
            recording=recording,
            error=error or given_error,
        )


def read_folder(path: str | Path, default_language: str = "en") -> Iterator[SourceItem]:
    """Audio files with same-named ``.txt`` transcripts, recursively, in sorted order; a
    same-named ``.json`` (whisperX output) or ``.TextGrid`` gives the file's word times.

    Raises:
        SourceError: ``path`` is not a directory.
    """
    root = Path(path)
    default_language = language_code(None, default_language)
    if not root.is_dir():
        raise SourceError(f"{root}: no such folder (source.kind folder reads a directory)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    for i, audio in enumerate(files):
        rel = audio.relative_to(root)
        txt = audio.with_suffix(".txt")
        text, error = None, None
        if not txt.exists():
            error = ("missing_transcript", f"{audio}: no transcript {txt.name} beside it")
        else:
            try:
                text = read_transcript(txt)
            except TranscriptError as err:
                error = (err.reason, str(err))
        speaker = rel.parts[0] if len(rel.parts) > 1 else None
        sidecar = next(
            (audio.with_suffix(e) for e in (".json", ".TextGrid") if audio.with_suffix(e).exists()),
            None,
        )
        words, given_error = _given_or_error(sidecar, audio.stem, str(audio))
        yield SourceItem(
            safe_key(i, str(rel.with_suffix(""))),
            str(audio),
            text,
            default_language,
            str(audio),
            speaker=speaker,
            words=words,
            error=error or given_error,
        )


def read_hf_dataset(
    name_or_path: str,
    split: str = "train",
    audio_column: str = "audio",
    text_column: str = "text",
    language_column: str | None = None,
    speaker_column: str | None = None,
    default_language: str = "en",
    config_name: str | None = None,
) -> Iterator[SourceItem]:
    """A saved ``datasets`` directory (``save_to_disk``) or a dataset name on the hub.

    The audio column is read undecoded (bytes or path) and decoded by ``data_prep.audio_io``,
    so every container and sample rate goes through the same checks as files. Streaming,
    column presets and work units: :mod:`data_prep.hf_source`.
    """
    from data_prep.config import SourceConfig
    from data_prep.hf_source import hf_items

    source = SourceConfig(
        kind="hf",
        path=name_or_path,
        language=default_language,
        split=split,
        config_name=config_name,
        audio_column=audio_column,
        text_column=text_column,
        language_column=language_column,
        speaker_column=speaker_column,
    )
    yield from hf_items(source)


def synthetic_items(
    n_general: int,
    n_medical: int = 0,
    seed: int = 0,
    voices: Sequence[SynthVoice] | None = None,
    language: str = "en",
    vocabulary: str = "general",
) -> Iterator[SourceItem]:
    """Sentences spoken by espeak-ng with their exact word times (ground truth).

    Args:
        n_general: everyday sentences (:func:`data_prep.sentences.sentence_corpus`).
        n_medical: sentences carrying medical terms (English only).
        seed: the sentences' seed (medical ones use ``seed + 1``) and the voices' seed.
        voices: the voices sentences are drawn among (:func:`data_prep.voices.assign_voices`);
            each item's speaker is its voice's id. ``None``: the language's default voice
            (:data:`data_prep.voices.DEFAULT_VOICES`) and no speaker, so splits go by key.
        language: ``en``, ``es`` or ``ru`` (:data:`data_prep.sentences.SENTENCE_LANGUAGES`).
        vocabulary: the everyday sentences' vocabulary, ``general`` or ``basic`` (under 100
            words: what a tiny model learns in minutes).

    Raises:
        ValueError: an unknown language, medical sentences in a language other than English,
            or an empty or repeated voice list (before any synthesis).
        SourceError: a voice or variant espeak-ng does not have (before the sentences).
    """
    from data_prep.sentences import sentence_corpus
    from data_prep.synth import synthesize
    from data_prep.voices import DEFAULT_VOICES, assign_voices

    texts = [("general", s) for s in sentence_corpus(n_general, seed, vocabulary, language)]
    if n_medical:
        medical = sentence_corpus(n_medical, seed + 1, "medical", language)
        texts += [("medical", s) for s in medical]
    chosen = assign_voices(len(texts), voices or [SynthVoice(DEFAULT_VOICES[language])], seed)
    # Without configured voices the items have no speaker, as before voices existed.
    speaker_of = (lambda v: v.id) if voices else (lambda v: None)

    for voice in dict.fromkeys(chosen):  # each voice once, before hundreds of sentences fail
        try:
            synthesize("a", voice=voice.espeak_name, rate_wpm=voice.rate_for(0), pitch=voice.pitch)
        except ValueError as err:
            raise SourceError(f"source.voices: voice {voice.id}: {err}") from None

    def speak(i: int) -> SynthUtterance:
        v = chosen[i]
        return synthesize(texts[i][1], voice=v.espeak_name, rate_wpm=v.rate_for(i), pitch=v.pitch)

    def item(i: int, utt: SynthUtterance) -> SourceItem:
        kind, text = texts[i]
        words = tuple(AlignedWord(w.word, w.start, w.end, 1.0) for w in utt.words)
        return SourceItem(
            safe_key(i, kind),
            (utt.audio, C.SAMPLE_RATE),
            text,
            language,
            f"espeak-ng:{chosen[i].id}:{kind}[{i}]",
            speaker=speaker_of(chosen[i]),
            words=words,
        )

    # Each synthesis is a fresh espeak-ng process (data_prep.synth), so threads overlap them;
    # a bounded window of futures keeps the order and holds at most `window` waveforms.
    threads = max(1, min(4, os.cpu_count() or 1))
    window = 4 * threads
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[tuple[int, Future[SynthUtterance]]] = deque()
        for i in range(len(texts)):
            pending.append((i, pool.submit(speak, i)))
            while len(pending) >= window or (pending and i == len(texts) - 1):
                j, future = pending.popleft()
                yield item(j, future.result())
