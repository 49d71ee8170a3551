"""CTC Viterbi over one chunk of a long recording, with its ends free at word boundaries.

Long-form alignment (:mod:`data_prep.align.longform`) never builds the trellis of a whole
recording (an hour is ~180 000 frames × ~100 000 CTC states); it aligns a window of the
transcript against one chunk of frames at a time. Unlike ``torchaudio.functional.forced_align``,
which must start on the first token and end on the last, the path here may

* **start** before any word ``j`` of the window at a price (``start_costs[j]``, e.g. a penalty
  per word left out: transcript text the audio does not hold, such as a book's title page), and
* **end** anywhere (the chunk stops mid-text; the next chunk carries on) or, for the last chunk
  of a recording, after any word ``j`` at a price (``end_costs[j]``: trailing text the audio
  does not hold).

States are the standard CTC ones: ``2i + 1`` is token ``i`` of the window, ``2i`` the blank
before it, ``2L`` the final blank; a path moves to the same state, the next one, or skips a
blank between two different tokens. Memory is one ``int8`` back-pointer per frame and state
(3000 frames × 4000 states: 12 MB) and time is linear in both, vectorised over states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NEG_INF = -np.inf


@dataclass(frozen=True)
class ChunkPath:
    """Where the best path put each word of the text window; frames count from the chunk start.

    Arrays have one entry per window word; a word with no token, or one the path did not
    reach, has ``first == last == -1`` and ``score`` NaN.
    """

    first: np.ndarray
    """``(n_words,)`` int: first frame on one of the word's tokens."""
    last: np.ndarray
    """``(n_words,)`` int: last frame on one of the word's tokens (inclusive)."""
    score: np.ndarray
    """``(n_words,)`` float: mean posterior of the word's tokens over the frames they hold."""
    complete: np.ndarray
    """``(n_words,)`` bool: the path went through the word's last token."""
    start_word: int
    """The path starts before this word: the window's words before it are left out."""
    log_prob: float
    """Log-probability of the path less its start and end costs."""


def _states(word_tokens: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten the window: labels per state ``(2L + 1,)``, word per token ``(L,)`` and the
    blank state before each word ``(n_words + 1,)`` (the last entry: the final blank)."""
    tokens = np.array([t for ts in word_tokens for t in ts], dtype=np.int64)
    word_of = np.repeat(np.arange(len(word_tokens)), [len(ts) for ts in word_tokens])
    before = np.concatenate([[0], np.cumsum([len(ts) for ts in word_tokens])]) * 2
    return tokens, word_of, before


def align_chunk(
    log_probs: np.ndarray,
    word_tokens: Sequence[Sequence[int]],
    blank: int,
    start_costs: np.ndarray | None = None,
    end_costs: np.ndarray | None = None,
) -> ChunkPath:
    """Best CTC path of a text window through a chunk of frames.

    Args:
        log_probs: CTC log-probabilities of the chunk, ``(n_frames, vocab)``.
        word_tokens: Per window word, its label ids (may be empty: the word is transparent).
        blank: Label id of the CTC blank.
        start_costs: ``(n_words + 1,)`` cost (nats, ``inf`` = not allowed) of starting before
            word ``j``; ``None``: start before word 0 only.
        end_costs: ``(n_words + 1,)`` cost of ending with words ``[0, j)`` complete; ``None``:
            end in any state at no cost.

    Returns:
        The word spans of the best path.

    Raises:
        ValueError: no path fits (e.g. forced ends and more tokens than frames).
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)  # (n_frames, vocab): small per chunk
    n_frames = log_probs.shape[0]
    n_words = len(word_tokens)
    tokens, word_of, before = _states(word_tokens)
    n_tok = len(tokens)
    n_states = 2 * n_tok + 1
    labels = np.full(n_states, blank, dtype=np.int64)
    labels[1::2] = tokens
    # A token may follow the previous token directly (skipping the blank between them) unless
    # it repeats it: CTC needs a blank to tell "ll" from "l".
    skip_add = np.full(n_states, NEG_INF)
    if n_tok > 1:
        skip_add[3::2] = np.where(tokens[1:] != tokens[:-1], 0.0, NEG_INF)

    alpha = np.full(n_states, NEG_INF)  # the virtual frame before the chunk
    if start_costs is None:
        alpha[0] = 0.0
    else:
        for j in range(n_words + 1):  # transparent words share their state with the next one
            alpha[before[j]] = max(alpha[before[j]], -float(start_costs[j]))

    back = np.empty((n_frames, n_states), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    best = np.empty(n_states)
    cand = np.empty(n_states)
    gain = np.empty(n_states)
    better = np.empty(n_states, dtype=bool)
    for t in range(n_frames):
        np.take(log_probs[t], labels, out=gain)
        row = back[t]
        best[:] = alpha
        row[:] = 0
        np.greater(alpha[:-1], alpha[1:], out=better[1:])
        np.maximum(alpha[1:], alpha[:-1], out=best[1:])
        row[1:][better[1:]] = 1
        np.add(alpha[:-2], skip_add[2:], out=cand[2:])
        np.greater(cand[2:], best[2:], out=better[2:])
        np.maximum(best[2:], cand[2:], out=best[2:])
        row[2:][better[2:]] = 2
        np.add(best, gain, out=alpha)

    final = alpha.copy()
    if end_costs is not None:
        final[:] = NEG_INF
        for j in range(n_words + 1):  # words [0, j) complete: on their last token or after it
            for s in (before[j] - 1, before[j]):
                if s >= 0:
                    final[s] = max(final[s], alpha[s] - float(end_costs[j]))
    state = int(np.argmax(final))
    if not np.isfinite(final[state]):
        raise ValueError(f"no CTC path of {n_tok} tokens fits in {n_frames} frames")

    path = np.empty(n_frames, dtype=np.int64)
    for t in range(n_frames - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    # `state` is now where the path stood before frame 0: the blank before some word(s); of
    # the words sharing it (transparent ones), the start was the cheapest.
    at = np.flatnonzero(before == state)
    costs = np.zeros(len(at)) if start_costs is None else np.asarray(start_costs)[at]
    start_word = int(at[np.argmin(costs)])
    return _word_spans(path, log_probs, labels, word_of, n_words, start_word, float(final.max()))


def _word_spans(
    path: np.ndarray,
    log_probs: np.ndarray,
    labels: np.ndarray,
    word_of: np.ndarray,
    n_words: int,
    start_word: int,
    log_prob: float,
) -> ChunkPath:
    first = np.full(n_words, -1, dtype=np.int64)
    last = np.full(n_words, -1, dtype=np.int64)
    score = np.full(n_words, np.nan)
    complete = np.zeros(n_words, dtype=bool)
    on_token = np.flatnonzero(path % 2 == 1)
    if len(on_token):
        tok = (path[on_token] - 1) // 2
        words = word_of[tok]
        posterior = np.exp(log_probs[on_token, labels[path[on_token]]])
        # frames are in time order and words are monotone along the path
        starts = np.flatnonzero(np.r_[True, words[1:] != words[:-1]])
        ends = np.r_[starts[1:], len(words)]
        for a, b in zip(starts, ends, strict=True):
            w = words[a]
            first[w], last[w] = on_token[a], on_token[b - 1]
            score[w] = float(posterior[a:b].mean())
        # a monotone path holds every token between its first and its last one
        n_tok = np.bincount(word_of, minlength=n_words)
        first_tok = np.cumsum(n_tok) - n_tok
        last_tok = first_tok + n_tok - 1
        complete[:] = (n_tok > 0) & (first_tok >= tok.min()) & (last_tok <= tok.max())
    return ChunkPath(first, last, score, complete, start_word, log_prob)
