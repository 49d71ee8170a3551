"""From aligned written words to training samples: word mapping, long-recording splits, filters.

Alignment runs on normalised spoken words (``data_prep.spoken_form``); this module maps their
times back onto the written words the targets keep, splits recordings longer than the maximum
at pauses between words (never inside one), and applies the quality filters, each rejection
with a named reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from data_prep.align.base import AlignedWord
from data_prep.spoken_form import NormWord


@dataclass(frozen=True)
class Word:
    """A written word with its time span in the sample's audio (seconds)."""

    word: str
    start: float
    end: float
    score: float
    flagged: bool


@dataclass(frozen=True)
class Filters:
    """Quality filters; a segment failing one is rejected with the filter's name as reason."""

    min_duration: float = 0.3
    """Seconds; shorter segments are rejected as ``too_short``."""
    max_duration: float = 30.0
    """Seconds; longer recordings are split at pauses, never inside a word."""
    max_words_per_second: float = 8.0
    """Faster speech usually means the transcript does not match the audio."""
    min_score: float = 0.0
    """Minimum mean alignment score of the segment's placed words."""
    max_gap: float = 10.0
    """Longest silence between two words inside one segment (unlabelled speech hides there)."""
    max_flagged_fraction: float = 0.2
    """Share of words whose times had to be interpolated; above it: ``unalignable``."""
    vad: bool = False
    """Run silero-vad over unlabelled stretches (before, between and after the words) longer
    than ``vad_min_gap`` and cut out those in which it hears speech: speech the transcript does
    not cover would teach the model to stay silent. Stretches longer than ``max_gap`` are cut
    out with or without it."""
    vad_min_gap: float = 1.0
    """Seconds; shorter unlabelled stretches are kept without asking the VAD."""

    def __post_init__(self) -> None:
        if not 0 < self.min_duration < self.max_duration:
            raise ValueError("need 0 < min_duration < max_duration")


def map_to_written(norm: Sequence[NormWord], spoken: Sequence[AlignedWord]) -> list[Word]:
    """Give each written word the span of its spoken words.

    Written tokens with nothing to say (punctuation, emoji) are attached to the previous
    written word ("word —"), or to the next one at the start of the transcript.

    Args:
        norm: normalised transcript, ``norm[i].spoken`` the spoken words of written word ``i``.
        spoken: one aligned word per spoken word, in order.
    """
    expected = sum(len(n.spoken) for n in norm)
    if expected != len(spoken):
        raise ValueError(f"{len(spoken)} aligned words for {expected} spoken words")
    out: list[Word] = []
    pending: list[str] = []  # silent written tokens waiting for a word to attach to
    i = 0
    for nw in norm:
        if not nw.spoken:
            if out:
                last = out[-1]
                out[-1] = Word(
                    f"{last.word} {nw.original}", last.start, last.end, last.score, last.flagged
                )
            else:
                pending.append(nw.original)
            continue
        parts = spoken[i : i + len(nw.spoken)]
        i += len(nw.spoken)
        text = " ".join([*pending, nw.original])
        pending = []
        out.append(
            Word(
                text,
                min(p.start for p in parts),
                max(p.end for p in parts),
                sum(p.score for p in parts) / len(parts),
                any(p.flagged for p in parts),
            )
        )
    return out


GAP_MARGIN = 0.2
"""Seconds of a skipped stretch kept on each side, so no word is cut at its edge."""


def _split_region(
    words: Sequence[Word], start: float, end: float, max_duration: float
) -> list[tuple[float, float, list[Word]]]:
    """Split ``[start, end)`` holding ``words`` (absolute times) into windows of at most
    ``max_duration`` s cut in the middle of the widest pause of each window's second half."""
    if end - start <= max_duration:
        return [(start, end, list(words))]
    segments: list[tuple[float, float, list[Word]]] = []
    seg_start, first = start, 0
    n = len(words)
    while first < n:
        # furthest word that still ends inside the window
        last = first
        while last + 1 < n and words[last + 1].end - seg_start <= max_duration:
            last += 1
        if last + 1 >= n and end - seg_start <= max_duration:
            cut_end = end
            last = n - 1
        elif last == first and words[first].end - seg_start > max_duration:
            cut_end = words[first].end  # one over-long word: its own (rejected) segment
        else:
            half = seg_start + max_duration / 2
            best, best_gap = last, -1.0
            for j in range(first, min(last + 1, n - 1)):
                gap = words[j + 1].start - words[j].end
                if words[j].end >= half and gap > best_gap:
                    best, best_gap = j, gap
            last = best
            cut_end = (words[last].end + words[last + 1].start) / 2 if last + 1 < n else end
        segments.append((seg_start, cut_end, list(words[first : last + 1])))
        seg_start, first = cut_end, last + 1
    return segments


def gaps(words: Sequence[Word], duration: float) -> list[tuple[int, float, float]]:
    """Unlabelled stretches ``(index of the next word, start, end)``: before the first word,
    between words, and after the last (index ``len(words)``)."""
    edges = [0.0, *(t for w in words for t in (w.start, w.end)), duration]
    return [(i, edges[2 * i], edges[2 * i + 1]) for i in range(len(words) + 1)]


def split_at_pauses(
    words: Sequence[Word],
    duration: float,
    max_duration: float,
    skip: Sequence[int] = (),
) -> list[tuple[float, float, list[Word]]]:
    """Cut a recording into segments of at most ``max_duration`` seconds.

    Cuts fall in the middle of the widest pause inside the allowed window, never inside a word.
    The unlabelled stretches listed in ``skip`` (indices into :func:`gaps`: long silences, or
    speech the transcript does not cover) are left out entirely, keeping ``GAP_MARGIN`` on each
    side. Times in the returned words are re-based to their segment's start.

    Returns:
        ``[(seg_start, seg_end, words)]``; a word longer than ``max_duration`` on its own gets a
        segment that the duration filter then rejects.
    """
    stretches = gaps(words, duration)
    regions: list[tuple[float, float, int, int]] = []  # (start, end, first word, end word)
    start, first = 0.0, 0
    for i in sorted(set(skip)):
        _, g_start, g_end = stretches[i]
        if i > first:
            regions.append((start, min(g_start + GAP_MARGIN, duration), first, i))
        start, first = max(g_end - GAP_MARGIN, 0.0), i
    if first < len(words):
        regions.append((start, duration, first, len(words)))
    segments = []
    for r_start, r_end, a, b in regions:
        for seg_start, seg_end, seg_words in _split_region(
            words[a:b], r_start, r_end, max_duration
        ):
            rebased = [
                Word(w.word, w.start - seg_start, w.end - seg_start, w.score, w.flagged)
                for w in seg_words
            ]
            segments.append((seg_start, seg_end, rebased))
    return segments


def reject_reason(words: Sequence[Word], duration: float, f: Filters) -> str | None:
    """The first filter a segment fails, or ``None``."""
    if duration < f.min_duration:
        return "too_short"
    if duration > f.max_duration:
        return "too_long"
    if not words:
        return "no_words"
    if sum(w.flagged for w in words) > f.max_flagged_fraction * len(words):
        return "unalignable"
    if len(words) / duration > f.max_words_per_second:
        return "too_fast"
    placed = [w.score for w in words if not w.flagged]
    if placed and sum(placed) / len(placed) < f.min_score:
        return "low_score"
    gaps = [b.start - a.end for a, b in itertools.pairwise(words)]
    if (gaps and max(gaps) > f.max_gap) or words[0].start > f.max_gap:
        return "long_gap"
    return None
