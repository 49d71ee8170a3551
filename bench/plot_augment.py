"""One spoken sentence before and after each ``data.augment`` transform, as a PNG.

    .venv/bin/python bench/plot_augment.py docs/augment.png       # needs espeak-ng

Left: the waveform with each word's span shaded; right: the log-mel front end (what the model
sees) with each word's end marked. Speed perturbation moves the spans (and the targets with
them); reverberation, noise, gain and clipping leave them in place. The SpecAugment row greys
the masked cells and marks in green the 80 ms tokens no time mask may cover (each ``[W]``'s
word-end token and, ``d`` tokens later, its emission token, at 480 ms).
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from data_prep.synth import synthesize
from vrt_finetune import constants as C
from vrt_finetune.augment import (
    Augment,
    Augmenter,
    Clipping,
    Gain,
    Noise,
    Reverb,
    Speed,
    speed_time_scale,
)
from vrt_finetune.features import LogMel
from vrt_finetune.specaugment import SpecAugment, apply_masks, draw_masks, protected_frames
from vrt_finetune.targets import build_targets
from vrt_finetune.tokenizer import build_test_tokenizer, load_tokenizer

TEXT = "the patient reports mild chest pain since this morning"
DELAY_MS = C.DEFAULT_DELAY_MS


def _rows() -> list[tuple[str, Augment]]:
    return [
        ("original", Augment()),
        ("speed 0.9", Augment(speed=Speed(p=1.0, factors=[0.9]))),
        ("speed 1.1", Augment(speed=Speed(p=1.0, factors=[1.1]))),
        ("reverb (simulated, RT60 0.6 s)", Augment(reverb=Reverb(p=1.0, rt60_s=[0.6, 0.6]))),
        ("pink noise, SNR 10 dB", Augment(noise=Noise(p=1.0, snr_db=[10, 10], colours=["pink"]))),
        (
            "gain +6 dB, clipped at 40 %",
            Augment(gain=Gain(p=1, db=[6, 6]), clipping=Clipping(1, [0.4, 0.4])),
        ),
        ("SpecAugment", Augment()),
    ]


def plot_augment(out: str | Path, text: str = TEXT, seed: int = 0) -> Path:
    """Write the figure to ``out`` (PNG) and return its path."""
    utt = synthesize(text, lead_silence_s=0.2)
    words = [w.word for w in utt.words]
    starts, ends = [w.start for w in utt.words], [w.end for w in utt.words]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_tokenizer(build_test_tokenizer(tmp))
    ids, log_mel = tokenizer.ids, LogMel()
    stream = list(build_targets(words, ends, len(utt.audio), tokenizer.encode, ids).stream)
    rows = _rows()
    fig, axes = plt.subplots(len(rows), 2, figsize=(12, 1.6 * len(rows)), squeeze=False)
    for r, (title, augment) in enumerate(rows):
        aug = Augmenter(augment, tokenizer.encode, ids)
        rng = np.random.default_rng(seed)
        audio, new_stream = aug(utt.audio.copy(), stream, words, ends, None, rng)
        factor = augment.speed.factors[0] if augment.speed.p else 1.0
        scale = speed_time_scale(factor)
        spans = [(s * scale, e * scale) for s, e in zip(starts, ends, strict=True)]
        with torch.no_grad():
            mel = log_mel(torch.from_numpy(audio)[None])
        if title == "SpecAugment":
            d = C.check_delay_ms(DELAY_MS)
            labels = np.full(len(new_stream) + d, -100)  # label k = stream[k - d] (speech only)
            labels[d:] = new_stream
            spec = SpecAugment(p=1.0, time_masks=3, time_width=40)
            n_frames = mel.shape[-1]
            time, freq = draw_masks(spec, labels, ids.word, d, n_frames, rng)
            keep = protected_frames(labels, ids.word, d)[:n_frames]
            mel = apply_masks(
                mel, torch.from_numpy(time[:n_frames])[None], torch.from_numpy(freq)[None]
            )
        t = np.arange(len(audio)) / C.SAMPLE_RATE
        wav_ax, mel_ax = axes[r]
        wav_ax.plot(t, audio, lw=0.3, color="k")
        for i, (s, e) in enumerate(spans):
            wav_ax.axvspan(s, e, color=("C0", "C1")[i % 2], alpha=0.25, lw=0)
            if r == 0:
                wav_ax.text(
                    (s + e) / 2,
                    0.9,
                    words[i],
                    ha="center",
                    fontsize=7,
                    transform=wav_ax.get_xaxis_transform(),
                )
        wav_ax.set_ylabel(title, fontsize=8, rotation=0, ha="right", va="center")
        mel_ax.imshow(
            mel[0].numpy(),
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0, mel.shape[-1] / C.MEL_FRAMES_PER_SECOND, 0, C.N_MELS),
        )
        for _, e in spans:
            mel_ax.axvline(e, color="w", lw=0.6)
        if title == "SpecAugment":
            for f in np.flatnonzero(keep[:: C.MEL_FRAMES_PER_TOKEN]):
                x = f * C.TOKEN_SECONDS
                mel_ax.axvspan(x, x + C.TOKEN_SECONDS, ymax=0.06, color="lime", lw=0)
        for ax in (wav_ax, mel_ax):
            ax.set_xlim(0, len(utt.audio) / C.SAMPLE_RATE / 0.9)
            ax.tick_params(labelsize=7)
            ax.set_yticks([])
    axes[-1][0].set_xlabel("seconds (waveform, word spans)", fontsize=8)
    axes[-1][1].set_xlabel("seconds (log-mel, word ends)", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=60)
    plt.close(fig)
    # 64 colours: a third of the bytes of a true-colour PNG, for a figure kept in the repo
    Image.open(buf).convert("RGB").quantize(64).save(out, optimize=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/augment.png")
    print(plot_augment(parser.parse_args().out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
