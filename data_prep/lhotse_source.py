"""lhotse corpora as a ``vrt-prep`` source (``source.kind: lhotse``): a CutSet manifest
(``cuts.jsonl.gz``, or any file ``lhotse.load_manifest`` reads) or a Shar directory
(``cuts.NNNNNN.jsonl.gz`` + ``recording.NNNNNN.tar``, written by ``CutSet.to_shar``).

One :class:`~data_prep.sources.SourceItem` per supervision, in manifest order (a cut with three
supervisions gives three items): its text, language (lhotse recipes write names, ``English``:
mapped to codes by :mod:`data_prep.language_codes`) and speaker; its window of the recording
(``cut.start + supervision.start``, ``supervision.duration``); the recording channels it is on
(averaged when several); and its word alignment (``alignment["word"]``) as given word times.
lhotse keeps alignment times relative to the recording (lhotse PR #1193), so a word's time in the
item is its time minus the window's start. The key is ``safe_key(n, supervision.id)``: the same
supervisions as the rows of a manifest (``id`` = supervision id) give the same keys, units and
shards. How the audio is read: :mod:`data_prep.lhotse_audio`.

Bad input: a line that is not a cut, a cut without supervisions, without a recording or mixed
from others (``MixedCut``), a supervision without text, outside its recording's channels or with
word times outside itself, a missing file or a Shar cut without audio: each is an item with its
``error``, counted as a reject with its reason. What cannot be read as cuts at all (a Shar
directory without a ``recording`` field, a RecordingSet or SupervisionSet given for a CutSet, a
file lhotse does not parse) is a :class:`~data_prep.errors.SourceError` naming the file and the
fix: ``vrt-prep run`` prints it and exits with status 1.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from data_prep.align.base import AlignedWord
from data_prep.align.given import GIVEN_SCORE
from data_prep.audio_io import AudioSource, DeferredAudio
from data_prep.errors import SourceError
from data_prep.language_codes import language_code
from data_prep.lhotse_audio import FileChannels, LhotseRecording, SharMember, index_shar_tar
from data_prep.sources import SourceItem, safe_key

WORD_TIME_SLACK = 0.1
"""Seconds a given word may reach past its supervision (rounding in the writer) before the
item is rejected as ``bad_timestamps``; words are clipped to the supervision."""

Error = tuple[str, str]


def read_lhotse(path: str | Path, default_language: str = "en") -> Iterator[SourceItem]:
    """Items of a lhotse CutSet manifest or Shar directory (see the module docstring).

    Args:
        path: A CutSet file (``.jsonl.gz``, ``.jsonl``, ``.json``, ``.yaml``) or a Shar
            directory.
        default_language: The language of supervisions that do not name one.

    Raises:
        SourceError: ``path`` is neither, a Shar directory lacks its ``recording`` field, or
            the file holds no cuts (see :func:`shar_shards` and :func:`_read_cuts`).
    """
    path = Path(path)
    default_language = language_code(None, default_language)
    counter = itertools.count()
    if path.is_dir():
        for cuts_file, tar in shar_shards(path):
            shar = _SharAudio(tar, *index_shar_tar(tar.absolute()))
            for where, cut, error in _read_cuts(cuts_file):
                yield from _cut_items(cut, where, error, shar, counter, default_language)
        return
    if not path.is_file():
        raise SourceError(f"{path}: no such lhotse CutSet manifest or Shar directory")
    for where, cut, error in _read_cuts(path):
        yield from _cut_items(cut, where, error, None, counter, default_language)


def shar_shards(root: Path) -> list[tuple[Path, Path]]:
    """The ``(cuts, recording)`` shard pairs of a Shar directory, in shard order.

    Raises:
        SourceError: no cuts shards, no ``recording`` field (the message names the fields the
            directory has), or not as many recording shards as cuts shards.
    """
    files = sorted(p for p in root.iterdir() if p.is_file())
    field = {p: p.name.split(".")[0] for p in files}
    cuts = [p for p in files if field[p] == "cuts" and ".jsonl" in p.suffixes]
    recordings = [p for p in files if field[p] == "recording" and p.suffix == ".tar"]
    if not cuts:
        raise SourceError(
            f"{root}: no cuts.NNNNNN.jsonl.gz, so not a lhotse Shar directory "
            f"(files: {[p.name for p in files][:10]}); give a CutSet manifest or a Shar directory"
        )
    if not recordings:
        fields = sorted(set(field.values()))
        raise SourceError(
            f"{root}: this Shar directory has no 'recording' field (its fields: {fields}); "
            "vrt-prep needs the audio: write it with cuts.to_shar(DIR, fields={'recording': "
            "'flac'})"
        )
    if len(recordings) != len(cuts):
        raise SourceError(
            f"{root}: {len(cuts)} cuts shards but {len(recordings)} recording shards; "
            "every cuts.NNNNNN.jsonl.gz needs its recording.NNNNNN.tar"
        )
    return list(zip(cuts, recordings, strict=True))


# --------------------------------------------------------------------------- manifest lines

_GIVE_CUTS = (
    "give a CutSet (e.g. CutSet.from_manifests(recordings=..., supervisions=...)"
    ".to_file('cuts.jsonl.gz')) or a Shar directory"
)


def _read_cuts(path: Path) -> Iterator[tuple[str, Any, Error | None]]:
    """``(where, cut, error)`` per cut of a manifest file; a bad line is an error, not a crash.

    JSONL is read line by line here rather than with ``CutSet.from_jsonl_lazy``, which stops
    at the first line that does not parse; each line is still decoded by lhotse itself.

    Raises:
        SourceError: the file holds recordings or supervisions rather than cuts, or (not JSONL)
            lhotse cannot read it as a CutSet.
    """
    import yaml
    from lhotse import CutSet
    from lhotse.cut import Cut
    from lhotse.serialization import deserialize_item, extension_contains

    if not extension_contains(".jsonl", path):
        # a JSON or YAML manifest is one document, parsed whole by lhotse: no line to skip
        try:
            cuts = CutSet.from_file(path)
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as err:
            raise SourceError(
                f"{path}: lhotse cannot read it as a CutSet ({type(err).__name__}: {err}); "
                f"{_GIVE_CUTS}"
            ) from err
        for n, cut in enumerate(cuts):
            yield f"{path}[{n}]", cut, None
        return
    opener = gzip.open if path.suffix == ".gz" else open
    n = 0
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{n}"
                try:
                    cut = deserialize_item(json.loads(line))
                except (ValueError, KeyError, TypeError) as err:
                    msg = f"{where}: not a lhotse cut ({type(err).__name__}: {err})"
                    yield where, None, ("bad_manifest_row", msg)
                    continue
                if not isinstance(cut, Cut):
                    raise SourceError(f"{where}: a {type(cut).__name__}, not a cut: {_GIVE_CUTS}")
                yield where, cut, None
    except (OSError, EOFError, UnicodeDecodeError) as err:  # a truncated or corrupt .gz
        where = f"{path}:{n + 1}"
        msg = f"{where}: unreadable from here on ({err}); the rest of the file is lost"
        yield where, None, ("bad_manifest_row", msg)


# --------------------------------------------------------------------------- cuts → items


class _SharAudio:
    """The recording tar of one Shar shard, by cut id."""

    def __init__(self, tar: Path, members: dict[str, SharMember | None], broken: str | None):
        self.tar, self.members, self.broken = tar, members, broken

    def member(self, cut_id: str) -> SharMember | Error:
        if cut_id not in self.members:
            why = f" (the tar is unreadable past its last good member: {self.broken})"
            return (
                "missing_file",
                f"no audio of cut {cut_id} in {self.tar}{why if self.broken else ''}",
            )
        found = self.members[cut_id]
        if found is None:
            return ("no_recording", f"cut {cut_id} was written to {self.tar} without audio")
        return found


def _cut_items(
    cut: Any,
    where: str,
    error: Error | None,
    shar: _SharAudio | None,
    counter: Iterator[int],
    default_language: str,
) -> Iterator[SourceItem]:
    from lhotse.cut.data import DataCut

    supervisions = list(getattr(cut, "supervisions", None) or [])
    if error is None and not isinstance(cut, DataCut):
        error = (
            "unsupported_cut",
            f"{where}: cut {cut.id} is a {type(cut).__name__} (mixed or padded from others): "
            "give the cuts it was made from",
        )
    if error is None and not supervisions:
        error = ("no_supervision", f"{where}: cut {cut.id} has no supervision (nothing to learn)")
    if error is None and not cut.has_recording:
        error = ("no_recording", f"{where}: cut {cut.id} has no recording (features only?)")
    if error is not None:
        key = safe_key(next(counter), getattr(cut, "id", ""))
        yield SourceItem(key, None, None, default_language, where, error=error)
        return
    for sup in supervisions:
        here = f"{where} {sup.id}"
        start = cut.start + sup.start
        audio, problem = _audio(cut, sup, start, shar, here)
        words, bad_words = _given_words(sup, start, here)
        if problem is None and sup.text is None:
            problem = ("empty_transcript", f"{here}: the supervision has no text")
        if problem is None and (sup.start < 0 or sup.duration <= 0):
            problem = (
                "bad_segment",
                f"{here}: supervision [{sup.start}, +{sup.duration}] s is not inside its cut",
            )
        lazy = isinstance(audio, LhotseRecording)  # loads its own window
        yield SourceItem(
            key=safe_key(next(counter), sup.id),
            audio=audio,
            text=sup.text,
            language=language_code(sup.language, default_language),  # "English" → "en"
            source=here,
            speaker=sup.speaker or None,
            start=None if lazy else start,
            end=None if lazy else start + sup.duration,
            words=words,
            recording=cut.recording.id,  # every cut and supervision of it: one split
            error=problem or bad_words,
        )


def _channels(value: int | list[int]) -> list[int]:
    return list(value) if isinstance(value, list) else [value]


def _audio(
    cut: Any, sup: Any, start: float, shar: _SharAudio | None, where: str
) -> tuple[AudioSource | DeferredAudio | None, Error | None]:
    """Where the supervision's audio is (see :mod:`data_prep.lhotse_audio`), or why not."""
    rec = cut.recording
    wanted = _channels(sup.channel)
    sources = [s for s in rec.sources if set(s.channels) & set(wanted)]
    held = {c for s in sources for c in s.channels}
    if not set(wanted) <= held:
        return None, (
            "missing_channel",
            f"{where}: supervision on channels {wanted}, recording {rec.id} has {rec.channel_ids}",
        )
    if rec.transforms or len(sources) != 1 or sources[0].type not in ("file", "shar"):
        return LhotseRecording(rec, start, sup.duration, tuple(wanted)), None
    src = sources[0]
    picks = tuple(src.channels.index(c) for c in wanted)
    every = sorted(picks) == list(range(len(src.channels)))  # averaged like any other source
    if src.type == "shar":
        if shar is None:
            return None, (
                "no_recording",
                f"{where}: a Shar cut read without its tar: give the Shar directory as "
                "source.path, not its cuts file",
            )
        member = shar.member(cut.id)
        if isinstance(member, tuple):
            return None, (member[0], f"{where}: {member[1]}")
        return (member if every else replace(member, channels=picks)), None
    path = os.path.abspath(src.source)  # lhotse resolves relative paths against the cwd
    if not Path(path).is_file():
        return None, (
            "missing_file",
            f"{where}: recording {rec.id} file {path} does not exist; fix the path (relative "
            "paths are read from the current directory, as lhotse does) or drop the cut",
        )
    return (path if every else FileChannels(path, picks)), None


def _given_words(
    sup: Any, offset: float, where: str
) -> tuple[tuple[AlignedWord, ...] | None, Error | None]:
    """``alignment["word"]`` relative to the supervision's audio, or why it cannot be used."""
    items = (sup.alignment or {}).get("word")
    if not items:
        return None, None
    words = []
    for a in sorted(items, key=lambda a: a.start):
        if not a.symbol.strip():  # lhotse writes pauses as blank items
            continue
        start, end = a.start - offset, a.end - offset
        if start < -WORD_TIME_SLACK or end > sup.duration + WORD_TIME_SLACK or end < start:
            return None, (
                "bad_timestamps",
                f"{where}: word {a.symbol!r} at [{a.start:.3f}, {a.end:.3f}] s of the recording "
                f"is outside the supervision [{offset:.3f}, {offset + sup.duration:.3f}] s "
                "(lhotse alignments are relative to the recording; a Shar written from cuts "
                "that did not start at 0 loses that offset)",
            )
        score = GIVEN_SCORE if a.score is None else float(a.score)
        words.append(AlignedWord(a.symbol.strip(), max(start, 0.0), min(end, sup.duration), score))
    return tuple(words), None
