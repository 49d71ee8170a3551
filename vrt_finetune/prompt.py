"""The streaming prompt and audio padding of Voxtral Realtime.

Layout (one row per stream position ``k``; the decoder input at ``k`` is
``token_embedding(ids[k]) + adapter(audio token k)``)::

    k:      0      1 … L          L+1 … L+d        L+d+1 …
    ids:    [BOS]  [P] … [P]      [P] … [P]        generated / target stream
    audio:  sil    sil … sil/s0   s0 …             s_{k-L} (speech token k - L)

i.e. ``[BOS] + [P] × (L + d)`` and audio left-padded with ``L`` silent tokens, so audio token
``k`` holds speech token ``k - L``. For offline use the audio is right-padded to whole tokens
plus ``(d + 1) + 10`` silent tokens, as ``mistral_common`` does (a test compares both).
"""

from __future__ import annotations

import numpy as np

from vrt_finetune import constants as C
from vrt_finetune.tokenizer import StreamingTokenizer


def streaming_prompt(tokenizer: StreamingTokenizer, delay_ms: int) -> list[int]:
    """``[BOS] + [P] × (L + d)`` for a delay of ``delay_ms`` (validated)."""
    d = C.check_delay_ms(delay_ms)
    return [tokenizer.bos_id] + [tokenizer.pad_id] * (tokenizer.n_left_pad_tokens + d)


def right_pad_tokens(delay_ms: int) -> int:
    """Silent tokens appended after the (token-rounded) audio for offline decoding."""
    return C.check_delay_ms(delay_ms) + 1 + C.OFFLINE_RIGHT_PAD_EXTRA_TOKENS


def pad_audio(
    audio: np.ndarray,
    n_left_pad_tokens: int,
    delay_ms: int,
    total_tokens: int | None = None,
) -> np.ndarray:
    """Left-pad ``L`` silent tokens and right-pad to whole tokens.

    Args:
        audio: ``(T,)`` float32 mono at 16 kHz.
        n_left_pad_tokens: ``L`` of the tokenizer.
        delay_ms: the transcription delay.
        total_tokens: if given, pad (never cut) to exactly this many tokens in all (training
            needs audio up to the last target); otherwise the offline rule:
            ``ceil(T / 1280) + (d + 1) + 10`` tokens after the left pad.

    Returns:
        ``(n_tokens * 1280,)`` float32.
    """
    left = n_left_pad_tokens * C.SAMPLES_PER_TOKEN
    if total_tokens is None:
        n_tokens = (
            n_left_pad_tokens + C.samples_to_tokens_ceil(len(audio)) + right_pad_tokens(delay_ms)
        )
    else:
        n_tokens = total_tokens
    right = n_tokens * C.SAMPLES_PER_TOKEN - left - len(audio)
    if right < 0:
        raise ValueError(f"audio of {len(audio)} samples does not fit in {n_tokens} tokens")
    return np.pad(audio.astype(np.float32, copy=False), (left, right))
