"""Load any audio as float32 mono at :data:`SAMPLE_RATE`.

Shards store it as FLAC through ``vrt_finetune.shard_format`` (the one codec of the contract).

Decoding goes through libsndfile (``soundfile``: wav, flac, ogg, mp3, aiff, ...), which can seek,
so an offset window into a long file reads only that window. Anything libsndfile rejects (m4a,
aac, wma, webm, ...) falls back to ffmpeg through ``torchcodec`` (what ``torchaudio.load`` uses).

Memory: audio is read in blocks of :data:`_BLOCK_SECONDS`, mixed down to mono and resampled block
by block, so the peak is the float32 output (230 MB per hour at 16 kHz) plus a few blocks, never
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
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import soundfile as sf

from data_prep.errors import ItemError
from data_prep.resample import StreamResampler
from vrt_finetune.constants import SAMPLE_RATE

AudioReason = Literal[
    "missing_file",
    "unreadable",
    "empty",
    "truncated",
    "too_short",
    "non_finite",
    "silent",
    "clipped",
    "missing_channel",
]
"""Stable codes for :class:`AudioError` and :class:`~data_prep.audio_check.AudioCheck`; reports
count items per code."""

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


_BLOCK_SECONDS = 30
"""Seconds of source audio decoded at a time (bounds memory, amortises per-call overhead)."""

_END_SLACK_SECONDS = 0.1
"""A window may end this far past the end of the file (segment lists round end times up)."""

_PCM_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}
_PCM_BYTES |= {"DOUBLE": 8, "ULAW": 1, "ALAW": 1}
"""Bytes per sample of uncompressed WAV subtypes (the truncation check skips ADPCM and such)."""

_MAX_CHANNELS = 64
"""More columns than this in an in-memory array means it was passed as (channels, frames)."""


class AudioError(ItemError):
    """Audio that cannot be used; ``reason`` is one of :data:`AudioReason`."""

    reason: AudioReason


# --------------------------------------------------------------------------- resampling


def _n_out(n_in: int, sr: int) -> int:
    """Output length of resampling ``n_in`` samples from ``sr`` to :data:`SAMPLE_RATE`."""
    return -(-n_in * SAMPLE_RATE // sr)


def _to_16k(blocks: Iterator[np.ndarray], sr: int, n_in: int | None, label: str) -> np.ndarray:
    """Resample mono float32 blocks to :data:`SAMPLE_RATE` into one array.

    With ``n_in`` known the output is preallocated (no concatenation copy at the end).
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
            _require_finite(block, label, pos / SAMPLE_RATE)
            emit(block)
    else:
        rs = StreamResampler(sr, SAMPLE_RATE, _BLOCK_SECONDS * sr)
        for block in blocks:
            _require_finite(block, label, rs.n_in / sr)
            for chunk in rs.push(block):
                emit(chunk)
        for chunk in rs.flush():
            emit(chunk)
    if out is not None:
        return out[:pos]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _require_finite(block: np.ndarray, label: str, at_s: float) -> None:
    # Checked before resampling: the sinc filter would smear one NaN over ~40 neighbours and
    # any NaN reaching the log-mel front end turns the whole loss into NaN.
    if not np.isfinite(block).all():
        raise AudioError(
            "non_finite", label, f"NaN or infinite samples near {at_s:.2f} s: re-export the file"
        )


def _mono(block: np.ndarray, channels: Sequence[int] | None = None) -> np.ndarray:
    """(frames, channels) float → (frames,) float32, averaging ``channels`` (``None``: all)."""
    if block.ndim == 1:
        return block.astype(np.float32, copy=False)
    if channels is not None:
        block = block[:, list(channels)]
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    return block.mean(axis=1, dtype=np.float32)


def _check_channels(channels: Sequence[int] | None, n_channels: int, label: str) -> None:
    if channels is not None and (not channels or not all(0 <= c < n_channels for c in channels)):
        raise AudioError(
            "missing_channel",
            label,
            f"channels {list(channels)} asked for, but the audio has {n_channels}: "
            "check the item's channel against this file",
        )


# --------------------------------------------------------------------------- decoders


def _frame_window(
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
        if last - n_frames > _END_SLACK_SECONDS * sr:
            raise AudioError(
                "too_short",
                label,
                f"window ends at {end:.2f} s but the audio lasts {n_frames / sr:.2f} s: "
                "check the segment times against this file",
            )
        last = n_frames
    return first, last


def _wav_declared_frames(raw: bytes, block_align: int) -> int | None:
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


def _load_soundfile(
    f: sf.SoundFile,
    head: bytes,
    start: float | None,
    end: float | None,
    label: str,
    channels: Sequence[int] | None,
) -> np.ndarray:
    sr, n_frames = f.samplerate, f.frames
    if n_frames == 0:
        raise AudioError("empty", label, "the file holds no audio samples: re-export it")
    _check_channels(channels, f.channels, label)
    declared = None
    if f.format in ("WAV", "WAVEX") and f.subtype in _PCM_BYTES:
        declared = _wav_declared_frames(head, f.channels * _PCM_BYTES[f.subtype])
    # Windows are judged against the length the header promises: past the readable part is
    # "truncated", past the promised length "too_short".
    total = max(n_frames, declared or 0)
    first, last = _frame_window(start, end, sr, total, label)
    assert last is not None
    if last > n_frames:
        raise _truncated(label, n_frames / sr, total / sr)
    if first:
        try:
            f.seek(first)
        except sf.LibsndfileError as e:
            raise AudioError("unreadable", label, f"cannot seek to {first / sr:.2f} s ({e})") from e
    block = _BLOCK_SECONDS * sr

    def blocks() -> Iterator[np.ndarray]:
        todo = last - first
        while todo > 0:
            try:
                data = f.read(min(block, todo), dtype="float32", always_2d=True)
            except sf.LibsndfileError as e:  # e.g. "flac decoder lost sync" mid-file
                raise _truncated(label, (last - todo) / sr, n_frames / sr, str(e)) from e
            if len(data) == 0:
                # Compressed formats (mp3 with a Xing header) report the length from the header.
                raise _truncated(label, (last - todo) / sr, n_frames / sr)
            todo -= len(data)
            yield _mono(data, channels)

    return _to_16k(blocks(), sr, last - first, label)


def _truncated(label: str, got_s: float, want_s: float, detail: str = "") -> AudioError:
    extra = f" ({detail})" if detail else ""
    return AudioError(
        "truncated",
        label,
        f"decoding fails after {got_s:.2f} s of the {want_s:.2f} s the header promises{extra}: "
        "the file was cut short (interrupted copy or download); copy it again",
    )


def _load_ffmpeg(
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
    _check_channels(channels, meta.num_channels, label)
    picked = None if channels is None else list(channels)
    duration = meta.duration_seconds
    # Time 0 is the first decoded sample, as with libsndfile (mp3 streams start at ~25 ms pts).
    t0 = meta.begin_stream_seconds or 0.0
    n_frames = round(duration * sr) if duration else None
    first, last = _frame_window(start, end, sr, n_frames, label)
    t_end = None if last is None else t0 + last / sr

    def blocks() -> Iterator[np.ndarray]:
        t = t0 + first / sr
        got = False
        while t_end is None or t < t_end:
            stop = t + _BLOCK_SECONDS if t_end is None else min(t + _BLOCK_SECONDS, t_end)
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

    audio = _to_16k(blocks(), sr, None, label)
    if len(audio) == 0:
        raise AudioError("empty", label, "the file holds no audio samples: re-export it")
    if n_frames and (last is None or last >= n_frames):
        want = (last if last is not None else n_frames) - first
        got_n = len(audio) * sr / SAMPLE_RATE
        # Header durations of compressed streams are estimates: allow 2 % (at least 0.5 s).
        if want - got_n > max(0.5 * sr, 0.02 * want):
            raise _truncated(label, (first + got_n) / sr, (first + want) / sr)
    return audio


def _array_to_float(audio: np.ndarray) -> np.ndarray:
    """Integer PCM arrays → float in [-1, 1); float arrays pass through."""
    if audio.dtype == np.uint8:
        return (audio.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(audio.dtype, np.integer):
        return audio.astype(np.float32) / float(2 ** (8 * audio.dtype.itemsize - 1))
    return audio


def _load_array(
    audio: np.ndarray,
    sr: int,
    start: float | None,
    end: float | None,
    channels: Sequence[int] | None,
) -> np.ndarray:
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
    _check_channels(channels, 1 if audio.ndim == 1 else audio.shape[1], label)
    first, last = _frame_window(start, end, sr, len(audio), label)
    window = audio[first:last]
    step = _BLOCK_SECONDS * sr
    blocks = (
        _mono(_array_to_float(window[i : i + step]), channels) for i in range(0, len(window), step)
    )
    return _to_16k(blocks, sr, len(window), label)


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
        return _load_array(source[0], source[1], start, end, channels)
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
        return _load_ffmpeg(
            source if isinstance(source, bytes) else label, start, end, label, channels
        )
    with f:
        return _load_soundfile(f, raw, start, end, label, channels)
