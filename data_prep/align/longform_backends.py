"""What long-form alignment needs from each CTC backend, behind one small interface.

:mod:`data_prep.align.longform` is backend-agnostic: it needs the model's frame
log-probabilities for waveform windows, each word's label ids for its coarse Viterbi, and the
backend's own alignment of a slice of emissions (so the final word times follow the backend's
conventions: whisperX's trellis and wildcard for unknown characters, MMS's romanisation and
``forced_align``). The adapters below reach those through the backends' public functions;
the backends only gained ``frame_log_probs``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from data_prep.align.base import AlignedWord, Aligner, AlignmentError
from data_prep.align.ctc_batch import frame_hop_samples


class LongFormBackend(ABC):
    """One backend's aligner, ready for one language."""

    blank: int
    """Label id of the CTC blank."""
    hop: int
    """Samples per CTC frame."""

    def __init__(self, aligner: Any, language: str) -> None:
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
    def align_piece(self, log_probs: torch.Tensor, words: Sequence[str]) -> list[AlignedWord]:
        """Align ``words`` in a slice of emissions ``(n_frames, vocab)``; times from its start.

        Raises:
            AlignmentError: the backend cannot align the piece.
        """


class _WhisperX(LongFormBackend):
    def __init__(self, aligner: Any, language: str) -> None:
        super().__init__(aligner, language)
        try:
            self.model, self.metadata = aligner.model_for(language)
        except (ValueError, OSError) as err:
            raise AlignmentError("no_align_model", f"{language}: {err}") from err
        self.dictionary = self.metadata["dictionary"]
        # whisperX's own rule for its blank
        self.blank = next((i for c, i in self.dictionary.items() if c in ("[pad]", "<pad>")), 0)
        self.hop = frame_hop_samples(self.model, self.metadata["type"])

    def word_tokens(self, words: Sequence[str]) -> list[list[int]]:
        # whisperX lower-cases each character and aligns those in the dictionary; the others
        # get its wildcard column in `align_piece` but no token here, nor does "|".
        d = self.dictionary
        ids = [[d[c] for c in w.lower() if c in d and c not in " |"] for w in words]
        return [[i for i in w if i != self.blank] for w in ids]

    def align_piece(self, log_probs: torch.Tensor, words: Sequence[str]) -> list[AlignedWord]:
        from data_prep.align.whisperx_backend import emissions_to_words

        # n_samples = frames * hop: whisperX's time per frame (duration / frames) is one hop.
        return emissions_to_words(
            log_probs,
            words,
            self.language,
            self.metadata,
            len(log_probs) * self.hop,
            self.aligner.interpolate_method,
        )


class _MMS(LongFormBackend):
    def __init__(self, aligner: Any, language: str) -> None:
        super().__init__(aligner, language)
        self.blank, self.hop = aligner.blank, aligner.frame_hop

    def word_tokens(self, words: Sequence[str]) -> list[list[int]]:
        from data_prep.align.mms_backend import romanize

        ids = self.aligner.char_ids
        return [[ids[c] for c in romanize(w, ids)] for w in words]

    def align_piece(self, log_probs: torch.Tensor, words: Sequence[str]) -> list[AlignedWord]:
        from data_prep.align.mms_backend import emissions_to_words

        a = self.aligner
        return emissions_to_words(
            log_probs,
            words,
            a.char_ids,
            blank=a.blank,
            n_samples=len(log_probs) * self.hop,
            delimiter_id=a.delimiter_id,
            frame_hop=self.hop,
        )


_BACKENDS: dict[str, type[LongFormBackend]] = {"whisperx": _WhisperX, "mms": _MMS}
"""Backends long-form alignment can wrap, by ``Aligner.name``."""


def long_form_backend(aligner: Aligner, language: str) -> LongFormBackend:
    """The long-form adapter of a whisperX or MMS aligner for ``language``.

    Raises:
        TypeError: the aligner has no acoustic model to compute emissions with.
        AlignmentError: no model for ``language`` (``no_align_model``).
    """
    if not supports_long_form(aligner):
        names = ", ".join(_BACKENDS)
        raise TypeError(f"long-form alignment needs a CTC aligner ({names}), not {aligner.name}")
    return _BACKENDS[aligner.name](aligner, language)


def supports_long_form(aligner: Aligner | None) -> bool:
    """Whether :func:`long_form_backend` can wrap ``aligner``."""
    return aligner is not None and aligner.name in _BACKENDS
