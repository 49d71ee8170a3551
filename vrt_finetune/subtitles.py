"""Word times from a streaming decoding, and subtitles (SRT, WebVTT) made of them.

What the model's stream says about time (``vrt_finetune.targets``, ``docs/model_contract.md``):
a group of words ending at ``e`` s is written with one ``[W]`` at stream position
``p = L + d + ceil(e / 80 ms)``. Read backwards, for a ``[W]`` at ``p``:

* ``emitted = (p - L) × 80 ms``: how much of the recording the model had heard when it wrote the
  ``[W]``; in a live stream the word appears about then (plus compute time).
* ``end = (p - L - d) × 80 ms = emitted - delay``: the word's end as the target rule dates it
  (what vLLM reports). A model that follows the rule wrote it in the first frame after the word
  ended, so the word ended within the 80 ms before ``end``; later than that only when its group
  waited behind the tokens of the group before it (words ending less than a group's length of
  frames apart), or when the model is unsure of the word.
* ``start``: the model writes no start times; it is estimated. A group starts where the previous
  one ended, but at most ``(characters + 1) / 14`` s before its own end (about the pace of read
  speech), so a word after a pause does not stretch over the silence. Words sharing one ``[W]``
  (all but the first of them ended in the same 80 ms frame) share the group's span in proportion
  to their length. Times are clipped to the recording.

Cues: consecutive words up to ``max_chars`` characters (42, the usual subtitle line length) and
``max_seconds`` long; a cue also ends after a sentence's final punctuation and before a pause.
The SRT and WebVTT text is written here: a few lines of formatting, where whisperX's writers
(the one subtitle writer among our dependencies) come only with the optional ``align`` extra and
group words their own way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from vrt_finetune.decode import DecodedWord

CHARACTERS_PER_SECOND = 14.0
"""Pace of read speech (characters, spaces included) that bounds a word's estimated start."""

MAX_LINE_CHARS = 42
"""Longest cue text in characters (the common broadcast and streaming subtitle limit)."""

MAX_CUE_SECONDS = 5.0
"""Longest cue in seconds."""

PAUSE_SECONDS = 0.5
"""A gap between two words at least this long starts a new cue."""

_SENTENCE_END = (".", "?", "!", "…")


@dataclass(frozen=True)
class TimedWord:
    """A transcribed word with its times in seconds from the start of the recording."""

    word: str
    start: float
    """Estimated (see the module docstring)."""
    end: float
    """``emitted - delay``, clipped to the recording: the word ended within 80 ms before it."""
    emitted: float
    """When the model wrote the word's ``[W]``: audio heard up to then."""

    def to_json(self) -> dict:
        return {
            "word": self.word,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "emitted": round(self.emitted, 3),
        }


@dataclass(frozen=True)
class Cue:
    """One subtitle: its time span and its text."""

    start: float
    end: float
    text: str


def timed_words(words: Sequence[DecodedWord], duration: float) -> list[TimedWord]:
    """Start and end of each decoded word (see the module docstring).

    Args:
        words: ``Decoded.words`` of one recording, in order.
        duration: length of the recording in seconds.

    Returns:
        one ``TimedWord`` per word; starts and ends never decrease, and ``start <= end``.
    """
    out: list[TimedWord] = []
    previous_end = 0.0
    # consecutive words dated by the same [W] form one group (parse_stream's grouping)
    for _, group in itertools.groupby(words, key=lambda w: w.frame):
        group = list(group)
        end = min(max(group[0].ended_at_estimate, previous_end), duration)
        weights = [len(w.word) + 1 for w in group]
        start = min(max(previous_end, end - sum(weights) / CHARACTERS_PER_SECOND, 0.0), end)
        t, total = start, sum(weights)
        for k, (w, weight) in enumerate(zip(group, weights, strict=True)):
            w_end = end if k == len(group) - 1 else t + (end - start) * weight / total
            out.append(TimedWord(w.word, t, w_end, w.emitted_at))
            t = w_end
        previous_end = end
    return out


def make_cues(
    words: Sequence[TimedWord],
    max_chars: int = MAX_LINE_CHARS,
    max_seconds: float = MAX_CUE_SECONDS,
    pause_seconds: float = PAUSE_SECONDS,
) -> list[Cue]:
    """Group words into subtitle cues (a word longer than ``max_chars`` is a cue of its own).

    Raises:
        ValueError: a non-positive limit.
    """
    if max_chars < 1 or max_seconds <= 0 or pause_seconds <= 0:
        raise ValueError("max_chars, max_seconds and pause_seconds must be positive")
    cues: list[Cue] = []
    line: list[TimedWord] = []

    def flush() -> None:
        if line:
            cues.append(Cue(line[0].start, line[-1].end, " ".join(w.word for w in line)))
            line.clear()

    for w in words:
        if line and (
            sum(len(x.word) + 1 for x in line) + len(w.word) > max_chars
            or w.end - line[0].start > max_seconds
            or w.start - line[-1].end >= pause_seconds
        ):
            flush()
        line.append(w)
        if w.word.endswith(_SENTENCE_END):
            flush()
    flush()
    return cues


def _timestamp(seconds: float, decimal_marker: str) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


def _cue_text(text: str) -> str:
    # "-->" would end a cue's timing line in both formats
    return text.replace("-->", "->")


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip text: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, blank-line separated."""
    return "".join(
        f"{n}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{_cue_text(c.text)}\n\n"
        for n, c in enumerate(cues, 1)
    )


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text: the ``WEBVTT`` header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues."""
    escape = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})  # cue text markup
    return "WEBVTT\n\n" + "".join(
        f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n"
        f"{_cue_text(c.text).translate(escape)}\n\n"
        for c in cues
    )
