"""Validation WER helpers: score a decoder on a few utterances the way ``vrt-eval`` does.

``VrtLitModule`` logs ``val/wer_*`` with these; they hold no Lightning state, so they live apart
from the module's training loop and can be tested (and reused) with any decode function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from vrt_finetune.metrics import error_counts
from vrt_finetune.tokenizer import StreamingTokenizer
from vrt_finetune.wer_normalizer import TextNormalizer

DecodeFn = Callable[[list[np.ndarray], int], list[str]]
"""``(waveforms (T_i,) float32, delay_ms) → transcripts``."""


WerSample = tuple[str, np.ndarray, str, str | None]
"""``(key, audio (T,) float32, reference text, language or None)``."""


def word_errors(
    decode: DecodeFn,
    samples: Sequence[WerSample],
    delay_ms: int,
    normalizer: TextNormalizer | None = None,
) -> tuple[int, int]:
    """Word errors and reference words of ``decode`` over ``samples``, scored as ``vrt-eval``.

    References and hypotheses go through the same :class:`TextNormalizer` (by the sample's
    language) and :func:`~vrt_finetune.metrics.error_counts` as ``vrt-eval``, so the
    ``val/wer_*`` logged during training and the evaluation's WER measure the same thing.
    """
    if not samples:
        return 0, 0
    normalizer = normalizer or TextNormalizer()
    hyps = decode([audio for _, audio, _, _ in samples], delay_ms)
    refs_n = [normalizer(ref, lang) for _, _, ref, lang in samples]
    hyps_n = [normalizer(hyp, lang) for (_, _, _, lang), hyp in zip(samples, hyps, strict=True)]
    counts = error_counts(refs_n, hyps_n)
    return counts.errors, counts.ref_len


def greedy_decoder(model: torch.nn.Module, tokenizer: StreamingTokenizer) -> DecodeFn | None:
    """``vrt_finetune.decode.greedy_decode`` as a :data:`DecodeFn`; ``None`` if unavailable."""
    try:
        from vrt_finetune.decode import greedy_decode
    except ImportError:
        return None
    return lambda audios, delay_ms: [
        r.text for r in greedy_decode(model, tokenizer, audios, delay_ms=delay_ms)
    ]
