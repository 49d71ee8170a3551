"""Aligners with a CTC acoustic model (whisperX, MMS), and what long-form alignment needs of them.

:mod:`data_prep.align.longform` is backend-agnostic: it needs the model's frame
log-probabilities for waveform windows, each word's label ids for its coarse Viterbi, and the
backend's own alignment of slices of emissions (so the final word times follow the backend's
conventions: whisperX's trellis and wildcard for unknown characters, MMS's romanisation and
``forced_align`` path), all pieces of a recording in one batch. A :class:`CTCAligner` provides
them for one language as a :class:`LongFormBackend` (each backend module defines its own), which
is what makes it able to align recordings of any length: :meth:`CTCAligner.long_form`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from data_prep.align.base import Aligner, AlignResult, BatchAligner

if TYPE_CHECKING:
    from data_prep.align.longform import LongFormOptions


class CTCAligner(BatchAligner):
    """A batched aligner over a CTC acoustic model; it has a long-form variant."""

    device: str
    """Torch device of the model."""
    batch_size: int
    """Most utterances (or long-form windows) per forward pass."""
    max_batch_samples: int
    """Padded audio per forward pass, in samples."""

    @abstractmethod
    def frame_log_probs(self, waves: Sequence[np.ndarray], language: str) -> list[torch.Tensor]:
        """CTC log-probabilities of waveform windows, computed as for a whole utterance.

        Args:
            waves: Mono windows at ``SAMPLE_RATE``, shape ``(n_samples_i,)``.
            language: Language of the recording (selects the model where there are several).

        Returns:
            Per window, float32 CPU log-probabilities ``(n_frames_i, vocab)``.
        """

    @abstractmethod
    def long_form_backend(self, language: str) -> LongFormBackend:
        """Emissions, label ids and piece alignment of this aligner for ``language``.

        Raises:
            AlignmentError: no model for ``language`` (``no_align_model``).
        """

    def long_form(self, options: LongFormOptions | None = None) -> Aligner:
        """A :class:`~data_prep.align.longform.LongFormAligner` over this aligner's model."""
        from data_prep.align.longform import LongFormAligner

        return LongFormAligner(self, options)


class LongFormBackend(ABC):
    """One CTC aligner, ready for one language.

    Args:
        aligner: Its model and settings are used.
        language: Language of the recordings.
    """

    blank: int
    """Label id of the CTC blank."""
    hop: int
    """Samples per CTC frame."""

    def __init__(self, aligner: CTCAligner, language: str) -> None:
        self.aligner, self.language = aligner, language

    def frame_log_probs(self, waves: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Per window ``(n_samples_i,)``: log-probabilities ``(n_frames_i, vocab)``."""
        return self.aligner.frame_log_probs(waves, self.language)

    def windows_per_call(self, window_samples: int) -> int:
        """Windows per forward pass: 1 on CPU (batching does not pay there, see
        ``ctc_batch.default_max_padding``), what the backend's batch budget allows on GPU."""
        a = self.aligner
        if torch.device(a.device).type == "cpu":
            return 1
        return max(1, min(a.batch_size, a.max_batch_samples // window_samples))

    @abstractmethod
    def word_tokens(self, words: Sequence[str]) -> list[list[int]]:
        """Per word, the label ids of its alignable characters (word delimiters left out)."""

    @abstractmethod
    def align_pieces(
        self, pieces: Sequence[tuple[torch.Tensor, Sequence[str]]]
    ) -> list[AlignResult]:
        """Align each piece's words in its slice of CPU log-probabilities ``(n_frames, vocab)``,
        all in one batch on the aligner's device.

        Returns:
            Per piece, its words with times from the slice's start, or why it failed.
        """
