"""whisperX's alignment of CTC emissions: its text, its trellis, its word times, batched.

What ``whisperx.align`` does after its model's forward pass, for many utterances at once: each
utterance is one whisperX segment from 0 to its end; its words become whisperX's text and
tokens (:func:`~data_prep.align.whisperx_words.whisperx_text`), one vectorised trellis finds
the paths of a whole batch on the emissions' device
(:func:`~data_prep.align.ctc_trellis.whisperx_paths`), and the word times follow whisperX's
arithmetic (:func:`~data_prep.align.whisperx_words.whisperx_word_times`). Every word's start,
end and score equals ``whisperx.align``'s for the same emissions.

Why not call ``whisperx.align`` itself (as this backend once did, handing it precomputed
logits): its per-frame Python trellis and pandas grouping took ~80 % of the alignment time on a
GPU. The cost of a copy is drift: whisperX is pinned (``whisperx==3.8.6``, Makefile) and
``tests/test_ctc_trellis.py`` compares against the installed one, so an upgrade that changes
its arithmetic fails there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from data_prep.align.base import (
    AlignedWord,
    AlignmentError,
    AlignmentFailure,
    AlignResult,
    interpolate_missing,
)
from data_prep.align.ctc_trellis import plan_trellis_batches, whisperx_paths
from data_prep.align.whisperx_words import (
    INTERPOLATE_METHODS,
    WhisperXText,
    whisperx_text,
    whisperx_word_times,
)
from vrt_finetune.constants import SAMPLE_RATE


@dataclass(frozen=True)
class WhisperXJob:
    """One utterance as whisperX sees it."""

    words: list[str]
    pieces: list[list[str]]
    """Per word, the whisperX "words" it becomes (split on spaces; characters for ja/zh)."""
    segment: WhisperXText
    n_samples: int

    @property
    def duration(self) -> float:
        return self.n_samples / SAMPLE_RATE


def make_job(
    words: Sequence[str], language: str, n_samples: int, dictionary: Mapping[str, int]
) -> WhisperXJob:
    from whisperx.alignment import LANGUAGES_WITHOUT_SPACES

    no_spaces = language in LANGUAGES_WITHOUT_SPACES
    # whisperX splits the segment text on " " (every character for ja/zh); a word with inner
    # whitespace becomes several whisperX words, merged back in `_to_aligned_words`.
    pieces = [list("".join(w.split())) if no_spaces else w.split() for w in words]
    flat = [p for ps in pieces for p in ps]
    if not flat:
        raise AlignmentError("nothing_to_align", f"no non-blank word among {list(words)!r}")
    if n_samples == 0:
        raise AlignmentError("empty_audio", "the utterance has no samples")
    segment = whisperx_text(flat, dictionary, no_spaces)
    if not segment.tokens:  # whisperX: "no characters in this segment found in model dictionary"
        raise AlignmentError("nothing_to_align", f"no alignable character in {list(words)!r}")
    return WhisperXJob(list(words), pieces, segment, n_samples)


def whisperx_blank(dictionary: Mapping[str, int]) -> int:
    """whisperX's CTC blank: the last ``[pad]``/``<pad>`` of the dictionary, else column 0."""
    blank = 0
    for char, code in dictionary.items():
        if char in ("[pad]", "<pad>"):
            blank = code
    return blank


WordTimes = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Per whisperX word: start, end and score, float64 ``(n_words,)``, NaN where it has none."""


def to_aligned_words(
    job: WhisperXJob, times: WordTimes, metadata: Mapping[str, Any]
) -> list[AlignedWord]:
    """whisperX's word times (one per whisperX word) → one :class:`AlignedWord` per input word."""
    dictionary = metadata["dictionary"]
    starts, ends, scores = (v.tolist() for v in times)
    placed: list[AlignedWord | None] = []
    k = 0
    for word, pieces in zip(job.words, job.pieces, strict=True):
        n = len(pieces)
        s, e, sc = starts[k : k + n], ends[k : k + n], scores[k : k + n]
        k += n
        if any(math.isnan(x) for x in s + e):
            placed.append(None)
            continue
        known = [x for x in sc if not math.isnan(x)]
        # whisperX times characters outside the vocabulary with a wildcard column (best
        # non-blank score per frame): placed, but not from the word's own sounds.
        wildcard_only = not any(c.lower() in dictionary for c in word)
        placed.append(
            AlignedWord(
                word,
                min(s),
                max(e),
                (known[0] if n == 1 else float(np.mean(known))) if known else 0.0,
                flagged=wildcard_only,
            )
        )
    return interpolate_missing(job.words, placed, job.duration)


def job_word_times(
    logits: Sequence[torch.Tensor],
    jobs: Sequence[WhisperXJob],
    metadata: Mapping[str, Any],
    interpolate_method: str,
) -> list[WordTimes | AlignmentFailure]:
    """whisperX's word times of utterances from their CTC outputs, a few trellis batches."""
    from whisperx.utils import PUNKT_LANGUAGES

    blank = whisperx_blank(metadata["dictionary"])
    punkt = PUNKT_LANGUAGES.get(metadata["language"], "english")
    sizes = [(int(lg.shape[0]), len(j.segment.tokens)) for lg, j in zip(logits, jobs, strict=True)]
    results: list[WordTimes | AlignmentFailure | None] = [None] * len(jobs)
    for batch in plan_trellis_batches(sizes):
        # whisperX's log_softmax, on the emissions' device like its own forward pass
        log_probs = [torch.log_softmax(logits[i], dim=-1) for i in batch]
        paths = whisperx_paths(log_probs, [jobs[i].segment.tokens for i in batch], blank)
        for i, path in zip(batch, paths, strict=True):
            job = jobs[i]
            if path is None:
                results[i] = AlignmentFailure(
                    "backtrack_failed",
                    f"no whisperX path for {job.segment.text!r} in {job.duration:.2f} s"
                    " (too little audio?)",
                )
                continue
            results[i] = whisperx_word_times(
                job.segment, path, sizes[i][0], job.duration, punkt, interpolate_method
            )
    return results  # type: ignore[return-value]


def _aligned_times(
    logits: Sequence[torch.Tensor],
    words: Sequence[Sequence[str]],
    metadata: Mapping[str, Any],
    n_samples: Sequence[int],
    interpolate_method: str,
) -> list[tuple[WhisperXJob, WordTimes] | AlignmentFailure]:
    """Per utterance, its job and whisperX's word times, or why it failed."""
    if not len(logits) == len(words) == len(n_samples):
        raise ValueError(f"{len(logits)} emissions, {len(words)} texts, {len(n_samples)} lengths")
    if interpolate_method not in INTERPOLATE_METHODS:
        raise ValueError(f"interpolate_method must be one of {INTERPOLATE_METHODS}")
    out: list[tuple[WhisperXJob, WordTimes] | AlignmentFailure | None] = [None] * len(words)
    todo, jobs = [], []
    for i, (w, n) in enumerate(zip(words, n_samples, strict=True)):
        try:
            jobs.append(make_job(w, metadata["language"], n, metadata["dictionary"]))
            todo.append(i)
        except AlignmentError as err:
            out[i] = err.failure
    times = job_word_times([logits[i] for i in todo], jobs, metadata, interpolate_method)
    for i, job, t in zip(todo, jobs, times, strict=True):
        out[i] = t if isinstance(t, AlignmentFailure) else (job, t)
    return out  # type: ignore[return-value]


def emissions_to_words(
    logits: Sequence[torch.Tensor],
    words: Sequence[Sequence[str]],
    metadata: Mapping[str, Any],
    n_samples: Sequence[int],
    interpolate_method: str = "nearest",
) -> list[AlignResult]:
    """Word times of utterances from their CTC outputs, as ``whisperx.align`` computes them.

    Args:
        logits: Per utterance, CTC logits (or log-probabilities) ``(n_frames, vocab)``,
            ``n_frames`` being what the model gives for its ``n_samples`` samples; all on one
            device, where the alignment runs.
        words: Per utterance, its spoken words in order.
        metadata: whisperX align-model metadata (``dictionary``, ``language``; ``ja``/``zh``
            treat characters as words).
        n_samples: Per utterance, its length in samples (whisperX's segment end).
        interpolate_method: whisperX's method for words without aligned characters.

    Returns:
        Per utterance, one :class:`AlignedWord` per word, or why it failed
        (``nothing_to_align``, ``empty_audio``, ``backtrack_failed``). whisperX's time per frame
        is ``duration / n_frames`` (about 20 ms); its times are rounded to the millisecond.
    """
    return [
        r if isinstance(r, AlignmentFailure) else to_aligned_words(*r, metadata)
        for r in _aligned_times(logits, words, metadata, n_samples, interpolate_method)
    ]


def whisperx_word_segments(
    logits: Sequence[torch.Tensor],
    words: Sequence[Sequence[str]],
    metadata: Mapping[str, Any],
    n_samples: Sequence[int],
    interpolate_method: str = "nearest",
) -> list[list[dict] | AlignmentFailure]:
    """What ``whisperx.align`` returns as ``word_segments`` for each utterance (one segment from
    0 to its end), computed as :func:`emissions_to_words` computes it (same arguments).

    Returns:
        Per utterance, per whisperX word (a word split on spaces, a character for ``ja``/``zh``)
        a dict with ``word`` and, where whisperX has them, ``start``, ``end``, ``score``; or why
        it failed.
    """
    return [
        r if isinstance(r, AlignmentFailure) else _word_segments(*r)
        for r in _aligned_times(logits, words, metadata, n_samples, interpolate_method)
    ]


def _word_segments(job: WhisperXJob, times: WordTimes) -> list[dict]:
    pieces = [p for ps in job.pieces for p in ps]
    keys = ("start", "end", "score")
    return [
        {"word": p} | {k: v for k, v in zip(keys, x, strict=True) if not math.isnan(v)}
        for p, *x in zip(pieces, *(v.tolist() for v in times), strict=True)
    ]
