"""Tests of data_prep.audio_io: decoding, windows, resampling, quality verdicts, FLAC storage.

Every fixture is made in ``tmp_path`` with soundfile or ffmpeg; nothing is downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from data_prep import audio_blocks
from data_prep.audio_check import check_audio
from data_prep.audio_io import (
    AudioError,
    load_audio,
)
from vrt_finetune.constants import SAMPLE_RATE

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """(n,) float32 sine."""
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def ffmpeg(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)
    return dst


def reference_16k(x: np.ndarray, sr: int) -> np.ndarray:
    """Whole-signal torchaudio resample, the definition the block-wise path must match."""
    return torchaudio.functional.resample(torch.from_numpy(x), sr, SAMPLE_RATE).numpy()


def reason_of(source, **kw) -> str:
    with pytest.raises(AudioError) as info:
        load_audio(source, **kw)
    assert info.value.message and str(info.value.path) in str(info.value)
    return info.value.reason


# --------------------------------------------------------------------------- formats


def test_wav_16k_is_returned_unchanged(tmp_path: Path) -> None:
    x = tone(1.0, SAMPLE_RATE)
    sf.write(tmp_path / "a.wav", x, SAMPLE_RATE, subtype="FLOAT")
    y = load_audio(tmp_path / "a.wav")
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize(
    ("subtype", "tol"), [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("DOUBLE", 1e-7)]
)
def test_bit_depths(tmp_path: Path, subtype: str, tol: float) -> None:
    x = tone(0.5, SAMPLE_RATE)
    sf.write(tmp_path / "a.wav", x, SAMPLE_RATE, subtype=subtype)
    np.testing.assert_allclose(load_audio(tmp_path / "a.wav"), x, atol=tol)


def test_stereo_44k1_is_averaged_and_resampled(tmp_path: Path) -> None:
    sr = 44_100
    left, right = tone(2.0, sr, 440.0), tone(2.0, sr, 660.0, amp=0.25)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), sr, subtype="FLOAT")
    y = load_audio(tmp_path / "s.wav")
    ref = reference_16k((left + right) / 2, sr)
    assert y.shape == ref.shape == (2 * SAMPLE_RATE,)
    np.testing.assert_allclose(y, ref, atol=1e-5)


@pytest.mark.parametrize("sr", [8_000, 22_050, 44_100, 48_000])
def test_blockwise_resampling_equals_whole_signal(monkeypatch, sr: int) -> None:
    # One-second blocks force many block boundaries inside three seconds of noise.
    monkeypatch.setattr(audio_blocks, "BLOCK_SECONDS", 1)
    x = (np.random.default_rng(sr).standard_normal(3 * sr + 77) * 0.1).astype(np.float32)
    y = load_audio((x, sr))
    ref = reference_16k(x, sr)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-5)


@needs_ffmpeg
@pytest.mark.parametrize("ext", ["mp3", "ogg", "flac", "m4a"])
def test_compressed_formats(tmp_path: Path, ext: str) -> None:
    # m4a is not readable by libsndfile: it exercises the ffmpeg (torchcodec) fallback.
    x = tone(3.0, 44_100)
    sf.write(tmp_path / "a.wav", x, 44_100)
    y = load_audio(ffmpeg(tmp_path / "a.wav", tmp_path / f"a.{ext}"))
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 3 * SAMPLE_RATE) < 0.1 * SAMPLE_RATE  # codec padding only
    ref = reference_16k(x, 44_100)
    mid = slice(SAMPLE_RATE // 2, 2 * SAMPLE_RATE)  # clear of encoder edge effects
    assert np.corrcoef(y[mid], ref[mid])[0, 1] > 0.99


@needs_ffmpeg
def test_bytes_input_equals_path_input(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(1.0, 22_050), 22_050)
    ffmpeg(tmp_path / "a.wav", tmp_path / "a.m4a")
    for name in ("a.wav", "a.m4a"):
        path = tmp_path / name
        np.testing.assert_array_equal(load_audio(path.read_bytes()), load_audio(path))


def test_array_inputs() -> None:
    x = tone(1.0, SAMPLE_RATE)
    pcm = np.round(x * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio((pcm, SAMPLE_RATE)), x, atol=1e-4)
    stereo = np.stack([x, -x], axis=1)
    np.testing.assert_allclose(load_audio((stereo, SAMPLE_RATE)), 0.0, atol=1e-7)
    assert load_audio((x.astype(np.float64), 8_000)).shape == (2 * SAMPLE_RATE,)
    with pytest.raises(ValueError, match="transpose"):
        load_audio((stereo.T, SAMPLE_RATE))


@needs_ffmpeg
def test_channels_are_picked_in_every_decoder(tmp_path: Path) -> None:
    """A telephone call keeps one party per channel: ``channels`` reads only the asked ones."""
    left, right = tone(2.0, SAMPLE_RATE, 440.0, 0.5), tone(2.0, SAMPLE_RATE, 660.0, 0.125)
    stereo = np.stack([left, right], axis=1)
    sf.write(tmp_path / "s.wav", stereo, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "s.wav", channels=[1]), right)
    np.testing.assert_array_equal(load_audio((stereo, SAMPLE_RATE), channels=[0]), left)
    both = load_audio(tmp_path / "s.wav", 0.5, 1.5, channels=[0, 1])
    np.testing.assert_array_equal(both, load_audio(tmp_path / "s.wav", 0.5, 1.5))
    m4a = ffmpeg(tmp_path / "s.wav", tmp_path / "s.m4a")  # the ffmpeg (torchcodec) decoder
    rms = [float(np.sqrt(np.mean(load_audio(m4a, channels=[c]) ** 2))) for c in (0, 1)]
    assert rms[1] / rms[0] == pytest.approx(0.25, abs=0.02)
    assert reason_of(tmp_path / "s.wav", channels=[2]) == "missing_channel"
    assert reason_of(m4a, channels=[2]) == "missing_channel"
    assert reason_of((left, SAMPLE_RATE), channels=[1]) == "missing_channel"


# --------------------------------------------------------------------------- windows


def test_window_matches_slice(tmp_path: Path) -> None:
    x = tone(5.0, SAMPLE_RATE)
    sf.write(tmp_path / "a.flac", x, SAMPLE_RATE)
    full = load_audio(tmp_path / "a.flac")
    y = load_audio(tmp_path / "a.flac", start=1.25, end=3.5)
    np.testing.assert_array_equal(y, full[20_000:56_000])
    np.testing.assert_array_equal(load_audio(tmp_path / "a.flac", start=4.0), full[64_000:])
    np.testing.assert_array_equal(load_audio(tmp_path / "a.flac", end=0.5), full[:8_000])


def test_window_at_other_rate_is_resampled_on_its_own(tmp_path: Path) -> None:
    sr = 48_000
    x = tone(4.0, sr)
    sf.write(tmp_path / "a.wav", x, sr, subtype="FLOAT")
    y = load_audio(tmp_path / "a.wav", start=1.0, end=2.5)
    np.testing.assert_allclose(y, reference_16k(x[sr : int(2.5 * sr)], sr), atol=1e-6)


@needs_ffmpeg
def test_window_into_mp3(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(6.0, SAMPLE_RATE, amp=0.3), SAMPLE_RATE)
    mp3 = ffmpeg(tmp_path / "a.wav", tmp_path / "a.mp3")
    full = load_audio(mp3)
    y = load_audio(mp3, start=2.0, end=4.0)
    assert len(y) == 2 * SAMPLE_RATE
    # Sample-accurate seek; only the first decoded frame differs a little (decoder warm-up).
    err = np.abs(y - full[2 * SAMPLE_RATE : 4 * SAMPLE_RATE])
    assert err.max() < 1e-2 and np.mean(err > 1e-4) < 0.01


def test_window_outside_the_audio(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(2.0, SAMPLE_RATE), SAMPLE_RATE)
    assert reason_of(tmp_path / "a.wav", start=2.5, end=3.0) == "too_short"
    assert reason_of(tmp_path / "a.wav", start=1.0, end=2.5) == "too_short"
    # Ends rounded up by a few ms are clipped to the end of the file.
    assert len(load_audio(tmp_path / "a.wav", start=1.0, end=2.05)) == SAMPLE_RATE
    with pytest.raises(ValueError):
        load_audio(tmp_path / "a.wav", start=1.0, end=1.0)
    with pytest.raises(ValueError):
        load_audio(tmp_path / "a.wav", start=-1.0)


# --------------------------------------------------------------------------- broken inputs


def test_missing_file(tmp_path: Path) -> None:
    assert reason_of(tmp_path / "nope.wav") == "missing_file"


def test_unreadable_random_bytes(tmp_path: Path) -> None:
    junk = np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    (tmp_path / "junk.wav").write_bytes(junk)
    assert reason_of(tmp_path / "junk.wav") == "unreadable"
    assert reason_of(junk) == "unreadable"
    assert reason_of(tmp_path) == "unreadable"  # a directory


def test_empty_inputs(tmp_path: Path) -> None:
    (tmp_path / "zero.wav").write_bytes(b"")
    assert reason_of(tmp_path / "zero.wav") == "empty"
    sf.write(tmp_path / "no_frames.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    assert reason_of(tmp_path / "no_frames.wav") == "empty"
    assert reason_of(b"") == "empty"
    assert reason_of((np.zeros(0, np.float32), SAMPLE_RATE)) == "empty"


def test_truncated_wav(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(3.0, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2 + 1])  # cut mid-sample
    assert reason_of(tmp_path / "cut.wav") == "truncated"
    # A window inside the intact part loads: that audio is fine.
    y = load_audio(tmp_path / "cut.wav", start=0.5, end=1.0)
    np.testing.assert_array_equal(y, load_audio(tmp_path / "a.wav", start=0.5, end=1.0))
    assert reason_of(tmp_path / "cut.wav", start=1.0, end=2.0) == "truncated"


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_truncated_compressed(tmp_path: Path, fmt: str) -> None:
    x = (np.random.default_rng(1).standard_normal(10 * SAMPLE_RATE) * 0.1).astype(np.float32)
    sf.write(tmp_path / f"a.{fmt}", x, SAMPLE_RATE)
    data = (tmp_path / f"a.{fmt}").read_bytes()
    (tmp_path / f"cut.{fmt}").write_bytes(data[: len(data) // 2])
    assert reason_of(tmp_path / f"cut.{fmt}") == "truncated"


def test_nan_samples(tmp_path: Path) -> None:
    x = tone(1.0, SAMPLE_RATE)
    x[1000:1010] = np.nan
    x[5000] = np.inf
    sf.write(tmp_path / "nan.wav", x, SAMPLE_RATE, subtype="FLOAT")
    assert reason_of(tmp_path / "nan.wav") == "non_finite"
    assert reason_of((x, 44_100)) == "non_finite"
    # A window clear of the bad samples is fine.
    assert len(load_audio(tmp_path / "nan.wav", start=0.5)) == SAMPLE_RATE // 2
    verdict = check_audio(x)
    assert not verdict.ok and verdict.reason == "non_finite"
    assert np.isfinite(verdict.peak) and np.isfinite(verdict.rms_db)


# --------------------------------------------------------------------------- quality verdicts


def test_silence(tmp_path: Path) -> None:
    sf.write(tmp_path / "s.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    verdict = check_audio(load_audio(tmp_path / "s.wav"))
    assert (verdict.ok, verdict.reason, verdict.peak) == (False, "silent", 0.0)
    assert verdict.rms_db == -120.0
    hiss = (np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 1e-4).astype(np.float32)
    assert check_audio(hiss).reason == "silent"  # -80 dBFS
    assert check_audio(hiss, silence_db=-90.0).ok


def test_clipping(tmp_path: Path) -> None:
    x = np.clip(tone(1.0, SAMPLE_RATE, amp=1.5), -1.0, 1.0)  # heavily clipped sine
    sf.write(tmp_path / "c.wav", x, SAMPLE_RATE, subtype="PCM_16")
    verdict = check_audio(load_audio(tmp_path / "c.wav"))
    assert verdict.reason == "clipped" and verdict.clipped_fraction > 0.3
    assert verdict.peak == pytest.approx(1.0, abs=1e-4)

    y = tone(1.0, SAMPLE_RATE)
    y[:10] = 1.0  # a few clipped samples: kept, with a note
    verdict = check_audio(y)
    assert verdict.ok and verdict.reason is None
    assert verdict.clipped_fraction == pytest.approx(10 / SAMPLE_RATE)
    assert any("clipped" in n for n in verdict.notes)
    assert not check_audio(y, max_clipped_fraction=1e-4).ok


def test_good_audio_and_short_audio() -> None:
    x = tone(1.0, SAMPLE_RATE)
    verdict = check_audio(x)
    assert verdict.ok and verdict.notes == []
    assert verdict.rms_db == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.01)
    assert check_audio(x, min_seconds=2.0).reason == "too_short"
    assert check_audio(np.zeros(0, np.float32)).reason == "empty"
