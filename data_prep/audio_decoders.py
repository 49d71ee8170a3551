"""The decoders behind :func:`data_prep.audio_io.load_audio`: libsndfile, ffmpeg, arrays.

* libsndfile (``soundfile``: wav, flac, ogg, mp3, aiff …) can seek, so a window into a long
  file reads only that window; a WAV whose header promises more than the file holds is
  ``truncated`` (libsndfile would silently shorten it, so the RIFF header is read here).
* ffmpeg through ``torchcodec`` (what ``torchaudio.load`` uses) for what libsndfile rejects
  (m4a, aac, wma, webm …).
* in-memory arrays, float or integer PCM.

Each yields blocks that :mod:`data_prep.audio_blocks` mixes down and resamples.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

import numpy as np
import soundfile as sf

from data_prep import audio_blocks
from data_prep.audio_blocks import check_channels, frame_window, mono, to_16k, truncated
from data_prep.errors import AudioError
from vrt_finetune.constants import SAMPLE_RATE

_PCM_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}
_PCM_BYTES |= {"DOUBLE": 8, "ULAW": 1, "ALAW": 1}
"""Bytes per sample of uncompressed WAV subtypes (the truncation check skips ADPCM and such)."""

_MAX_CHANNELS = 64
"""More columns than this in an in-memory array means it was passed as (channels, frames)."""


def wav_declared_frames(raw: bytes, block_align: int) -> int | None:
    """Frames the RIFF ``data`` chunk header promises, or None (not RIFF, or size unknown).

    libsndfile silently shortens a truncated WAV to what is there, so the header is read here.
    """
    if len(raw) < 12 or raw[:4] not in (b"RIFF", b"RIFX") or raw[8:12] != b"WAVE":
        return None
    fmt = "<I" if raw[:4] == b"RIFF" else ">I"
    pos = 12
    while pos + 8 <= len(raw):
        size = struct.unpack(fmt, raw[pos + 4 : pos + 8])[0]
        if raw[pos : pos + 4] == b"data":
            # 0 and 0xFFFFFFFF are what streaming writers (ffmpeg to a pipe) leave: unknown.
            return None if size in (0, 0xFFFFFFFF) else size // block_align
        pos += 8 + size + (size & 1)
    return None


def load_soundfile(
    f: sf.SoundFile,
    head: bytes,
    start: float | None,
    end: float | None,
    label: str,
    channels: Sequence[int] | None,
) -> np.ndarray:
    """The ``[start, end)`` window of an open libsndfile file (``head``: its first bytes, for
    the WAV truncation check), seeking to the window's first frame."""
    sr, n_frames = f.samplerate, f.frames
    if n_frames == 0:
        raise AudioError("empty", label, "the file holds no audio samples: re-export it")
    check_channels(channels, f.channels, label)
    declared = None
    if f.format in ("WAV", "WAVEX") and f.subtype in _PCM_BYTES:
        declared = wav_declared_frames(head, f.channels * _PCM_BYTES[f.subtype])
    # Windows are judged against the length the header promises: past the readable part is
    # "truncated", past the promised length "too_short".
    total = max(n_frames, declared or 0)
    first, last = frame_window(start, end, sr, total, label)
    assert last is not None
    if last > n_frames:
        raise truncated(label, n_frames / sr, total / sr)
    if first:
        try:
            f.seek(first)
        except sf.LibsndfileError as e:
            raise AudioError("unreadable", label, f"cannot seek to {first / sr:.2f} s ({e})") from e
    block = audio_blocks.BLOCK_SECONDS * sr

    def blocks() -> Iterator[np.ndarray]:
        todo = last - first
        while todo > 0:
            try:
                data = f.read(min(block, todo), dtype="float32", always_2d=True)
            except sf.LibsndfileError as e:  # e.g. "flac decoder lost sync" mid-file
                raise truncated(label, (last - todo) / sr, n_frames / sr, str(e)) from e
            if len(data) == 0:
                # Compressed formats (mp3 with a Xing header) report the length from the header.
                raise truncated(label, (last - todo) / sr, n_frames / sr)
            todo -= len(data)
            yield mono(data, channels)

    return to_16k(blocks(), sr, last - first, label)


def load_ffmpeg(
    source: str | bytes,
    start: float | None,
    end: float | None,
    label: str,
    channels: Sequence[int] | None,
) -> np.ndarray:
    """Fallback for formats libsndfile does not read, through ffmpeg (torchcodec)."""
    try:
        from torchcodec.decoders import AudioDecoder
    except ImportError as e:  # torchaudio >= 2.9 decodes through torchcodec too
        raise AudioError(
            "unreadable",
            label,
            "libsndfile cannot read this format and torchcodec is missing: "
            "`pip install torchcodec` or convert the file to FLAC with ffmpeg",
        ) from e
    try:
        dec = AudioDecoder(source)
        meta = dec.metadata
    except (RuntimeError, ValueError, OSError) as e:
        raise AudioError(
            "unreadable",
            label,
            f"neither libsndfile nor ffmpeg can decode it ({e}); check that "
            "it is an audio file (`ffprobe FILE`) and re-export it as FLAC or WAV",
        ) from e
    sr = meta.sample_rate
    check_channels(channels, meta.num_channels, label)
    picked = None if channels is None else list(channels)
    duration = meta.duration_seconds
    # Time 0 is the first decoded sample, as with libsndfile (mp3 streams start at ~25 ms pts).
    t0 = meta.begin_stream_seconds or 0.0
    n_frames = round(duration * sr) if duration else None
    first, last = frame_window(start, end, sr, n_frames, label)
    t_end = None if last is None else t0 + last / sr

    def blocks() -> Iterator[np.ndarray]:
        t = t0 + first / sr
        got = False
        while t_end is None or t < t_end:
            stop = t + audio_blocks.BLOCK_SECONDS
            stop = stop if t_end is None else min(stop, t_end)
            try:
                data = dec.get_samples_played_in_range(t, stop).data  # (channels, n)
            except RuntimeError as e:  # raised when the range is past the last frame
                if not got:
                    raise AudioError("empty", label, f"no audio could be decoded ({e})") from e
                return
            if data.shape[1] == 0:
                return
            got = True
            data = data if picked is None else data[picked]
            yield data.mean(dim=0).numpy().astype(np.float32, copy=False)
            t = stop

    audio = to_16k(blocks(), sr, None, label)
    if len(audio) == 0:
        raise AudioError("empty", label, "the file holds no audio samples: re-export it")
    if n_frames and (last is None or last >= n_frames):
        want = (last if last is not None else n_frames) - first
        got_n = len(audio) * sr / SAMPLE_RATE
        # Header durations of compressed streams are estimates: allow 2 % (at least 0.5 s).
        if want - got_n > max(0.5 * sr, 0.02 * want):
            raise truncated(label, (first + got_n) / sr, (first + want) / sr)
    return audio


def _array_to_float(audio: np.ndarray) -> np.ndarray:
    """Integer PCM arrays → float in [-1, 1); float arrays pass through."""
    if audio.dtype == np.uint8:
        return (audio.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(audio.dtype, np.integer):
        return audio.astype(np.float32) / float(2 ** (8 * audio.dtype.itemsize - 1))
    return audio


def load_array(
    audio: np.ndarray,
    sr: int,
    start: float | None,
    end: float | None,
    channels: Sequence[int] | None,
) -> np.ndarray:
    """The ``[start, end)`` window of an in-memory ``(frames[, channels])`` array at ``sr``.

    Raises:
        ValueError: an array of another shape, or ``(channels, frames)`` (a programming error).
    """
    label = "<array>"
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or sr <= 0:
        raise ValueError(
            f"expected a (frames,) or (frames, channels) array and a rate > 0, got "
            f"shape {audio.shape} at {sr} Hz"
        )
    if audio.ndim == 2 and audio.shape[1] > _MAX_CHANNELS:
        raise ValueError(
            f"array of shape {audio.shape} has {audio.shape[1]} channels: pass "
            "(frames, channels), e.g. transpose torchaudio's (channels, frames)"
        )
    if len(audio) == 0:
        raise AudioError("empty", label, "the array holds no samples")
    check_channels(channels, 1 if audio.ndim == 1 else audio.shape[1], label)
    first, last = frame_window(start, end, sr, len(audio), label)
    window = audio[first:last]
    step = audio_blocks.BLOCK_SECONDS * sr
    blocks = (
        mono(_array_to_float(window[i : i + step]), channels) for i in range(0, len(window), step)
    )
    return to_16k(blocks, sr, len(window), label)
