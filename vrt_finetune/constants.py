"""Frame arithmetic of Voxtral Realtime, in one place.

Every time, sample and frame count in the code base is derived from the names below; no other
module repeats 16000, 160, 1280, 80 ms or 12.5 Hz (see ``docs/model_contract.md``).

Chain of rates (one row per stage)::

    waveform        16 kHz                 1 sample  = 62.5 us
    log-mel         100 Hz  (hop 160)      1 frame   = 10 ms
    encoder         50 Hz   (conv stride 2) 1 frame  = 20 ms
    adapter/text    12.5 Hz (4x stacking)  1 token   = 80 ms
"""

from __future__ import annotations


def exact_div(x: int, y: int) -> int:
    """Integer division that refuses to round (``x`` must be a multiple of ``y``)."""
    if x % y != 0:
        raise ValueError(f"{x} is not a multiple of {y}")
    return x // y


SAMPLE_RATE = 16_000
"""Audio samples per second the model expects (mono)."""

N_FFT = 400
"""STFT window length in samples (25 ms)."""

HOP_LENGTH = 160
"""STFT hop in samples: one log-mel frame every 10 ms."""

N_MELS = 128
"""Mel bins of the front end."""

MEL_FRAMES_PER_SECOND = exact_div(SAMPLE_RATE, HOP_LENGTH)  # 100
"""Log-mel frames per second."""

CONV_STRIDE = 2
"""Temporal stride of the encoder's second causal convolution."""

ENCODER_FRAMES_PER_SECOND = exact_div(MEL_FRAMES_PER_SECOND, CONV_STRIDE)  # 50
"""Encoder output frames per second (20 ms each)."""

ADAPTER_DOWNSAMPLE = 4
"""Encoder frames the adapter stacks into one text-rate frame."""

MEL_FRAMES_PER_TOKEN = CONV_STRIDE * ADAPTER_DOWNSAMPLE  # 8
"""Log-mel frames per 80 ms token."""

SAMPLES_PER_TOKEN = MEL_FRAMES_PER_TOKEN * HOP_LENGTH  # 1280
"""Waveform samples per 80 ms token."""

SAMPLES_PER_ENCODER_FRAME = exact_div(SAMPLES_PER_TOKEN, ADAPTER_DOWNSAMPLE)  # 320
"""Waveform samples per 20 ms encoder frame (the alignment resolution of wav2vec2 models too)."""

TOKEN_MS = exact_div(SAMPLES_PER_TOKEN * 1000, SAMPLE_RATE)  # 80
"""Milliseconds of audio per text-stream token."""

TOKEN_SECONDS = SAMPLES_PER_TOKEN / SAMPLE_RATE  # 0.08; integer maths uses samples or TOKEN_MS
"""Seconds per token, for display and float time stamps only."""

TOKENS_PER_SECOND = SAMPLE_RATE / SAMPLES_PER_TOKEN  # 12.5
"""Text-stream frames per second."""

MIN_DELAY_MS = TOKEN_MS  # 80
"""Shortest transcription delay the model was trained with (one token)."""

MAX_DELAY_TOKENS = 30
"""Longest transcription delay in tokens (2400 ms)."""

MAX_DELAY_MS = MAX_DELAY_TOKENS * TOKEN_MS  # 2400
"""Longest transcription delay in milliseconds."""

DEFAULT_DELAY_MS = 6 * TOKEN_MS  # 480
"""Official default delay; the tokenizer's audio config overrides it when present."""

DELAY_CHOICES_MS: tuple[int, ...] = tuple(range(MIN_DELAY_MS, MAX_DELAY_MS + 1, TOKEN_MS))
"""Every admissible delay, 80 ms steps from 80 to 2400 ms."""

OFFLINE_RIGHT_PAD_EXTRA_TOKENS = 10
"""Silent tokens added after ``delay + 1`` tokens of right padding for offline decoding."""


def check_delay_ms(delay_ms: int) -> int:
    """Validate a delay and return it as a number of 80 ms tokens.

    Raises:
        ValueError: the delay is outside 80-2400 ms or not a multiple of 80 ms.
    """
    if delay_ms not in DELAY_CHOICES_MS:
        raise ValueError(
            f"transcription delay {delay_ms} ms is not supported: use a multiple of {TOKEN_MS} ms "
            f"between {MIN_DELAY_MS} and {MAX_DELAY_MS} ms"
        )
    return delay_ms // TOKEN_MS


def seconds_to_samples(seconds: float) -> int:
    """Seconds → waveform samples at :data:`SAMPLE_RATE` (rounded to nearest)."""
    return round(seconds * SAMPLE_RATE)


def samples_to_tokens_ceil(n_samples: int) -> int:
    """Whole 80 ms tokens needed to hold ``n_samples`` samples."""
    return -(-n_samples // SAMPLES_PER_TOKEN)
