"""Long-form alignment: one transcript against an hour of audio, in bounded memory.

A recording longer than ``aligner.max_seconds`` with no word times is aligned in three steps:

1. **Emissions, window by window** (:func:`stitched_log_probs`). The acoustic model runs on
   overlapping windows (30 s kept + 3 s of context on each side, as fairseq's MMS data
   preparation does) and only each window's central frames are kept, so every frame saw at
   least 3 s around it; windows start on the model's frame grid, so the stitched matrix has the
   frames of one pass over the whole file: ``(n_frames, vocab)``, 23 MB for an hour.
2. **Pieces between anchors** (:func:`plan_pieces`). Left to right, the transcript is aligned
   against 60 s chunks of frames with a CTC Viterbi whose ends are free at word boundaries
   (:func:`~data_prep.align.ctc_viterbi.align_chunk`); in each chunk the widest pause between
   two confidently aligned words (the anchors) between 1/3 and 2/3 of the chunk becomes a cut,
   and the next chunk starts there. Text the audio does not hold is left out at a price per
   word at a chunk's start and at the recording's end (like a factor transducer's skip arcs):
   a title page, or trailing text, ends up flagged instead of dragging the words after it out
   of place. Memory is one chunk's back-pointers (~12 MB), never the whole trellis.
3. **Each piece with the backend's own aligner** (whisperX's trellis, MMS's
   ``forced_align`` path, :mod:`~data_prep.align.ctc_trellis`), all pieces in one batch, on its
   slice of the stitched emissions, so word times follow the same conventions as a short
   utterance's; a piece that fails leaves its words unplaced, and
   words no piece holds get times from their neighbours (:func:`interpolate_missing`, flagged).

Memory for an hour: the waveform (230 MB float32), the model's activations for one window and
the emissions (measured with a wav2vec2-base-sized model: 1.5 GB peak for the process, of which
~0.4 GB for the windows); time is the model's forward pass plus 10-35 s of Viterbi and piece
alignment per hour on one CPU core (``bench/bench_longform.py``).

Limits: text a reader leaves out in the middle of a chunk is squeezed into the pauses around it
until the next chunk's start can leave it out (a few words misplaced, not flagged), and
untranscribed speech is absorbed by blanks or stretched words, as in the one-piece path
(``filters.vad`` and ``filters.min_score`` catch both). Posteriors that match no text at all (a
wrong transcript, a random model) get most words left out and flagged: ``unalignable``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from data_prep.align.base import (
    AlignedWord,
    Aligner,
    AlignmentError,
    AlignmentFailure,
    AlignRequest,
    as_waveform,
    interpolate_missing,
)
from data_prep.align.ctc_aligner import CTCAligner, LongFormBackend
from data_prep.align.ctc_viterbi import ChunkPath, align_chunk
from vrt_finetune.constants import SAMPLE_RATE


@dataclass(frozen=True)
class LongFormOptions:
    """Knobs of long-form alignment; the defaults suit wav2vec2-style models at 20 ms."""

    window_seconds: float = 30.0
    """Audio whose frames one window keeps: bounds the model's activations (wav2vec2-base:
    ~0.4 GB for a 36 s window with its context, measured on CPU)."""
    context_seconds: float = 3.0
    """Audio seen on each side of a window's kept part and then dropped."""
    chunk_seconds: float = 60.0
    """Frames one Viterbi chunk aligns; pieces are cut between 1/3 and 2/3 of a chunk."""
    max_tokens_per_second: float = 30.0
    """Text a chunk takes in: about twice fast speech (~16 characters per second)."""
    skip_cost: float = 10.0
    """Nats per transcript word left out at a chunk's start or the recording's end. A word the
    audio holds costs far more to leave out (its characters' posteriors), one it does not hold
    costs more to force in."""
    max_skip_words: int = 50
    """Most words one chunk may leave out at its start."""
    anchor_score: float = 0.5
    """Mean posterior both words around a cut need to count as anchors (else the widest pause
    in range is taken anyway)."""

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.context_seconds < 0 or self.chunk_seconds <= 0:
            raise ValueError("need window_seconds > 0, context_seconds >= 0, chunk_seconds > 0")


# --- 1. emissions, window by window -----------------------------------------------------------


def window_plan(n_samples: int, hop: int, window: int, context: int) -> list[tuple[int, int, int]]:
    """Input ranges of the windows and the first frame each keeps.

    Window ``k`` keeps the frames that start in ``[k * window, (k + 1) * window)`` (the last
    one: to the end) and reads ``context`` more samples on each side. A tail shorter than
    ``context`` joins the window before it, so each non-last window reads its full right
    context.

    Args:
        n_samples: Length of the recording.
        hop: Samples per CTC frame; ``window`` and ``context`` must be multiples of it.
        window: Samples whose frames one window keeps.
        context: Samples read on each side.

    Returns:
        ``[(first_sample, end_sample, first_kept_frame)]``; window ``k`` keeps frames
        ``[first_kept_frame_k, first_kept_frame_{k+1})``, counted on the whole file's grid.
    """
    if window % hop or context % hop:
        raise ValueError(f"window {window} and context {context} must be multiples of {hop}")
    n_windows = max(1, math.ceil(n_samples / window))
    if n_windows > 1 and n_samples - (n_windows - 1) * window < context:
        n_windows -= 1
    plan = []
    for k in range(n_windows):
        start, end = k * window, (k + 1) * window
        last = k == n_windows - 1
        first_sample = max(0, start - context)
        end_sample = n_samples if last else min(n_samples, end + context)
        plan.append((first_sample, end_sample, start // hop))
    return plan


def stitched_log_probs(
    frame_log_probs: Callable[[Sequence[np.ndarray]], list[torch.Tensor]],
    audio: np.ndarray,
    hop: int,
    options: LongFormOptions,
    windows_per_call: int = 1,
) -> torch.Tensor:
    """CTC log-probabilities of a long recording, from overlapping windows.

    Args:
        frame_log_probs: The backend's forward pass: windows ``(n_samples_i,)`` → per window
            ``(n_frames_i, vocab)`` log-probabilities, frame ``j`` starting at sample
            ``j * hop`` of its window (wav2vec2 convolutions have no padding).
        audio: Mono waveform, ``(n_samples,)``.
        hop: Samples per frame.
        options: Window and context lengths.
        windows_per_call: Windows per forward pass (memory: one window's activations each).

    Returns:
        ``(n_frames, vocab)`` float32, the frames a single pass over ``audio`` would give.
    """
    window = round(options.window_seconds * SAMPLE_RATE / hop) * hop
    context = round(options.context_seconds * SAMPLE_RATE / hop) * hop
    plan = window_plan(len(audio), hop, window, context)
    kept: list[torch.Tensor] = []
    for b in range(0, len(plan), windows_per_call):
        group = plan[b : b + windows_per_call]
        outs = frame_log_probs([audio[s0:s1] for s0, s1, _ in group])
        for (s0, _, keep_from), out in zip(group, outs, strict=True):
            k = len(kept)
            keep_to = plan[k + 1][2] if k + 1 < len(plan) else None
            origin = s0 // hop  # the window's frame 0 on the file's grid
            kept.append(out[keep_from - origin : None if keep_to is None else keep_to - origin])
            if keep_to is not None and len(kept[-1]) != keep_to - keep_from:
                raise RuntimeError(f"window {k} gave too few frames (receptive field > context?)")
    return torch.cat(kept).float()


# --- 2. pieces between anchors ----------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """A stretch of frames and the transcript words aligned in it."""

    start: int
    """First frame."""
    end: int
    """Frame after the last."""
    words: range
    """Indices of the transcript words it holds (words in no piece are left out)."""


def _window_words(
    word_tokens: Sequence[Sequence[int]], w: int, n_frames: int, frame_s: float, o: LongFormOptions
) -> int:
    """End of the text window starting at word ``w`` for a chunk of ``n_frames`` frames."""
    skippable = sum(len(t) for t in word_tokens[w : w + o.max_skip_words])
    need = skippable + math.ceil(o.max_tokens_per_second * n_frames * frame_s)
    j, n_tok = w, 0
    while j < len(word_tokens) and n_tok < need:
        n_tok += len(word_tokens[j])
        j += 1
    return j


def _choose_cut(path: ChunkPath, has_tokens: np.ndarray, n_frames: int, o: LongFormOptions):
    """``(cut frame, words before it)`` in the widest pause between anchors, or ``None``."""
    lo, hi = n_frames // 3, 2 * n_frames // 3
    aligned = [k for k in range(path.start_word, len(has_tokens)) if has_tokens[k]]
    cands = []  # (in range, both anchors, pause width, cut, words before)
    for a, b in itertools.pairwise(aligned):
        if not path.complete[a]:
            break
        gap_start = int(path.last[a]) + 1  # the pause between word a and word b
        gap_end = int(path.first[b]) if path.first[b] >= 0 else n_frames
        left, right = max(gap_start, lo), min(gap_end, hi)
        in_range = left <= right
        cut = (left + right) // 2 if in_range else (gap_start + gap_end) // 2
        if not 0 < cut <= hi:
            continue
        # b's score is NaN when the path has not reached it: then a alone decides
        sure = path.score[a] >= o.anchor_score and not path.score[b] < o.anchor_score
        cands.append((in_range, sure and in_range, gap_end - gap_start, cut, a + 1))
    if not cands:
        return None
    best = max(cands)
    return best[3], best[4]


def plan_pieces(
    log_probs: np.ndarray,
    word_tokens: Sequence[Sequence[int]],
    blank: int,
    frame_seconds: float,
    options: LongFormOptions | None = None,
) -> list[Piece]:
    """Cut a long alignment problem into pieces at pauses between anchor words.

    Args:
        log_probs: CTC log-probabilities of the whole recording, ``(n_frames, vocab)``.
        word_tokens: Per transcript word, its label ids (empty: the backend places it alone).
        blank: Label id of the CTC blank.
        frame_seconds: Seconds per frame.
        options: Chunk length, text rate, skip cost, anchor score.

    Returns:
        Pieces in time order, with increasing word ranges; words in none were left out.
    """
    o = options or LongFormOptions()
    n_frames, n_words = len(log_probs), len(word_tokens)
    chunk = max(3, round(o.chunk_seconds / frame_seconds))
    has_tokens = np.array([len(t) > 0 for t in word_tokens])
    pieces: list[Piece] = []
    f = w = 0
    while f < n_frames and w < n_words:
        end = min(n_frames, f + chunk)
        j = _window_words(word_tokens, w, end - f, frame_seconds, o)
        n = j - w
        start_costs = o.skip_cost * np.arange(n + 1, dtype=np.float64)
        start_costs[o.max_skip_words + 1 :] = np.inf
        end_costs = None
        if end == n_frames and j == n_words:  # the recording's end: trailing text may be left
            end_costs = o.skip_cost * (n - np.arange(n + 1))
        path = align_chunk(log_probs[f:end], word_tokens[w:j], blank, start_costs, end_costs)
        first_word = w + path.start_word
        done = [k for k in range(path.start_word, n) if path.complete[k]]
        if end == n_frames or (j == n_words and len(done) == has_tokens[w:j].sum()):
            # last chunk, or every remaining word is in this one: a piece to the chunk's end
            stop = w + (done[-1] + 1 if done else path.start_word)
            while stop < n_words and stop < j and not has_tokens[stop]:
                stop += 1  # transparent words after the last aligned one go with it
            if stop > first_word:
                pieces.append(Piece(f, end, range(first_word, stop)))
            break
        choice = _choose_cut(path, has_tokens[w:j], end - f, o)
        if choice is None:
            hi = 2 * (end - f) // 3
            started = [k for k in range(path.start_word, n) if 0 <= path.first[k] <= hi]
            if started:  # a word over the cut (broken alignment): it ends the piece
                stop = w + started[-1] + 1
                pieces.append(Piece(f, f + hi, range(first_word, stop)))
                w = stop
            f += hi  # else nothing was said here that the text holds
            continue
        cut, before = choice
        pieces.append(Piece(f, f + cut, range(first_word, w + before)))
        f, w = f + cut, w + before
    return pieces


# --- 3. the aligner ---------------------------------------------------------------------------


class LongFormAligner(Aligner):
    """Aligns recordings of any length with a CTC backend (whisperX or MMS), piece by piece.

    What :meth:`CTCAligner.long_form <data_prep.align.ctc_aligner.CTCAligner.long_form>` gives.

    Args:
        aligner: A :class:`~data_prep.align.whisperx_backend.WhisperXAligner` or
            :class:`~data_prep.align.mms_backend.MMSAligner`; its model and settings are used.
        options: Window, chunk and skip settings.

    Raises:
        TypeError: ``aligner`` has no CTC model to compute emissions with.
    """

    name = "long-form"

    def __init__(self, aligner: Aligner, options: LongFormOptions | None = None) -> None:
        if not isinstance(aligner, CTCAligner):
            raise TypeError(f"long-form alignment needs a CTC aligner, not {aligner.name}")
        self.aligner = aligner
        self.name = f"{aligner.name}+long-form"
        self.options = options or LongFormOptions()

    def backend(self, language: str) -> LongFormBackend:
        """The backend's emissions, tokens and piece aligner for ``language``."""
        return self.aligner.long_form_backend(language)

    def long_form(self, options: LongFormOptions | None = None) -> Aligner:
        """Itself (with ``options`` if given): it already takes recordings of any length."""
        return self if options is None else LongFormAligner(self.aligner, options)

    def align(self, request: AlignRequest) -> list[AlignedWord]:
        """Align one recording of any length (see :meth:`Aligner.align`).

        A recording that fits in one window (with its right context) is aligned by the backend
        in one piece, as it would be without long-form alignment.
        """
        wave = as_waveform(request.audio)
        words, language = request.words, request.language
        o = self.options
        if len(wave) <= (o.window_seconds + o.context_seconds) * SAMPLE_RATE:
            return self.aligner.align(AlignRequest(wave, words, language))
        backend = self.backend(language)
        tokens = _word_tokens(backend, words)  # checked before an hour of forward passes
        window = round((o.window_seconds + 2 * o.context_seconds) * SAMPLE_RATE)
        emissions = stitched_log_probs(
            backend.frame_log_probs, wave, backend.hop, o, backend.windows_per_call(window)
        )
        return self._place(backend, tokens, emissions, words, len(wave) / SAMPLE_RATE)

    def align_emissions(
        self, emissions: torch.Tensor, words: list[str], language: str, duration: float
    ) -> list[AlignedWord]:
        """Align words against a recording's CTC log-probabilities (steps 2 and 3).

        Args:
            emissions: Log-probabilities of the whole recording, ``(n_frames, vocab)``, one
                frame per ``hop`` samples of the backend's model.
            words: Spoken words, in order.
            language: Language code (the backend's tokens and text conventions).
            duration: Length of the recording in seconds (bound of every time).

        Returns:
            One :class:`AlignedWord` per word; words no piece could place are interpolated
            and flagged.

        Raises:
            AlignmentError: no alignable character, or more tokens than frames.
        """
        backend = self.backend(language)
        return self._place(backend, _word_tokens(backend, words), emissions, words, duration)

    def _place(
        self,
        backend: LongFormBackend,
        tokens: list[list[int]],
        emissions: torch.Tensor,
        words: list[str],
        duration: float,
    ) -> list[AlignedWord]:
        """Steps 2 and 3 for words whose label ids are ``tokens``."""
        n_tokens = sum(len(t) for t in tokens)
        if n_tokens > len(emissions):
            raise AlignmentError(
                "too_short", f"{n_tokens} CTC frames needed, {len(emissions)} in {duration:.0f} s"
            )
        frame_s = backend.hop / SAMPLE_RATE
        pieces = plan_pieces(emissions.numpy(), tokens, backend.blank, frame_s, self.options)
        placed: list[AlignedWord | None] = [None] * len(words)
        aligned = backend.align_pieces(
            [(emissions[p.start : p.end], [words[i] for i in p.words]) for p in pieces]
        )
        for piece, got in zip(pieces, aligned, strict=True):
            if isinstance(got, AlignmentFailure):
                continue  # its words stay unplaced: interpolated and flagged below
            offset = piece.start * frame_s
            for i, g in zip(piece.words, got, strict=True):
                start, end = min(g.start + offset, duration), min(g.end + offset, duration)
                placed[i] = AlignedWord(words[i], start, end, g.score, g.flagged)
        return interpolate_missing(words, placed, duration)


def _word_tokens(backend: LongFormBackend, words: list[str]) -> list[list[int]]:
    """``backend``'s label ids per word.

    Raises:
        AlignmentError: no word has an alignable character (``nothing_to_align``).
    """
    tokens = backend.word_tokens(words)
    if not any(tokens):
        raise AlignmentError("nothing_to_align", f"no alignable character in {words[:5]!r}")
    return tokens
