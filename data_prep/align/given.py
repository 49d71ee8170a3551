"""Timestamps the data already has: whisperX JSON, CTM and Praat TextGrid readers, and the
aligner that uses them.

Each reader returns :class:`~data_prep.align.base.AlignedWord` lists (per utterance for CTM).
:class:`GivenAligner` puts a request's given times on its spoken words: a written word's span is
shared by the words it is said as ("42" → "forty two"), or words are matched in order, tolerant
to case and punctuation ("Hello," = "hello"); transcript words with no given counterpart get
times from their neighbours (:func:`~data_prep.align.base.interpolate_missing`).
:class:`GivenFirst` sends requests with given times to it and the others to an acoustic aligner.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_prep.align.base import (
    AlignedWord,
    Aligner,
    AlignmentError,
    AlignmentFailure,
    AlignRequest,
    AlignResult,
    interpolate_missing,
)

if TYPE_CHECKING:
    from data_prep.align.longform import LongFormOptions

GIVEN_SCORE = 1.0
"""Score of a given time that carries no confidence of its own (TextGrid, CTM without one)."""


def read_whisperx_json(source: str | Path | Mapping[str, Any]) -> list[AlignedWord]:
    """Words of a whisperX result (``segments[].words[]``, else ``word_segments[]``).

    Words whisperX left without ``start``/``end`` (it could not align them) are skipped: the
    matcher interpolates them.

    Args:
        source: Path of the JSON file, or the already-parsed result dict.

    Returns:
        The timed words in file order; ``score`` is whisperX's (0 when absent).
    """
    data = source if isinstance(source, Mapping) else json.loads(Path(source).read_text("utf-8"))
    segments = data.get("segments") or []
    raw = [w for seg in segments for w in seg.get("words") or []] or data.get("word_segments", [])
    return [
        AlignedWord(
            str(w["word"]).strip(), float(w["start"]), float(w["end"]), float(w.get("score") or 0)
        )
        for w in raw
        if w.get("start") is not None and w.get("end") is not None
    ]


def read_inline_words(value: Any) -> list[AlignedWord]:
    """Word times given as a value rather than a file (a manifest's ``alignment`` object, a
    dataset's words column).

    Args:
        value: A whisperX result (``{segments: [{words: [...]}]}`` or ``{word_segments:
            [...]}``, read by :func:`read_whisperx_json`), one whisperX segment (``{words:
            [...]}``), or a list of ``{word, start, end[, score]}`` (score
            :data:`GIVEN_SCORE` when absent; every word needs its times).

    Returns:
        The timed words in the value's order.

    Raises:
        ValueError, KeyError, TypeError: a value of another shape, or a malformed word.
    """
    if isinstance(value, Mapping):
        if "segments" in value or "word_segments" in value:
            return read_whisperx_json(value)
        if "words" in value:
            return read_whisperx_json({"segments": [value]})
        raise ValueError(
            f"a dict of word times needs whisperX's 'segments', 'word_segments' or 'words'; "
            f"this one has {sorted(value)}"
        )
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(f"word times are a list or a whisperX dict, not a {type(value).__name__}")
    return [
        AlignedWord(
            str(w["word"]).strip(),
            float(w["start"]),
            float(w["end"]),
            GIVEN_SCORE if w.get("score") is None else float(w["score"]),
        )
        for w in value
    ]


def read_ctm(path: str | Path) -> dict[str, list[AlignedWord]]:
    """Words of a CTM file (``utt channel start duration word [confidence]``), per utterance.

    Lines starting with ``;;`` are comments. Words of an utterance are sorted by start time.

    Returns:
        Utterance id → its words.

    Raises:
        ValueError: a line with fewer than five fields or non-numeric times.
    """
    out: dict[str, list[AlignedWord]] = {}
    for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):
            continue
        if len(fields) < 5:
            raise ValueError(f"{path}:{n}: a CTM line needs 5 fields, got {line!r}")
        utt, _, start, dur, word = fields[:5]
        try:
            t0, d = float(start), float(dur)
            score = float(fields[5]) if len(fields) > 5 else GIVEN_SCORE
        except ValueError as err:
            raise ValueError(f"{path}:{n}: {err} in {line!r}") from None
        out.setdefault(utt, []).append(AlignedWord(word, t0, t0 + d, score))
    return {utt: sorted(words, key=lambda w: w.start) for utt, words in out.items()}


# One value of a Praat text file: a quoted string ("" escapes a quote), a number, a flag, or a
# bracketed index ("item [1]:", skipped). Labels ("xmin =", "intervals: size =") are not
# matched, so the long and the short format give the same value stream.
_TEXTGRID_TOKEN = re.compile(
    r'"((?:[^"]|"")*)"|\[\s*\d*\s*\]|<exists>|<absent>|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)'
)


def _textgrid_values(text: str) -> list[str | float]:
    values: list[str | float] = []
    for m in _TEXTGRID_TOKEN.finditer(text):
        if m.group(1) is not None:
            values.append(m.group(1).replace('""', '"'))
        elif m.group(2) is not None:
            values.append(float(m.group(2)))
        elif m.group(0) in ("<exists>", "<absent>"):
            values.append(m.group(0))
    return values


def _read_praat_text(path: Path) -> str:
    raw = path.read_bytes()
    # Praat writes UTF-16 (with a byte-order mark) when a label is not ASCII.
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig")


def read_textgrid(path: str | Path, tier: str | None = None) -> list[AlignedWord]:
    """Non-empty intervals of a Praat TextGrid tier (long or short text format).

    Args:
        path: The ``.TextGrid`` file.
        tier: Name of the interval tier; ``None``: the first interval tier.

    Returns:
        One word per non-blank interval label, in time order, score :data:`GIVEN_SCORE`.

    Raises:
        ValueError: not a TextGrid, or no such interval tier.
    """
    values = _textgrid_values(_read_praat_text(Path(path)))
    if values[:2] != ["ooTextFile", "TextGrid"]:
        raise ValueError(f"{path}: not a Praat TextGrid text file")
    # header: type, class, xmin, xmax, tiers flag, tier count
    if len(values) < 6 or values[4] != "<exists>":
        return []
    pos, names = 6, []
    for _ in range(int(values[5])):
        kind, name, n = values[pos], values[pos + 1], int(values[pos + 4])
        names.append(name)
        pos += 5
        width = 3 if kind == "IntervalTier" else 2  # TextTier points: (time, mark)
        if kind == "IntervalTier" and (tier is None or name == tier):
            rows = [values[pos + 3 * k : pos + 3 * k + 3] for k in range(n)]
            return [
                AlignedWord(str(label).strip(), float(t0), float(t1), GIVEN_SCORE)
                for t0, t1, label in rows
                if str(label).strip()
            ]
        pos += width * n
    raise ValueError(f"{path}: no interval tier {tier!r} among {names}")


def _key(word: str) -> str:
    """Case- and punctuation-insensitive form of a word (letters, marks and digits only)."""
    folded = unicodedata.normalize("NFC", word).casefold()
    kept = "".join(c for c in folded if unicodedata.category(c)[0] in "LMN")
    return kept or folded


def match_given(
    given: Sequence[AlignedWord], words: Sequence[str], duration: float
) -> list[AlignedWord]:
    """Put given times on the transcript's words.

    Words are paired in order by their case/punctuation-free forms (``difflib`` opcodes):
    equal runs and one-for-one substitutions take the given times; a run of transcript words
    facing a different number of given words ("42" vs "forty two") shares that run's time
    span by character count, ``flagged=True``; transcript words with no counterpart are
    interpolated; given words with no counterpart are dropped.

    Args:
        given: Timed words from a reader.
        words: The transcript's spoken words, in order.
        duration: Length of the audio in seconds.

    Returns:
        One :class:`AlignedWord` per transcript word, carrying the transcript's spelling.
    """
    a, b = [_key(w.word) for w in given], [_key(w) for w in words]
    placed: list[AlignedWord | None] = [None] * len(words)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal" or (op == "replace" and i2 - i1 == j2 - j1):
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                g = given[i]
                placed[j] = AlignedWord(words[j], g.start, g.end, g.score)
        elif op == "replace":
            start, end = given[i1].start, max(g.end for g in given[i1:i2])
            shared = interpolate_missing(words[j1:j2], [None] * (j2 - j1), end - start)
            for j, w in zip(range(j1, j2), shared, strict=True):
                placed[j] = AlignedWord(w.word, start + w.start, start + w.end, 0.0, flagged=True)
    return interpolate_missing(words, placed, duration)


def share_written_spans(
    given: Sequence[AlignedWord], written: Sequence[Sequence[str]]
) -> list[AlignedWord]:
    """Given times of written words, shared by the spoken words each is said as.

    Args:
        given: One timed word per written word.
        written: Per written word, its spoken words (none empty), same length as ``given``.

    Returns:
        The spoken words in order, each written word's span cut into equal parts, its score kept.
    """
    out = []
    for spoken, g in zip(written, given, strict=True):
        step = (g.end - g.start) / len(spoken)
        out += [
            AlignedWord(s, g.start + j * step, g.start + (j + 1) * step, g.score)
            for j, s in enumerate(spoken)
        ]
    return out


class GivenAligner(Aligner):
    """Places words at the times the data already has (no acoustic model).

    When the given words are the transcript's written words one for one (synthetic speech, most
    CTM/TextGrid files), each written word's span is shared by its spoken words
    (:func:`share_written_spans`); otherwise, or when the request does not say which written
    words it has, words are matched by their letters (:func:`match_given`) and what cannot be
    matched is interpolated and flagged. Only the audio's length is read.

    A request without given times fails with ``no_timestamps`` (:meth:`refusal` says so before
    any work). It has no long-form variant: given times need none.
    """

    name = "given"

    def refusal(self, request: AlignRequest) -> AlignmentFailure | None:
        """``no_timestamps`` for a request without given times (see :meth:`Aligner.refusal`)."""
        if request.given is None:
            return AlignmentFailure(
                "no_timestamps", "aligner 'given' but the item has no word timestamps"
            )
        return None

    def align(self, request: AlignRequest) -> list[AlignedWord]:
        """The request's given times on its spoken words (see :meth:`Aligner.align`)."""
        failure = self.refusal(request)
        if failure is not None:
            raise AlignmentError(failure.reason, failure.message)
        assert request.given is not None
        if request.written is not None:
            written = [n.spoken for n in request.written if n.spoken]
            if len(written) == len(request.given):
                return share_written_spans(request.given, written)
        return match_given(request.given, request.words, request.duration)


class GivenFirst(Aligner):
    """Given times where an utterance has them, an acoustic aligner for the others.

    What ``vrt-prep`` builds for the ``whisperx`` and ``mms`` backends: a corpus may give word
    times for some items (a CTM for part of it); those are used as they are, like the ``given``
    backend would, and only the rest go through the acoustic model.

    Args:
        aligner: Aligns the requests without given times.
    """

    def __init__(self, aligner: Aligner) -> None:
        self.aligner = aligner
        self.given = GivenAligner()
        self.name = aligner.name

    def _route(self, request: AlignRequest) -> Aligner:
        return self.aligner if request.given is None else self.given

    def refusal(self, request: AlignRequest) -> AlignmentFailure | None:
        """The refusal of the aligner the request goes to (see :meth:`Aligner.refusal`)."""
        return self._route(request).refusal(request)

    def align(self, request: AlignRequest) -> list[AlignedWord]:
        """Align with the given times if the request has them, else with the acoustic aligner."""
        return self._route(request).align(request)

    def align_batch(self, requests: Sequence[AlignRequest]) -> list[AlignResult]:
        """Requests with given times one by one, the others as one batch of the acoustic aligner
        (its batches hold only utterances it aligns); results in request order."""
        results: list[AlignResult | None] = [None] * len(requests)
        for aligner in (self.given, self.aligner):
            mine = [i for i, r in enumerate(requests) if self._route(r) is aligner]
            if mine:
                done = aligner.align_batch([requests[i] for i in mine])
                for i, result in zip(mine, done, strict=True):
                    results[i] = result
        return results  # type: ignore[return-value]

    def long_form(self, options: LongFormOptions | None = None) -> Aligner | None:
        """The acoustic aligner's long-form variant, still behind given times (or ``None``)."""
        inner = self.aligner.long_form(options)
        return None if inner is None else GivenFirst(inner)
