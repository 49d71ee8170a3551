"""The aligner interface: spoken words + audio → one time span per word.

Modelled on lhotse's ``ForcedAligner`` (``workflows/forced_alignment/base.py``): a backend
implements :meth:`Aligner.align` for one utterance and, when it can, overrides
:meth:`Aligner.align_batch` to push many utterances through its acoustic model at once. An
utterance that cannot be aligned yields an :class:`AlignmentFailure` in the batch result (the
pipeline counts and reports it) instead of stopping the corpus.

Words receive already-normalised spoken words (``data_prep.spoken_form``), never raw transcripts.
Audio is mono float32 at :data:`~vrt_finetune.constants.SAMPLE_RATE`; times are seconds from
the start of the utterance's audio.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vrt_finetune.constants import SAMPLE_RATE


@dataclass(frozen=True)
class AlignedWord:
    """One word placed in time."""

    word: str
    """The spoken word as it was given to the aligner."""
    start: float
    """Start in seconds from the start of the utterance."""
    end: float
    """End in seconds (``end >= start``)."""
    score: float
    """Aligner confidence in ``[0, 1]`` (mean frame posterior); 0 for interpolated words."""
    flagged: bool = False
    """The time is a guess, not placed by the aligner from the word's own sounds: interpolated
    from its neighbours (:func:`interpolate_missing`), or, in the whisperX backend, matched only
    through whisperX's wildcard column because no character of the word is in the model's
    vocabulary."""

    def __post_init__(self) -> None:
        if not self.end >= self.start:  # also refuses NaN
            raise ValueError(
                f"word {self.word!r} ends ({self.end}) before it starts ({self.start})"
            )

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class AlignmentFailure:
    """Why one utterance could not be aligned (a batch result, never raised)."""

    reason: str
    """Short machine-readable code, e.g. ``too_short``, ``backtrack_failed``, ``word_mismatch``,
    ``nothing_to_align``; the pipeline counts rejections by it."""
    message: str
    """Human-readable detail."""


class AlignmentError(RuntimeError):
    """Raised by :meth:`Aligner.align` for an utterance that cannot be aligned."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.failure = AlignmentFailure(reason, message)


AlignItem = tuple[np.ndarray, list[str], str]
"""One utterance for :meth:`Aligner.align_batch`: (audio ``(n_samples,)``, words, language)."""


class Aligner(ABC):
    """Places spoken words in an utterance's audio."""

    name: str = "aligner"
    """Short backend name, written into data cards and shard indexes."""

    @abstractmethod
    def align(self, audio: np.ndarray, words: list[str], language: str) -> list[AlignedWord]:
        """Align one utterance.

        Args:
            audio: Mono waveform at ``SAMPLE_RATE``, shape ``(n_samples,)``.
            words: Normalised spoken words, in order.
            language: ISO 639-1 code of the utterance (``"en"``).

        Returns:
            One :class:`AlignedWord` per input word, in the same order.

        Raises:
            AlignmentError: the utterance cannot be aligned.
        """

    def align_batch(self, items: Sequence[AlignItem]) -> list[list[AlignedWord] | AlignmentFailure]:
        """Align many utterances; a failed one yields an :class:`AlignmentFailure` in its place.

        The default aligns one utterance at a time; backends with an acoustic model override it
        to run several utterances through one forward pass.

        Args:
            items: ``(audio (n_samples,), words, language)`` per utterance.

        Returns:
            Per item, in order: its aligned words or the reason it failed.
        """
        out: list[list[AlignedWord] | AlignmentFailure] = []
        for audio, words, language in items:
            try:
                out.append(self.align(audio, words, language))
            except AlignmentError as err:
                out.append(err.failure)
        return out


class BatchAligner(Aligner):
    """An aligner whose batched path is the primary one: ``align`` is a batch of one."""

    @abstractmethod
    def align_batch(self, items: Sequence[AlignItem]) -> list[list[AlignedWord] | AlignmentFailure]:
        """Align utterances, several per forward pass (see :meth:`Aligner.align_batch`)."""

    def align(self, audio: np.ndarray, words: list[str], language: str) -> list[AlignedWord]:
        """Align one utterance (see :meth:`Aligner.align`)."""
        result = self.align_batch([(audio, words, language)])[0]
        if isinstance(result, AlignmentFailure):
            raise AlignmentError(result.reason, result.message)
        return result


def as_waveform(audio: np.ndarray) -> np.ndarray:
    """Check an utterance's audio and return it as contiguous float32.

    Args:
        audio: Mono waveform, shape ``(n_samples,)``.

    Returns:
        The same samples, float32, shape ``(n_samples,)``.

    Raises:
        ValueError: not one-dimensional.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n_samples,), got {audio.shape}")
    return np.ascontiguousarray(audio, dtype=np.float32)


def audio_seconds(audio: np.ndarray) -> float:
    """Duration of a waveform at ``SAMPLE_RATE`` in seconds."""
    return len(audio) / SAMPLE_RATE


def interpolate_missing(
    words: Sequence[str], placed: Sequence[AlignedWord | None], duration: float
) -> list[AlignedWord]:
    """Give words the aligner could not place a time from their placed neighbours.

    Each run of missing words shares the gap between the end of the placed word before it (or
    0) and the start of the placed word after it (or ``duration``) in proportion to the words'
    lengths in characters, since longer words take longer to say. When the neighbours overlap
    or touch, the run gets zero-length spans at that point. Interpolated words are
    ``flagged=True`` with score 0; placed words are returned unchanged.

    Args:
        words: The spoken words, in order.
        placed: Per word, its aligned time or ``None``; same length as ``words``.
        duration: Length of the utterance in seconds (upper bound of every time).

    Returns:
        One :class:`AlignedWord` per word.

    Raises:
        ValueError: ``words`` and ``placed`` differ in length.
    """
    if len(words) != len(placed):
        raise ValueError(f"{len(words)} words but {len(placed)} placements")
    out: list[AlignedWord | None] = list(placed)
    i = 0
    while i < len(out):
        if out[i] is not None:
            i += 1
            continue
        j = i
        while j < len(out) and out[j] is None:
            j += 1
        prev, nxt = out[i - 1] if i > 0 else None, out[j] if j < len(out) else None
        left = prev.end if prev is not None else 0.0
        right = nxt.start if nxt is not None else max(duration, left)
        right = max(right, left)
        weights = [max(len(w), 1) for w in words[i:j]]
        total, acc = sum(weights), 0
        for k, weight in enumerate(weights):
            start = left + (right - left) * acc / total
            acc += weight
            end = left + (right - left) * acc / total
            out[i + k] = AlignedWord(words[i + k], start, end, 0.0, flagged=True)
        i = j
    return [w for w in out if w is not None]
