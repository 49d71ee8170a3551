"""whisperX's word times from its character path, computed as ``whisperx.align`` does, minus pandas.

``whisperx.align`` (3.8) prepares a segment's text, finds the best path of its characters
(:func:`~data_prep.align.ctc_trellis.whisperx_paths` reproduces that) and then builds a pandas
frame of characters per segment to group them into sentences and words: milliseconds per word on
a CPU, more than its trellis. This module does the same arithmetic on arrays for the texts our
backend gives it (words joined by single spaces, or run together for ``ja``/``zh``, no leading
or trailing whitespace):

* characters: lower-cased; a space is ``"|"`` (the wav2vec2 word delimiter) when the dictionary
  has it and is dropped otherwise; any other character outside the dictionary is aligned with
  the wildcard column (:data:`~data_prep.align.ctc_trellis.WILDCARD`); a literal ``"|"`` outside
  the dictionary is dropped;
* times: frame ``f`` is ``round(f * duration / n_frames, 3)`` seconds (Python's ``round``);
  character scores ``round(score, 3)``;
* words: first start and last end of the word's characters, score
  ``numpy.round(mean of its character scores, 3)`` (pandas' ``mean``: a numpy sum; ``round`` of a
  ``numpy.float64``: numpy's rounding, which differs from Python's at some halves);
* a word with no aligned character (only possible for one made of ``"|"``) takes its start and
  end from the words of its sentence (punkt, as whisperX splits) by ``interpolate_method``.

Tested for equality, time for time and score for score, against ``whisperx.align`` in
``tests/test_ctc_trellis.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from data_prep.align.ctc_trellis import WILDCARD, TokenPath

INTERPOLATE_METHODS = ("nearest", "linear", "ignore")
"""whisperX's ways to time a word with no aligned character (its ``interpolate_method``)."""


@dataclass(frozen=True)
class WhisperXText:
    """One segment's text as whisperX aligns it."""

    text: str
    """The whisperX words joined by single spaces (or run together: ``no_spaces``)."""
    word_lengths: list[int]
    """Characters of each whisperX word."""
    no_spaces: bool
    """``ja``/``zh``: every character is a word and the text has no spaces."""
    tokens: list[int]
    """Per character of whisperX's cleaned text: its column, or ``WILDCARD``."""
    clean_index: np.ndarray
    """Text position of each character whisperX aligns (``clean_cdx``)."""


def whisperx_text(
    words: Sequence[str], dictionary: Mapping[str, int], no_spaces: bool
) -> WhisperXText:
    """whisperX's characters to align for a segment made of ``words``.

    Args:
        words: whisperX words: non-empty, without whitespace (single characters for
            ``no_spaces``).
        dictionary: The align model's lower-case characters → columns.
        no_spaces: The language writes without spaces (``ja``, ``zh``).

    Returns:
        A :class:`WhisperXText` (its ``tokens`` may be empty: nothing to align).
    """
    text = ("" if no_spaces else " ").join(words)
    clean, index = [], []
    for cdx, char in enumerate(text):
        c = char.lower()
        if not no_spaces:
            c = c.replace(" ", "|")  # the wav2vec2 word delimiter
        if c in dictionary or c not in (" ", "|"):  # the others take the wildcard
            clean.append(c)
            index.append(cdx)
    # NOTE: a character that lower-cases to two ("İ") gives two tokens but one position, so
    # later characters take their neighbours' spans: whisperX does the same.
    tokens = [dictionary.get(c, WILDCARD) for c in "".join(clean)]
    lengths = [len(w) for w in words]
    return WhisperXText(text, lengths, no_spaces, tokens, np.array(index, dtype=np.int64))


def round_like_python(x: np.ndarray, ndigits: int = 3) -> np.ndarray:
    """``[round(v, ndigits) for v in x]`` (Python's correctly rounded decimal rounding), fast.

    ``numpy.round`` scales, rounds and scales back, which lands on the other side of a half
    about once in 200 values; here that is done only where it cannot go wrong, and values
    within a few ulps of a half go through Python's ``round``.
    """
    x = np.asarray(x, dtype=np.float64)
    scale = 10.0**ndigits
    y = x * scale
    out = np.rint(y) / scale
    with np.errstate(invalid="ignore"):
        near_half = np.abs(y - np.floor(y) - 0.5) <= 4 * np.spacing(np.abs(y))
    for i in np.flatnonzero(near_half):
        out[i] = round(float(x[i]), ndigits)
    return out


def whisperx_word_times(
    seg: WhisperXText,
    path: TokenPath,
    n_frames: int,
    duration: float,
    punkt_language: str = "english",
    interpolate_method: str = "nearest",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end and score of each whisperX word, as ``whisperx.align`` returns them.

    Args:
        seg: The segment's text (:func:`whisperx_text`).
        path: Its characters' best path (:func:`~data_prep.align.ctc_trellis.whisperx_paths`).
        n_frames: Frames of its emissions.
        duration: Its length in seconds (``segment["end"] - segment["start"]``, start 0).
        punkt_language: Sentence splitter of the language (whisperX's ``PUNKT_LANGUAGES``);
            only loaded when a word has no aligned character.
        interpolate_method: whisperX's ``interpolate_method``.

    Returns:
        ``(n_words,)`` float64 arrays; NaN where whisperX's word has no ``start``, ``end`` or
        ``score``.
    """
    ratio = duration / n_frames  # whisperX's `duration * 1 / (trellis rows - 1)`
    n_chars = len(seg.text)
    char_start = np.full(n_chars, np.nan)
    char_end = np.full(n_chars, np.nan)
    char_score = np.full(n_chars, np.nan)
    k = len(seg.clean_index)
    char_start[seg.clean_index] = round_like_python(path.start[:k] * ratio)
    char_end[seg.clean_index] = round_like_python(path.end[:k] * ratio)
    char_score[seg.clean_index] = round_like_python(path.score[:k])
    lengths = np.array(seg.word_lengths)
    sep = 0 if seg.no_spaces else 1
    first = np.concatenate([[0], np.cumsum(lengths + sep)[:-1]])  # text position of each word
    at = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # each word's first entry of in_word
    in_word = np.arange(int(lengths.sum())) + np.repeat(first - at, lengths)  # text positions
    with np.errstate(invalid="ignore"):
        start = np.fmin.reduceat(char_start[in_word], at)
        end = np.fmax.reduceat(char_end[in_word], at)
    score = _word_scores(char_score[in_word], lengths)
    if np.isnan(start).any():
        start, end = _interpolate(seg, first, start, end, punkt_language, interpolate_method)
    return start, end, score


def _word_scores(char_scores: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``round(Series.mean(), 3)`` of each word's character scores, NaN for none.

    pandas sums with NaN set to 0 (a numpy pairwise sum, whose order depends on the length, so
    words are summed in groups of equal length) and divides by the count of the others.
    """
    ends = np.cumsum(lengths)
    counts = np.add.reduceat((~np.isnan(char_scores)).astype(np.int64), ends - lengths)
    values = np.nan_to_num(char_scores, nan=0.0)
    sums = np.empty(len(lengths))
    for n in np.unique(lengths):
        words = np.flatnonzero(lengths == n)
        rows = (ends[words] - n)[:, None] + np.arange(n)
        sums[words] = values[rows].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.round(sums / counts, 3)


def _interpolate(
    seg: WhisperXText,
    first: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    punkt_language: str,
    method: str,
) -> tuple[np.ndarray, np.ndarray]:
    """whisperX's per-sentence ``interpolate_nans`` of words with no aligned character."""
    if method not in INTERPOLATE_METHODS:
        raise ValueError(f"interpolate_method must be one of {INTERPOLATE_METHODS}: {method!r}")
    if method == "ignore":
        return start, end
    from nltk.data import load

    spans = load(f"tokenizers/punkt_tab/{punkt_language}.pickle").span_tokenize(seg.text)
    start, end = start.copy(), end.copy()
    for s0, s1 in spans:
        words = np.flatnonzero((first >= s0) & (first <= s1))
        missing = np.isnan(start[words])
        if missing.all() or not missing.any():
            continue
        for values in (start, end):
            v = values[words]
            known = np.flatnonzero(~missing)
            gaps = np.flatnonzero(missing)
            if method == "linear":  # pandas' linear interpolation is np.interp on positions
                v[gaps] = np.interp(gaps, known, v[known])
            else:  # scipy's "nearest" takes the left one at a tie; ends are filled outwards
                right = np.searchsorted(known, gaps)
                left = right - 1
                last = len(known) - 1
                use_left = (right > last) | (
                    (left >= 0) & (gaps - known[left.clip(0)] <= known[right.clip(max=last)] - gaps)
                )
                v[gaps] = v[known[np.where(use_left, left.clip(0), right.clip(max=last))]]
            values[words] = v
    return start, end
