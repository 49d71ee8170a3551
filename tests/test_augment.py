"""Augmentation keeps the streaming targets right: speed rebuilds them, reverb shifts nothing,
noise hits its SNR, SpecAugment leaves every [W]'s audio audible, bad directories fail early."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vrt_finetune import constants as C
from vrt_finetune.augment import (
    Augment,
    Augmenter,
    AugmentError,
    Noise,
    Reverb,
    Speed,
    coloured_noise,
    mix_at_snr,
    reverberate,
    simulated_rir,
    speed_time_scale,
)
from vrt_finetune.batches import collate
from vrt_finetune.data import VrtDataModule
from vrt_finetune.specaugment import SpecAugment, apply_masks, draw_masks, protected_frames
from vrt_finetune.targets import TargetOptions, build_targets, write_frame

WORDS = ["the", "patient", "reports", "mild", "chest", "pain"]


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal(C.seconds_to_samples(seconds))).astype(np.float32)


@pytest.mark.parametrize("factor", [0.9, 1.1])
@pytest.mark.parametrize("last_at_end", [False, True])
def test_speed_rebuilds_targets(tokenizer, factor: float, last_at_end: bool) -> None:
    seconds = 2.0
    audio = _speech(seconds)
    ends = [0.31, 0.55, 0.9, 1.27, 1.6, seconds if last_at_end else 1.83]
    options = TargetOptions(leading_space=False, overrun="merge")  # not the defaults
    stream = list(
        build_targets(WORDS, ends, len(audio), tokenizer.encode, tokenizer.ids, options).stream
    )
    aug = Augmenter(Augment(speed=Speed(p=1.0, factors=[factor])), tokenizer.encode, tokenizer.ids)
    out, new = aug(audio, stream, WORDS, ends, options, np.random.default_rng(0))

    scale = speed_time_scale(factor)
    assert scale == pytest.approx(1 / factor)
    assert abs(len(out) - len(audio) * scale) <= 1  # length moves by 1/factor
    scaled = [min(e * scale, len(out) / C.SAMPLE_RATE) for e in ends]
    want = build_targets(WORDS, scaled, len(out), tokenizer.encode, tokenizer.ids, options)
    assert new == list(want.stream)
    # emission frames moved with the words: each group's [W] at its scaled write frame
    w_frames = [i + 1 for i, t in enumerate(new) if t == tokenizer.ids.word]
    assert w_frames == [g.start for g in want.groups]
    before = [i + 1 for i, t in enumerate(stream) if t == tokenizer.ids.word]
    assert w_frames != before  # the words moved, and the [W]s with them
    assert want.groups[0].frame == write_frame(ends[0] * scale)
    # the stream still covers the audio, so the layout accepts it
    assert len(new) >= C.samples_to_tokens_ceil(len(out))
    if last_at_end:
        assert write_frame(scaled[-1]) == C.samples_to_tokens_ceil(len(out))


def test_speed_off_or_unity_keeps_stream(tokenizer) -> None:
    audio, stream = _speech(1.0), [tokenizer.ids.pad] * 13
    aug = Augmenter(Augment(speed=Speed(p=1.0, factors=[1.0])), tokenizer.encode, tokenizer.ids)
    out, new = aug(audio, stream, ["a"], [0.5], None, np.random.default_rng(0))
    assert new is stream and np.array_equal(out, audio)
    # a stream that writes words, from a shard without word times: left alone
    aug = Augmenter(Augment(speed=Speed(p=1.0, factors=[0.9])), tokenizer.encode, tokenizer.ids)
    worded = [tokenizer.ids.word, *tokenizer.encode(" a"), *stream]
    out, new = aug(audio, worded, [], [], None, np.random.default_rng(0))
    assert new is worded and np.array_equal(out, audio)


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_noise_hits_snr(colour: str) -> None:
    speech, rng = _speech(3.0), np.random.default_rng(1)
    noise = coloured_noise(len(speech), colour, rng)  # type: ignore[arg-type]
    out = mix_at_snr(speech, noise, 12.0)
    snr = 10 * np.log10(np.mean(speech**2) / np.mean((out - speech) ** 2))
    assert abs(snr - 12.0) < 0.5


def test_noise_from_directory_hits_snr(tokenizer, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    sf.write(tmp_path / "fan.wav", 0.1 * rng.standard_normal((4000, 2)), 8000)  # short, stereo
    aug = Augmenter(
        Augment(noise=Noise(p=1.0, snr_db=[7.0, 7.0], dir=str(tmp_path))),
        tokenizer.encode,
        tokenizer.ids,
    )
    speech = _speech(2.0)
    out, _ = aug(speech, [], [], [], None, np.random.default_rng(0))
    snr = 10 * np.log10(np.mean(speech**2) / np.mean((out - speech) ** 2))
    assert abs(snr - 7.0) < 0.5


def _click(n: int, at: int) -> np.ndarray:
    x = np.zeros(n, dtype=np.float32)
    x[at] = 1.0
    return x


def test_simulated_reverb_does_not_delay() -> None:
    at = 7000
    for seed in range(5):
        rir = simulated_rir(0.6, np.random.default_rng(seed))
        out = reverberate(_click(16000, at), rir)
        assert len(out) == 16000
        assert abs(int(np.argmax(np.abs(out))) - at) <= C.HOP_LENGTH


def test_measured_rir_aligned_on_direct_path(tokenizer, tmp_path: Path) -> None:
    rir = np.zeros(8000)  # 50 ms of pre-delay before the direct path at 16 kHz, then a tail
    rir[800] = 1.0
    rir[801:] = (
        0.3 * np.exp(-np.arange(7199) / 1500) * np.random.default_rng(0).standard_normal(7199)
    )
    sf.write(tmp_path / "room.flac", rir, 16000)
    aug = Augmenter(
        Augment(reverb=Reverb(p=1.0, rir_dir=str(tmp_path))), tokenizer.encode, tokenizer.ids
    )
    out, _ = aug(_click(16000, 5000), [], [], [], None, np.random.default_rng(0))
    assert abs(int(np.argmax(np.abs(out))) - 5000) <= C.HOP_LENGTH


@pytest.mark.parametrize("content", [None, b"not audio at all"])
def test_bad_noise_dir_fails_at_setup(tokenizer, tmp_path: Path, content) -> None:
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    if content is not None:
        (noise_dir / "broken.wav").write_bytes(content)
    shard = tmp_path / "x.tar"
    shard.write_bytes(b"")
    data = VrtDataModule(
        train_shards=str(shard),
        tokenizer=str(tokenizer.path),
        verify=False,
        augment=Augment(noise=Noise(p=0.5, dir=str(noise_dir))),
    )
    with pytest.raises(AugmentError, match="broken.wav" if content else "no audio files"):
        data.setup("fit")
    with pytest.raises(AugmentError, match="not a directory"):
        Augmenter(Augment(reverb=Reverb(p=1, rir_dir=str(tmp_path / "nope"))), str.split, None)


def test_settings_validated() -> None:
    with pytest.raises(AugmentError):
        Speed(p=1.5)
    with pytest.raises(AugmentError):
        Noise(snr_db=[30, 10])
    with pytest.raises(ValueError):
        SpecAugment(freq_width=200)
    assert not Augment().enabled and Augment(spec=SpecAugment(p=0.1)).enabled


def test_specaugment_spares_word_audio() -> None:
    word, d, s = 7, 3, 40
    labels = np.full(s, -100)
    labels[[12, 20, 21, 33]] = word
    labels[22] = 5
    spec = SpecAugment(p=1.0, freq_masks=3, freq_width=20, time_masks=6, time_width=80)
    keep = protected_frames(labels, word, d)
    assert keep.sum() == 8 * 8  # tokens 9, 12, 17, 18, 20, 21, 30, 33
    for seed in range(50):
        time, freq = draw_masks(spec, labels, word, d, s * 8, np.random.default_rng(seed))
        assert not (time & keep).any()
        assert freq.sum() <= 3 * 20 and time.shape == (s * 8,) and freq.shape == (C.N_MELS,)
    feats = torch.randn(1, C.N_MELS, s * 8)
    out = apply_masks(feats, torch.from_numpy(time)[None], torch.from_numpy(freq)[None])
    assert torch.equal(out[0][~freq][:, ~time], feats[0][~freq][:, ~time])
    assert (out[0][freq] == feats.mean()).all()


def test_collate_augments_deterministically(tokenizer) -> None:
    from vrt_finetune.testing import training_item

    items = []
    for i in range(3):
        audio = np.round(_speech(1.5, seed=i) * 32767) / 32767
        it = training_item(tokenizer, f"k{i}", audio, WORDS[:3], [0.4, 0.8, 1.2], 1.5)
        items.append(it._replace(words=tuple(WORDS[:3]), ends=(0.4, 0.8, 1.2)))
    aug = Augmenter(
        Augment(
            speed=Speed(p=1.0, factors=[0.9, 1.1]),
            noise=Noise(p=1.0),
            reverb=Reverb(p=0.5),
            spec=SpecAugment(p=1.0),
        ),
        tokenizer.encode,
        tokenizer.ids,
    )
    a = collate(items, 480, tokenizer.ids, augmenter=aug, rng_key=(1, 0, 0, 4))
    b = collate(items, 480, tokenizer.ids, augmenter=aug, rng_key=(1, 0, 0, 4))
    c = collate(items, 480, tokenizer.ids, augmenter=aug, rng_key=(1, 0, 0, 5))
    plain = collate(items, 480, tokenizer.ids)
    assert a is not None and b is not None and c is not None and plain is not None
    for name in ("audio", "labels", "spec_time_mask", "spec_freq_mask"):
        assert torch.equal(a[name], b[name]), name
    assert not torch.equal(a["audio"], c["audio"])
    assert a["audio"].shape != plain["audio"].shape or not torch.equal(a["audio"], plain["audio"])
    k = torch.nonzero(a["labels"] == tokenizer.ids.word)
    for row, pos in k.tolist():
        for token in (pos, pos - 6):
            assert not a["spec_time_mask"][row, token * 8 : token * 8 + 8].any()
