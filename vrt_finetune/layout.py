"""The training layout of one utterance at one delay: ids, labels and padded audio.

Given the delay-independent target stream of ``vrt_finetune.targets`` (``stream[i]`` is written at
speech frame ``i + 1``) and a delay of ``d`` tokens, the sequence is exactly the official
streaming layout followed by the shifted targets::

    position k:  0      1 … L+d     L+d+1 … L+d+N
    ids:         [BOS]  [P] … [P]   stream[0] … stream[N-1]   (stream padded with [P] to
                                    cover the speech plus the 10 silent offline-decoding tokens)
    labels:      ignored …  ignored stream[0] at k = L+d, …, stream[N-1] at k = L+d+N-1;
                                    the last position is ignored
    audio:       L silent tokens, the speech, then silence up to L+d+N+1 tokens in all

so frame ``w`` of the stream sits at position ``L + d + w`` and is predicted at ``L + d + w - 1``,
where the audio seen covers ``(d + w) × 80 ms`` of speech. Labels ignore the prompt and padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vrt_finetune import constants as C
from vrt_finetune.prompt import pad_audio

IGNORE_INDEX = -100
"""Label value that the loss skips (prompt and padding positions)."""


@dataclass(frozen=True)
class StreamExample:
    """One utterance laid out for a forward pass at one delay."""

    input_ids: np.ndarray
    """``(S,)`` int64: prompt then stream."""
    labels: np.ndarray
    """``(S,)`` int64: next token at target positions, ``IGNORE_INDEX`` elsewhere."""
    audio: np.ndarray
    """``(S * 1280,)`` float32: left pad, speech, right pad — one audio token per position."""


def layout_example(
    stream: Sequence[int],
    speech: np.ndarray,
    *,
    bos_id: int,
    pad_id: int,
    n_left_pad_tokens: int,
    delay_ms: int,
    trailing_pad_tokens: int = C.OFFLINE_RIGHT_PAD_EXTRA_TOKENS,
) -> StreamExample:
    """Lay out one utterance at ``delay_ms`` (validated: 80-2400 ms in 80 ms steps).

    Args:
        stream: delay-independent targets; covers at least every speech token.
        trailing_pad_tokens: ``[P]`` frames of silence kept after the speech (the stream is
            extended with ``[P]`` up to ``speech tokens + trailing_pad_tokens`` frames when
            shorter). Offline decoding runs ``(d + 1) + 10`` silent tokens past the audio
            (``mistral_common``'s right padding), 10 frames more than the stream itself; without
            them in training a model never learns to stay silent there and writes junk after
            the last word.
        speech: ``(T,)`` float32 16 kHz audio of the utterance.
    """
    d = C.check_delay_ms(delay_ms)
    n_speech_tokens = C.samples_to_tokens_ceil(len(speech))
    if n_speech_tokens > len(stream):
        raise ValueError(
            f"target stream of {len(stream)} frames is shorter than the audio "
            f"({n_speech_tokens} tokens): rebuild the targets"
        )
    missing = n_speech_tokens + trailing_pad_tokens - len(stream)
    if missing > 0:
        stream = [*stream, *([pad_id] * missing)]
    prompt_len = 1 + n_left_pad_tokens + d
    ids = np.empty(prompt_len + len(stream), dtype=np.int64)
    ids[0] = bos_id
    ids[1:prompt_len] = pad_id
    ids[prompt_len:] = stream
    labels = np.full_like(ids, IGNORE_INDEX)
    labels[prompt_len - 1 : -1] = ids[prompt_len:]
    audio = pad_audio(speech, n_left_pad_tokens, delay_ms, total_tokens=len(ids))
    return StreamExample(ids, labels, audio)
