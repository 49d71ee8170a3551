"""Forced aligners: normalised spoken words + audio → word time spans.

* :mod:`~data_prep.align.base`: the interface (:class:`Aligner`, :class:`AlignedWord`,
  :class:`AlignmentFailure`, :func:`interpolate_missing`);
* :mod:`~data_prep.align.whisperx_backend`: whisperX's wav2vec2 alignment, batched;
* :mod:`~data_prep.align.mms_backend`: multilingual MMS forced alignment (torchaudio);
* :mod:`~data_prep.align.given`: timestamps the data already has (whisperX JSON, CTM, TextGrid);
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
    interpolate_missing,
)

_LAZY = {
    "WhisperXAligner": "data_prep.align.whisperx_backend",
    "MMSAligner": "data_prep.align.mms_backend",
    "GivenAligner": "data_prep.align.given",
    "LongFormAligner": "data_prep.align.longform",
}

__all__ = [
    "AlignedWord",
    "Aligner",
    "AlignmentError",
    "AlignmentFailure",
    "GivenAligner",
    "LongFormAligner",
    "MMSAligner",
    "WhisperXAligner",
    "interpolate_missing",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
