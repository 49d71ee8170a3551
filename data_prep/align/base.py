"""The aligner interface: an utterance's spoken words + audio → one time span per word.

Modelled on lhotse's ``ForcedAligner`` (``workflows/forced_alignment/base.py``): every aligner
(whisperX, MMS, the timestamps the data already has) takes the same :class:`AlignRequest` and
implements :meth:`Aligner.align` for one utterance; backends with an acoustic model override
:meth:`Aligner.align_batch` to push many utterances through it at once. An utterance that cannot
be aligned yields an :class:`AlignmentFailure` in the batch result (the pipeline counts and
reports it) instead of stopping the corpus. What an aligner can do beyond that is asked of it:
:meth:`Aligner.refusal` (can it take a request at all, before any work) and
:meth:`Aligner.long_form` (its variant for recordings of any length, if it has one).

Requests carry already-normalised spoken words (``data_prep.spoken_form``), never raw
transcripts. Audio is mono float32 at :data:`~vrt_finetune.constants.SAMPLE_RATE`; times are
seconds from the start of the utterance's audio.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vrt_finetune.constants import SAMPLE_RATE

if TYPE_CHECKING:
    from data_prep.align.longform import LongFormOptions
    from data_prep.spoken_form import NormWord


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


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarrays with == is not a bool
class AlignRequest:
    """One utterance to align: what every aligner reads from it.

    The acoustic aligners read ``audio``, ``words`` and ``language``; the given-timestamps
    aligner (:mod:`~data_prep.align.given`) reads ``given`` and ``written`` instead and only the
    length of ``audio``.
    """

    audio: np.ndarray
    """Mono waveform at ``SAMPLE_RATE``, shape ``(n_samples,)``."""
    words: list[str]
    """Normalised spoken words, in order (``"forty", "two"`` for a written ``"42"``)."""
    language: str
    """ISO 639-1 code of the utterance (``"en"``)."""
    given: Sequence[AlignedWord] | None = None
    """Word times the data already has (synthetic speech, whisperX JSON, CTM, TextGrid), for the
    transcript's written words or close to them; ``None``: none."""
    written: Sequence[NormWord] | None = None
    """The transcript's written words with their spoken forms (``words`` is their ``spoken``
    run together); lets given times for written words be shared by the words they are said as.
    ``None``: unknown; given times are then matched to ``words`` by their letters."""

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return audio_seconds(self.audio)


AlignResult = list[AlignedWord] | AlignmentFailure
"""Per request of :meth:`Aligner.align_batch`: its aligned words, or why it failed."""


class Aligner(ABC):
    """Places spoken words in an utterance's audio."""

    name: str = "aligner"
    """Short backend name, for logs and reports."""

    @abstractmethod
    def align(self, request: AlignRequest) -> list[AlignedWord]:
        """Align one utterance.

        Args:
            request: The utterance (audio ``(n_samples,)``, spoken words, language …).

        Returns:
            One :class:`AlignedWord` per word of ``request.words``, in the same order.

        Raises:
            AlignmentError: the utterance cannot be aligned.
        """

    def align_batch(self, requests: Sequence[AlignRequest]) -> list[AlignResult]:
        """Align many utterances; a failed one yields an :class:`AlignmentFailure` in its place.

        The default aligns one utterance at a time; backends with an acoustic model override it
        to run several utterances through one forward pass.

        Args:
            requests: The utterances.

        Returns:
            Per request, in order: its aligned words or the reason it failed.
        """
        out: list[AlignResult] = []
        for request in requests:
            try:
                out.append(self.align(request))
            except AlignmentError as err:
                out.append(err.failure)
        return out

    def refusal(self, request: AlignRequest) -> AlignmentFailure | None:
        """Why this aligner cannot take ``request`` at all, found without aligning anything.

        Lets a caller reject such an utterance before it takes a place in a batch; :meth:`align`
        fails with the same reason. The default takes every request.

        Returns:
            The failure :meth:`align` would give, or ``None`` when the request can be aligned.
        """
        return None

    def long_form(self, options: LongFormOptions | None = None) -> Aligner | None:
        """This aligner's variant for recordings of any length, if it has one.

        Recordings longer than a model can take in one pass (``aligner.max_seconds``) are
        aligned window by window (:mod:`~data_prep.align.longform`); only aligners with a CTC
        acoustic model can (:class:`~data_prep.align.ctc_aligner.CTCAligner`).

        Args:
            options: Window, chunk and skip settings; ``None``: the defaults.

        Returns:
            An aligner that takes requests of any length, or ``None``: this one cannot.
        """
        return None


class BatchAligner(Aligner):
    """An aligner whose batched path is the primary one: ``align`` is a batch of one."""

    @abstractmethod
    def align_batch(self, requests: Sequence[AlignRequest]) -> list[AlignResult]:
        """Align utterances, several per forward pass (see :meth:`Aligner.align_batch`)."""

    def align(self, request: AlignRequest) -> list[AlignedWord]:
        """Align one utterance (see :meth:`Aligner.align`)."""
        result = self.align_batch([request])[0]
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
