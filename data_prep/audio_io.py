"""Load any audio as float32 mono at :data:`SAMPLE_RATE`.

Shards store it as FLAC through ``vrt_finetune.shard_format`` (the one codec of the contract).

Decoding goes through libsndfile (``soundfile``: wav, flac, ogg, mp3, aiff, ...), which can seek,
so an offset window into a long file reads only that window. Anything libsndfile rejects (m4a,
aac, wma, webm, ...) falls back to ffmpeg through ``torchcodec`` (what ``torchaudio.load`` uses).
The decoders live in :mod:`data_prep.audio_decoders`; this module picks one.

Memory: audio is read in blocks of :data:`~data_prep.audio_blocks.BLOCK_SECONDS`, mixed down to
mono and resampled block by block (:mod:`data_prep.audio_blocks`, which also maps windows onto
frames), so the peak is the float32 output (230 MB per hour at 16 kHz) plus a few blocks, never
a float64 or multi-channel copy of the whole file. The block-wise resampler lives in
:mod:`data_prep.resample`; the quality verdict on decoded audio in :mod:`data_prep.audio_check`.

Bad data inside a corpus never crashes a run: decoding problems raise :class:`AudioError` with a
stable ``reason`` code the caller counts, and :func:`~data_prep.audio_check.check_audio` returns
a verdict instead of raising. Programming errors (a negative window, a 3-D array) raise
``ValueError``.

Channels: by default they are averaged; ``channels`` picks some of them (a two-party telephone
call keeps one speaker per channel, and averaging would mix the other party in). Audio that lives
elsewhere (a member of a tar shard, a lhotse recording) is passed as a :class:`DeferredAudio`
reference and opened only when it is decoded, in the process that decodes it.

Truncated files: a file whose header promises more audio than the file holds (a copy cut short)
raises ``AudioError("truncated")`` for a whole-file load, because its transcript likely covers
audio that is not there. A window that lies entirely inside the readable part still loads, since
that audio is intact.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import soundfile as sf

from data_prep.audio_decoders import load_array, load_ffmpeg, load_soundfile
from data_prep.errors import AudioError, AudioReason

__all__ = ["AudioError", "AudioReason", "AudioSource", "DeferredAudio", "load_audio"]

AudioSource = str | Path | bytes | tuple[np.ndarray, int]


@runtime_checkable
class DeferredAudio(Protocol):
    """A reference to audio that is opened only when it is decoded (a tar member, a lhotse
    recording): a plan of a million items holds references, never the audio itself."""

    def open_audio(self) -> tuple[AudioSource, tuple[int, ...] | None]:
        """The audio to decode and which of its channels (``None``: all, averaged).

        Raises:
            AudioError: the audio cannot be reached (``missing_file``, ``unreadable``).
        """
        ...


def load_audio(
    source: AudioSource | DeferredAudio,
    start: float | None = None,
    end: float | None = None,
    channels: Sequence[int] | None = None,
) -> np.ndarray:
    """Decode audio to float32 mono at :data:`SAMPLE_RATE`, optionally a ``[start, end)`` window.

    Channels are averaged; other rates are resampled with ``torchaudio``'s sinc resampler
    (deterministic). Windows are cut at the source rate and resampled on their own.

    Args:
        source: A file path; the encoded bytes of a file; ``(array, sample_rate)`` with an
            array of shape (frames,) or (frames, channels), float in [-1, 1] or integer PCM; or
            a :class:`DeferredAudio` reference to one of these (it names its channels).
        start: Window start in seconds (None: the beginning).
        end: Window end in seconds (None: the end of the audio). An end up to 0.1 s past the
            end of the audio is clipped to it; further is ``too_short``.
        channels: Which channels (0-based) to average; ``None``: all of them.

    Returns:
        (n,) float32 samples at :data:`SAMPLE_RATE`.

    Raises:
        AudioError: ``missing_file``, ``unreadable``, ``empty``, ``truncated``, ``too_short``
            (window outside the audio), ``non_finite`` (NaN/inf samples) or ``missing_channel``.
        ValueError: a negative or inverted window, or an array of the wrong shape.
    """
    if (start is not None and start < 0) or (
        end is not None and end <= (start if start is not None else 0.0)
    ):
        raise ValueError(f"invalid window [{start}, {end}): need 0 <= start < end")
    if isinstance(source, DeferredAudio):
        source, own_channels = source.open_audio()
        channels = own_channels if channels is None else channels
    if isinstance(source, tuple):
        return load_array(source[0], source[1], start, end, channels)
    if isinstance(source, bytes):
        label, raw = "<bytes>", source
    else:
        label = str(source)
        path = Path(source)
        if not path.exists():
            raise AudioError("missing_file", label, "no such file: check the corpus path")
        if not path.is_file():
            raise AudioError("unreadable", label, "not a regular file")
        if path.stat().st_size == 0:
            raise AudioError("empty", label, "the file is 0 bytes: copy or export it again")
        with path.open("rb") as fh:
            raw = fh.read(1 << 16)  # the header, for the truncation check
    if len(raw) == 0:
        raise AudioError("empty", label, "no bytes given")
    try:
        f = sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except (sf.LibsndfileError, RuntimeError):
        return load_ffmpeg(
            source if isinstance(source, bytes) else label, start, end, label, channels
        )
    with f:
        return load_soundfile(f, raw, start, end, label, channels)
