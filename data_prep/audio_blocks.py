"""Windows, channels and blocks: what every decoder of :mod:`data_prep.audio_io` shares.

A decoder turns its source into ``(frames, channels)`` float blocks of at most
:data:`BLOCK_SECONDS`; this module maps a seconds window onto source frames
(:func:`frame_window`), picks and averages channels (:func:`mono`) and resamples the blocks to
one float32 array at :data:`SAMPLE_RATE` (:func:`to_16k`), checking each block for NaN/inf first.
So the peak memory is the output plus a few blocks, whatever the decoder.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from data_prep.errors import AudioError
from data_prep.resample import StreamResampler
from vrt_finetune.constants import SAMPLE_RATE

BLOCK_SECONDS = 30
"""Seconds of source audio decoded at a time (bounds memory, amortises per-call overhead)."""

END_SLACK_SECONDS = 0.1
"""A window may end this far past the end of the file (segment lists round end times up)."""


def _n_out(n_in: int, sr: int) -> int:
    """Output length of resampling ``n_in`` samples from ``sr`` to :data:`SAMPLE_RATE`."""
    return -(-n_in * SAMPLE_RATE // sr)


def to_16k(blocks: Iterator[np.ndarray], sr: int, n_in: int | None, label: str) -> np.ndarray:
    """Resample mono float32 blocks to :data:`SAMPLE_RATE` into one array.

    With ``n_in`` known the output is preallocated (no concatenation copy at the end).

    Raises:
        AudioError: ``non_finite``, a block holds NaN or infinite samples.
    """
    out = np.empty(_n_out(n_in, sr), dtype=np.float32) if n_in is not None else None
    parts: list[np.ndarray] = []
    pos = 0

    def emit(chunk: np.ndarray) -> None:
        nonlocal pos
        if out is not None:
            out[pos : pos + len(chunk)] = chunk
        else:
            parts.append(chunk)
        pos += len(chunk)

    if sr == SAMPLE_RATE:
        for block in blocks:
            require_finite(block, label, pos / SAMPLE_RATE)
            emit(block)
    else:
        rs = StreamResampler(sr, SAMPLE_RATE, BLOCK_SECONDS * sr)
        for block in blocks:
            require_finite(block, label, rs.n_in / sr)
            for chunk in rs.push(block):
                emit(chunk)
        for chunk in rs.flush():
            emit(chunk)
    if out is not None:
        return out[:pos]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def require_finite(block: np.ndarray, label: str, at_s: float) -> None:
    # Checked before resampling: the sinc filter would smear one NaN over ~40 neighbours and
    # any NaN reaching the log-mel front end turns the whole loss into NaN.
    if not np.isfinite(block).all():
        raise AudioError(
            "non_finite", label, f"NaN or infinite samples near {at_s:.2f} s: re-export the file"
        )


def mono(block: np.ndarray, channels: Sequence[int] | None = None) -> np.ndarray:
    """(frames, channels) float → (frames,) float32, averaging ``channels`` (``None``: all)."""
    if block.ndim == 1:
        return block.astype(np.float32, copy=False)
    if channels is not None:
        block = block[:, list(channels)]
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    return block.mean(axis=1, dtype=np.float32)


def check_channels(channels: Sequence[int] | None, n_channels: int, label: str) -> None:
    """Raise ``missing_channel`` unless every one of ``channels`` is among ``n_channels``."""
    if channels is not None and (not channels or not all(0 <= c < n_channels for c in channels)):
        raise AudioError(
            "missing_channel",
            label,
            f"channels {list(channels)} asked for, but the audio has {n_channels}: "
            "check the item's channel against this file",
        )


def frame_window(
    start: float | None, end: float | None, sr: int, n_frames: int | None, label: str
) -> tuple[int, int | None]:
    """Seconds window → source frames ``[first, last)``; ``last`` None = to the end."""
    first = 0 if start is None else round(start * sr)
    if n_frames is not None and first >= n_frames:
        raise AudioError(
            "too_short",
            label,
            f"window starts at {first / sr:.2f} s but the audio lasts {n_frames / sr:.2f} s: "
            "check the segment times against this file",
        )
    if end is None:
        return first, n_frames
    last = round(end * sr)
    if n_frames is not None and last > n_frames:
        if last - n_frames > END_SLACK_SECONDS * sr:
            raise AudioError(
                "too_short",
                label,
                f"window ends at {end:.2f} s but the audio lasts {n_frames / sr:.2f} s: "
                "check the segment times against this file",
            )
        last = n_frames
    return first, last


def truncated(label: str, got_s: float, want_s: float, detail: str = "") -> AudioError:
    """The ``truncated`` error of audio that stops at ``got_s`` of the ``want_s`` promised."""
    extra = f" ({detail})" if detail else ""
    return AudioError(
        "truncated",
        label,
        f"decoding fails after {got_s:.2f} s of the {want_s:.2f} s the header promises{extra}: "
        "the file was cut short (interrupted copy or download); copy it again",
    )
