"""Forced aligners: an utterance's normalised spoken words + audio → word time spans.

* :mod:`~data_prep.align.base`: the interface (:class:`Aligner`, :class:`AlignRequest`,
  :class:`AlignedWord`, :class:`AlignmentFailure`, :func:`interpolate_missing`);
* :mod:`~data_prep.align.factory`: :func:`make_aligner`, the aligner a recipe names;
* :mod:`~data_prep.align.given`: timestamps the data already has (whisperX JSON, CTM, TextGrid)
  as an aligner, and :class:`GivenFirst`, which prefers them to an acoustic aligner;
* :mod:`~data_prep.align.ctc_aligner`: what aligners with a CTC model share
  (:class:`CTCAligner`), which gives them a long-form variant;
* :mod:`~data_prep.align.whisperx_backend`: whisperX's wav2vec2 alignment, batched;
* :mod:`~data_prep.align.mms_backend`: multilingual MMS forced alignment (torchaudio);
* :mod:`~data_prep.align.longform`: recordings of any length with one transcript (windowed
  emissions, chunked Viterbi :mod:`~data_prep.align.ctc_viterbi`, the backend per piece).

The backends import torch/whisperX and load on first use of their names here.
"""

from __future__ import annotations

import importlib
from typing import Any

from data_prep.align.base import (
    AlignedWord,
    Aligner,
    AlignmentError,
    AlignmentFailure,
    AlignRequest,
    AlignResult,
    interpolate_missing,
)
from data_prep.align.factory import make_aligner
from data_prep.align.given import GivenAligner, GivenFirst

_LAZY = {
    "CTCAligner": "data_prep.align.ctc_aligner",
    "WhisperXAligner": "data_prep.align.whisperx_backend",
    "MMSAligner": "data_prep.align.mms_backend",
    "LongFormAligner": "data_prep.align.longform",
}

__all__ = [
    "AlignRequest",
    "AlignResult",
    "AlignedWord",
    "Aligner",
    "AlignmentError",
    "AlignmentFailure",
    "CTCAligner",
    "GivenAligner",
    "GivenFirst",
    "LongFormAligner",
    "MMSAligner",
    "WhisperXAligner",
    "interpolate_missing",
    "make_aligner",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
