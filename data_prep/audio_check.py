"""Quality verdict on a decoded waveform: empty, non-finite, too short, silent or clipped.

Separate from :mod:`data_prep.audio_io`, which turns any source into 16 kHz mono float32 and
raises on data it cannot decode: this module judges audio that did decode, and never raises on
bad data, so the pipeline can count and report each rejection by its ``reason`` code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from data_prep.audio_io import AudioReason
from vrt_finetune.constants import SAMPLE_RATE

_DB_FLOOR = -120.0
"""Level reported for digital silence instead of -inf, so verdicts stay JSON-serialisable."""


@dataclass
class AudioCheck:
    """Verdict of :func:`check_audio`."""

    ok: bool
    """False when the item should be left out of training."""
    reason: AudioReason | None
    """Why it is rejected (None when ``ok``)."""
    clipped_fraction: float
    """Fraction of samples at or above the clipping threshold in magnitude."""
    peak: float
    """Largest absolute finite sample."""
    rms_db: float
    """RMS level in dBFS of the finite samples (floored at -120 dB)."""
    notes: list[str] = field(default_factory=list)
    """Human-readable remarks, also for items that pass (e.g. a little clipping)."""


def check_audio(
    audio: np.ndarray,
    *,
    min_seconds: float = 0.0,
    silence_db: float = -60.0,
    clip_level: float = 0.999,
    max_clipped_fraction: float = 0.01,
) -> AudioCheck:
    """Judge a waveform from :func:`load_audio`; never raises on bad data.

    Rejections, first match wins: ``empty``, ``non_finite`` (any NaN/inf: these are never
    repaired, since zeroing them hides a broken export), ``too_short``, ``silent`` (RMS below
    ``silence_db``: digital silence or near-silence; speech-free room tone is the VAD's job),
    ``clipped`` (more than ``max_clipped_fraction`` of samples at full scale). A little clipping
    passes with a note.

    Args:
        audio: (n,) float samples at :data:`SAMPLE_RATE`.
        min_seconds: Shorter audio is ``too_short``.
        silence_db: RMS level in dBFS below which audio is ``silent``.
        clip_level: Magnitude counted as clipped (16-bit full scale decodes to 0.99997).
        max_clipped_fraction: Largest clipped fraction that still passes.

    Returns:
        The verdict with level statistics.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected a mono (n,) waveform, got shape {audio.shape}")
    notes: list[str] = []
    if audio.size == 0:
        return AudioCheck(False, "empty", 0.0, 0.0, _DB_FLOOR, ["no samples"])
    n_bad = n_clipped = 0
    peak = sum_sq = 0.0
    # Chunked so a 1 h waveform costs no full-length temporaries; float64 only for the sums.
    for i in range(0, audio.size, 1 << 20):
        chunk = audio[i : i + (1 << 20)]
        finite = np.isfinite(chunk)
        if not finite.all():
            n_bad += int(chunk.size - np.count_nonzero(finite))
            chunk = chunk[finite]
        mag = np.abs(chunk)
        if mag.size:
            peak = max(peak, float(mag.max()))
        sum_sq += float(np.dot(mag.astype(np.float64), mag))
        n_clipped += int(np.count_nonzero(mag >= clip_level))
    n_good = audio.size - n_bad
    mean_sq = sum_sq / n_good if n_good else 0.0
    rms_db = max(10.0 * math.log10(mean_sq), _DB_FLOOR) if mean_sq > 0 else _DB_FLOOR
    clipped = n_clipped / audio.size
    if clipped:
        notes.append(f"{clipped:.2%} of samples clipped")
    reason: AudioReason | None = None
    seconds = audio.size / SAMPLE_RATE
    if n_bad:
        reason = "non_finite"
        notes.append(f"{n_bad} NaN/inf samples: re-export the file")
    elif seconds < min_seconds:
        reason = "too_short"
        notes.append(f"{seconds:.2f} s < {min_seconds:.2f} s")
    elif rms_db < silence_db:
        reason = "silent"
        notes.append(f"RMS {rms_db:.1f} dBFS < {silence_db:.1f} dBFS")
    elif clipped > max_clipped_fraction:
        reason = "clipped"
    return AudioCheck(reason is None, reason, clipped, peak, rms_db, notes)
