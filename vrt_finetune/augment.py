"""Waveform augmentation that keeps the streaming targets right (``data.augment``).

Applied per training sample in the DataLoader workers, after the FLAC is decoded and before
:func:`vrt_finetune.layout.layout_example` (see ``vrt_finetune.batches.collate``). Every
transform is off by default (probability 0) and runs in this order::

    speed ─▶ reverberation ─▶ noise ─▶ gain ─▶ clipping        (SpecAugment: on the device)

Only speed perturbation moves the words: their end times are scaled and the ``[P]``/``[W]``
stream is rebuilt with :func:`vrt_finetune.targets.build_targets`, under the target options the
shard was written with (``ShardSample.targets.options``), never assumed defaults. Reverberation
is aligned on the impulse response's direct-path peak, so it delays nothing; noise, gain and
clipping do not touch time. SpecAugment's time masks are kept off the audio of each ``[W]``
(``vrt_finetune.specaugment``).

Each sample draws from its own generator, seeded by (seed, rank, worker role, batch index,
position in the batch) like the per-batch delay draw, so a resumed run augments exactly as an
uninterrupted one would.

Simulated reverberation is exponentially decaying Gaussian noise after a unit direct path
(convolved by FFT): enough to teach robustness to a room's tail, and
no image-method simulator (pyroomacoustics, gpuRIR) to install or to run per sample in a worker.
Users with measured RIRs point ``reverb.rir_dir`` at them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from vrt_finetune import constants as C
from vrt_finetune.specaugment import SpecAugment
from vrt_finetune.targets import TargetOptions, build_targets
from vrt_finetune.tokenizer import StreamIds

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus")
"""Files of a noise or RIR directory that are read (found recursively)."""

Colour = Literal["white", "pink", "brown"]
_COLOUR_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}
"""Power spectral density ∝ 1/f^exponent."""


class AugmentError(ValueError):
    """An augmentation setting or input directory that cannot be used."""


def _check_p(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise AugmentError(f"data.augment.{name}.p must be in [0, 1], got {p}")


def _check_range(name: str, lo_hi: Sequence[float]) -> None:
    if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
        raise AugmentError(f"data.augment.{name} must be [low, high] with low <= high")


@dataclass
class Speed:
    """Speed perturbation (tempo and pitch together, as Kaldi/NeMo/lhotse do)."""

    p: float = 0.0
    factors: list[float] = field(default_factory=lambda: [0.9, 1.0, 1.1])
    """Factors drawn uniformly; 1.1 plays 10 % faster (audio and word times / 1.1)."""

    def __post_init__(self) -> None:
        _check_p("speed", self.p)
        if not self.factors or not all(0.5 <= f <= 2.0 for f in self.factors):
            raise AugmentError("data.augment.speed.factors must be non-empty, each in [0.5, 2]")


@dataclass
class Noise:
    """Additive noise at a drawn SNR: files from ``dir``, else built-in coloured noise."""

    p: float = 0.0
    snr_db: list[float] = field(default_factory=lambda: [10.0, 30.0])
    """SNR range in dB, drawn uniformly (speech power over noise power, whole sample)."""
    dir: str | None = None
    """Directory of noise recordings (any rate, mixed to mono, resampled to 16 kHz)."""
    colours: list[Colour] = field(default_factory=lambda: ["white", "pink", "brown"])
    """Colours drawn from when no ``dir`` is given."""

    def __post_init__(self) -> None:
        _check_p("noise", self.p)
        _check_range("noise.snr_db", self.snr_db)
        bad = [c for c in self.colours if c not in _COLOUR_EXPONENT]
        if bad or not self.colours:
            raise AugmentError(f"data.augment.noise.colours: use white, pink or brown, not {bad}")


@dataclass
class Reverb:
    """Convolution with a room impulse response from ``rir_dir``, else a simulated one."""

    p: float = 0.0
    rir_dir: str | None = None
    """Directory of measured RIRs; each is shifted so its direct-path peak lands on time 0."""
    rt60_s: list[float] = field(default_factory=lambda: [0.2, 0.8])
    """Reverberation time range of simulated RIRs (seconds to decay by 60 dB)."""

    def __post_init__(self) -> None:
        _check_p("reverb", self.p)
        _check_range("reverb.rt60_s", self.rt60_s)
        if self.rt60_s[0] <= 0:
            raise AugmentError("data.augment.reverb.rt60_s must be positive")


@dataclass
class Gain:
    """Volume change in dB (a recording level, not a loudness normalisation)."""

    p: float = 0.0
    db: list[float] = field(default_factory=lambda: [-6.0, 6.0])

    def __post_init__(self) -> None:
        _check_p("gain", self.p)
        _check_range("gain.db", self.db)


@dataclass
class Clipping:
    """Hard clipping at a drawn fraction of the sample's peak (an overdriven input stage)."""

    p: float = 0.0
    level: list[float] = field(default_factory=lambda: [0.3, 0.9])
    """Clip level as a fraction of the peak amplitude."""

    def __post_init__(self) -> None:
        _check_p("clipping", self.p)
        _check_range("clipping.level", self.level)
        if not 0 < self.level[0] <= self.level[1] <= 1:
            raise AugmentError("data.augment.clipping.level must lie in (0, 1]")


@dataclass
class Augment:
    """The ``data.augment`` section: every transform off unless its ``p`` is set."""

    speed: Speed = field(default_factory=Speed)
    reverb: Reverb = field(default_factory=Reverb)
    noise: Noise = field(default_factory=Noise)
    gain: Gain = field(default_factory=Gain)
    clipping: Clipping = field(default_factory=Clipping)
    spec: SpecAugment = field(default_factory=SpecAugment)
    """Time and frequency masks on the log-mel features (applied on the device)."""

    @property
    def enabled(self) -> bool:
        waveform = (self.speed, self.reverb, self.noise, self.gain, self.clipping)
        return any(t.p > 0 for t in waveform) or self.spec.p > 0


# --------------------------------------------------------------------------- transforms


def speed_perturb(audio: np.ndarray, factor: float) -> np.ndarray:
    """``(T,)`` → ``(≈T/factor,)``: the audio played ``factor`` times faster (pitch moves too).

    Resampled as if recorded at ``16000·factor`` Hz: every time ``t`` moves to
    ``t · 16000 / round(16000·factor)`` (see :func:`speed_time_scale`).
    """
    orig = round(C.SAMPLE_RATE * factor)
    if orig == C.SAMPLE_RATE:
        return audio
    out = AF.resample(torch.from_numpy(audio), orig, C.SAMPLE_RATE)
    return out.numpy().astype(np.float32)


def speed_time_scale(factor: float) -> float:
    """Multiplier of every time stamp under :func:`speed_perturb`."""
    return C.SAMPLE_RATE / round(C.SAMPLE_RATE * factor)


def coloured_noise(n: int, colour: Colour, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` float32 noise with power spectrum ∝ 1/f^k (white 0, pink 1, brown 2)."""
    if colour == "white":
        return rng.standard_normal(n).astype(np.float32)
    size = _fast_len(n)  # an FFT of a prime length is many times slower
    spectrum = np.fft.rfft(rng.standard_normal(size))
    f = np.fft.rfftfreq(size)
    f[0] = f[1]  # no infinite DC gain
    spectrum *= f ** (-_COLOUR_EXPONENT[colour] / 2)
    out = np.fft.irfft(spectrum, size)[:n]
    return (out / (np.std(out) + 1e-12)).astype(np.float32)


def _fast_len(n: int) -> int:
    """The power of two at or above ``n`` (at least 2)."""
    return max(2, 1 << (n - 1).bit_length())


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g·noise`` with ``g`` set so that power(speech)/power(g·noise) is ``snr_db``."""
    p_speech = float(np.mean(speech.astype(np.float64) ** 2))
    p_noise = float(np.mean(noise.astype(np.float64) ** 2))
    if p_speech == 0 or p_noise == 0:
        return speech
    g = math.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    return (speech + g * noise).astype(np.float32)


def simulated_rir(rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A unit direct path followed by exponentially decaying noise (−60 dB after ``rt60_s``).

    The tail starts 1 ms after the direct path and stays below it, so the direct path is the
    peak that :func:`reverberate` aligns on.
    """
    n = int(rt60_s * C.SAMPLE_RATE)
    t = np.arange(n) / C.SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-math.log(1000) * t / rt60_s)
    tail[: C.SAMPLE_RATE // 1000] = 0.0
    tail *= 0.5 / max(float(np.abs(tail).max()), 1e-12)
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with ``rir`` and keep ``len(audio)`` samples starting at its direct-path peak
    (its largest absolute value), so no word moves; the RMS level of the input is kept."""
    peak = int(np.argmax(np.abs(rir)))
    # what torchaudio's fftconvolve does, at a power-of-two length: ~10× faster per sample
    size = _fast_len(len(audio) + len(rir) - 1)
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(rir, size), size)
    wet = wet[peak : peak + len(audio)]
    rms_in, rms_out = float(np.sqrt(np.mean(audio**2))), float(np.sqrt(np.mean(wet**2)))
    return (wet * (rms_in / rms_out if rms_out > 0 else 1.0)).astype(np.float32)


def clip(audio: np.ndarray, level: float) -> np.ndarray:
    """Hard-clip at ``level`` × the peak amplitude."""
    c = level * float(np.abs(audio).max())
    return np.clip(audio, -c, c) if c > 0 else audio


# --------------------------------------------------------------------------- input files


def audio_files(directory: str, what: str) -> list[Path]:
    """Readable audio files under ``directory`` (recursively), checked by their headers.

    Raises:
        AugmentError: no such directory, no audio file in it, or a file that does not open.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise AugmentError(f"data.augment.{what}: {root} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise AugmentError(
            f"data.augment.{what}: no audio files ({', '.join(AUDIO_SUFFIXES)}) under {root}"
        )
    for path in files:
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AugmentError(f"data.augment.{what}: cannot read {path} ({err})") from err
        if info.frames == 0:
            raise AugmentError(f"data.augment.{what}: {path} holds no audio")
    return files


def load_mono_16k(path: Path) -> np.ndarray:
    """A noise or RIR file as ``(n,)`` float32 mono at 16 kHz."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = torch.from_numpy(audio.mean(axis=1))
    if sr != C.SAMPLE_RATE:
        mono = AF.resample(mono, sr, C.SAMPLE_RATE)
    return mono.numpy()


# --------------------------------------------------------------------------- the sample step


class Augmenter:
    """Applies ``Augment``'s waveform transforms to one sample and rebuilds its targets.

    Built at ``VrtDataModule.setup`` (so a bad noise or RIR directory fails there); noise and
    RIR files are read lazily in each worker and kept (``cache_files`` of them).

    Args:
        settings: the ``data.augment`` section.
        encode: text → token ids (``StreamingTokenizer.encode``), to rebuild targets.
        ids: the tokenizer's stream ids.
    """

    def __init__(
        self,
        settings: Augment,
        encode: Callable[[str], list[int]],
        ids: StreamIds,
        cache_files: int = 64,
    ) -> None:
        self.settings, self.encode, self.ids = settings, encode, ids
        s = settings
        self.noise_files = audio_files(s.noise.dir, "noise.dir") if s.noise.dir else []
        self.rir_files = audio_files(s.reverb.rir_dir, "reverb.rir_dir") if s.reverb.rir_dir else []
        self._cache: dict[Path, np.ndarray] = {}
        self._cache_files = cache_files

    def _file(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            if len(self._cache) >= self._cache_files:
                self._cache.pop(next(iter(self._cache)))
            self._cache[path] = load_mono_16k(path)
        return self._cache[path]

    def _noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if not self.noise_files:
            colour = self.settings.noise.colours[rng.integers(len(self.settings.noise.colours))]
            return coloured_noise(n, colour, rng)
        noise = self._file(self.noise_files[rng.integers(len(self.noise_files))])
        reps = -(-n // len(noise)) + 1  # tile short files, then cut at a random offset
        noise = np.tile(noise, reps)
        start = int(rng.integers(len(noise) - n + 1))
        return noise[start : start + n]

    def __call__(
        self,
        audio: np.ndarray,
        stream: list[int],
        words: Sequence[str],
        ends: Sequence[float],
        options: TargetOptions | None,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, list[int]]:
        """One sample: ``(T,)`` float32 audio and its stream → augmented audio and stream.

        Each transform draws from its own child of ``rng``, so turning one on does not change
        what the others draw. A sample whose stream writes words but whose shard lists no word
        times keeps its speed: its targets could not be rebuilt.
        """
        s = self.settings
        r_speed, r_reverb, r_noise, r_gain, r_clip = rng.spawn(5)
        factor = float(r_speed.choice(s.speed.factors))
        timed = len(words) == len(ends) and (len(ends) > 0 or self.ids.word not in stream)
        if r_speed.random() < s.speed.p and factor != 1.0 and timed:
            audio = speed_perturb(audio, factor)
            scale = speed_time_scale(factor)
            limit = len(audio) / C.SAMPLE_RATE
            scaled = [min(e * scale, limit) for e in ends]
            stream = list(
                build_targets(words, scaled, len(audio), self.encode, self.ids, options).stream
            )
        if r_reverb.random() < s.reverb.p:
            if self.rir_files:
                rir = self._file(self.rir_files[r_reverb.integers(len(self.rir_files))])
            else:
                rir = simulated_rir(float(r_reverb.uniform(*s.reverb.rt60_s)), r_reverb)
            audio = reverberate(audio, rir)
        if r_noise.random() < s.noise.p:
            snr = float(r_noise.uniform(*s.noise.snr_db))
            audio = mix_at_snr(audio, self._noise(len(audio), r_noise), snr)
        if r_gain.random() < s.gain.p:
            audio = (audio * 10 ** (float(r_gain.uniform(*s.gain.db)) / 20)).astype(np.float32)
        if r_clip.random() < s.clipping.p:
            audio = clip(audio, float(r_clip.uniform(*s.clipping.level)))
        return audio, stream
