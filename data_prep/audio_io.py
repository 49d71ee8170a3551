"""Load any audio as float32 mono at :data:`SAMPLE_RATE`, check its quality, store it as FLAC.

Decoding goes through libsndfile (``soundfile``: wav, flac, ogg, mp3, aiff, ...), which can seek,
so an offset window into a long file reads only that window. Anything libsndfile rejects (m4a,
aac, wma, webm, ...) falls back to ffmpeg through ``torchcodec`` (what ``torchaudio.load`` uses).

Memory: audio is read in blocks of :data:`_BLOCK_SECONDS`, mixed down to mono and resampled block
by block, so the peak is the float32 output (230 MB per hour at 16 kHz) plus a few blocks, never
a float64 or multi-channel copy of the whole file.

Bad data inside a corpus never crashes a run: decoding problems raise :class:`AudioError` with a
stable ``reason`` code the caller counts, and :func:`check_audio` returns a verdict instead of
raising. Programming errors (a negative window, a 3-D array) raise ``ValueError``.

Truncated files: a file whose header promises more audio than the file holds (a copy cut short)
raises ``AudioError("truncated")`` for a whole-file load, because its transcript likely covers
audio that is not there. A window that lies entirely inside the readable part still loads, since
that audio is intact.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio

from data_prep.errors import ItemError
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
]
"""Stable codes for :class:`AudioError` and :class:`AudioCheck`; reports count items per code."""

AudioSource = str | Path | bytes | tuple[np.ndarray, int]

_BLOCK_SECONDS = 30
"""Seconds of source audio decoded at a time (bounds memory, amortises per-call overhead)."""

_END_SLACK_SECONDS = 0.1
"""A window may end this far past the end of the file (segment lists round end times up)."""

_DB_FLOOR = -120.0
"""Level reported for digital silence instead of -inf, so verdicts stay JSON-serialisable."""

_PCM_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}
_PCM_BYTES |= {"DOUBLE": 8, "ULAW": 1, "ALAW": 1}
"""Bytes per sample of uncompressed WAV subtypes (the truncation check skips ADPCM and such)."""

_MAX_CHANNELS = 64
"""More columns than this in an in-memory array means it was passed as (channels, frames)."""


class AudioError(ItemError):
    """Audio that cannot be used; ``reason`` is one of :data:`AudioReason`."""

    reason: AudioReason


# --------------------------------------------------------------------------- resampling


class _StreamResampler:
    """Block-wise ``torchaudio`` sinc resampling equal to resampling the whole signal at once.

    ``torchaudio.functional.resample`` reduces the rates by their gcd to ``orig``/``new`` and
    computes output samples ``[i*new, (i+1)*new)`` from input ``[i*orig - w, i*orig + orig + w)``
    (``w`` = kernel half-width), zero-padding the signal ends. Resampling a chunk that starts on a
    multiple of ``orig`` with ``ctx >= w`` samples of real context on both sides therefore gives
    the same samples as the full signal; the kernel is built once (``transforms.Resample``).
    """

    def __init__(self, orig_freq: int, new_freq: int, chunk: int) -> None:
        gcd = math.gcd(orig_freq, new_freq)
        self.orig, self.new = orig_freq // gcd, new_freq // gcd
        # Same formula as torchaudio's _get_sinc_resample_kernel (lowpass_filter_width=6,
        # rolloff=0.99, the defaults used by transforms.Resample below).
        width = math.ceil(6 * self.orig / (0.99 * min(self.orig, self.new)))
        self.ctx = self.orig * -(-width // self.orig)
        self.chunk = max(self.orig, chunk // self.orig * self.orig)
        self.resampler = torchaudio.transforms.Resample(self.orig, self.new)
        # Leading zeros stand in for the left zero padding of a whole-signal resample.
        self.buf = np.zeros(self.ctx, dtype=np.float32)
        self.n_in = 0

    def _run(self, window: np.ndarray) -> np.ndarray:
        # window: (ctx + L + ctx,) with L a multiple of orig; returns the L * new / orig middle.
        with torch.no_grad():
            out = self.resampler(torch.from_numpy(window)).numpy()
        first = self.ctx // self.orig * self.new
        return out[first : first + (len(window) - 2 * self.ctx) // self.orig * self.new]

    def push(self, block: np.ndarray) -> Iterator[np.ndarray]:
        """Feed mono float32 samples; yield every output block that is now complete."""
        self.n_in += len(block)
        self.buf = np.concatenate([self.buf, block])
        while len(self.buf) >= self.chunk + 2 * self.ctx:
            yield self._run(self.buf[: self.chunk + 2 * self.ctx])
            self.buf = self.buf[self.chunk :]

    def flush(self) -> Iterator[np.ndarray]:
        """Yield the rest, trimmed so the total length is ``ceil(n_in * new / orig)``."""
        rest = len(self.buf) - self.ctx
        if rest > 0:
            padded = -(-rest // self.orig) * self.orig
            window = np.zeros(padded + 2 * self.ctx, dtype=np.float32)
            window[: len(self.buf)] = self.buf
            out = self._run(window)
            yield out[: -(-rest * self.new // self.orig)]
        self.buf = np.zeros(self.ctx, dtype=np.float32)


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
        rs = _StreamResampler(sr, SAMPLE_RATE, _BLOCK_SECONDS * sr)
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


def _mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) float → (frames,) float32, averaging channels."""
    if block.ndim == 1:
        return block.astype(np.float32, copy=False)
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    return block.mean(axis=1, dtype=np.float32)


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
    f: sf.SoundFile, head: bytes, start: float | None, end: float | None, label: str
) -> np.ndarray:
    sr, n_frames = f.samplerate, f.frames
    if n_frames == 0:
        raise AudioError("empty", label, "the file holds no audio samples: re-export it")
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
            yield _mono(data)

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
    source: str | bytes, start: float | None, end: float | None, label: str
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


def _load_array(audio: np.ndarray, sr: int, start: float | None, end: float | None) -> np.ndarray:
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
    first, last = _frame_window(start, end, sr, len(audio), label)
    window = audio[first:last]
    step = _BLOCK_SECONDS * sr
    blocks = (_mono(_array_to_float(window[i : i + step])) for i in range(0, len(window), step))
    return _to_16k(blocks, sr, len(window), label)


def load_audio(
    source: AudioSource, start: float | None = None, end: float | None = None
) -> np.ndarray:
    """Decode audio to float32 mono at :data:`SAMPLE_RATE`, optionally a ``[start, end)`` window.

    Channels are averaged; other rates are resampled with ``torchaudio``'s sinc resampler
    (deterministic). Windows are cut at the source rate and resampled on their own.

    Args:
        source: A file path; the encoded bytes of a file; or ``(array, sample_rate)`` with an
            array of shape (frames,) or (frames, channels), float in [-1, 1] or integer PCM.
        start: Window start in seconds (None: the beginning).
        end: Window end in seconds (None: the end of the audio). An end up to 0.1 s past the
            end of the audio is clipped to it; further is ``too_short``.

    Returns:
        (n,) float32 samples at :data:`SAMPLE_RATE`.

    Raises:
        AudioError: ``missing_file``, ``unreadable``, ``empty``, ``truncated``, ``too_short``
            (window outside the audio) or ``non_finite`` (NaN/inf samples).
        ValueError: a negative or inverted window, or an array of the wrong shape.
    """
    if (start is not None and start < 0) or (
        end is not None and end <= (start if start is not None else 0.0)
    ):
        raise ValueError(f"invalid window [{start}, {end}): need 0 <= start < end")
    if isinstance(source, tuple):
        return _load_array(source[0], source[1], start, end)
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
        return _load_ffmpeg(source if isinstance(source, bytes) else label, start, end, label)
    with f:
        return _load_soundfile(f, raw, start, end, label)


# --------------------------------------------------------------------------- quality checks


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


# --------------------------------------------------------------------------- FLAC storage


def write_flac_bytes(audio: np.ndarray) -> bytes:
    """Encode a waveform as 16-bit mono FLAC at :data:`SAMPLE_RATE`; same input, same bytes.

    Args:
        audio: (n,) float samples at :data:`SAMPLE_RATE`; values outside [-1, 1] are clipped.

    Returns:
        The FLAC file as bytes.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size == 0 or not np.isfinite(audio).all():
        raise ValueError("write_flac_bytes needs a non-empty finite (n,) waveform")
    # Quantise here rather than in libsndfile, whose float→int conversion wraps instead of
    # clipping unless told otherwise; 32767 keeps +1.0 representable.
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def read_flac_bytes(data: bytes) -> np.ndarray:
    """Decode bytes from :func:`write_flac_bytes` back to (n,) float32 at :data:`SAMPLE_RATE`.

    Raises:
        AudioError: ``unreadable`` if the bytes are not mono FLAC at :data:`SAMPLE_RATE`.
    """
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError("unreadable", "<flac bytes>", f"not a FLAC stream ({e})") from e
    if sr != SAMPLE_RATE or audio.ndim != 1:
        raise AudioError(
            "unreadable",
            "<flac bytes>",
            f"expected mono {SAMPLE_RATE} Hz FLAC, got {sr} Hz shape {audio.shape}: "
            "decode arbitrary files with load_audio()",
        )
    return audio
