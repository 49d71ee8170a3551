"""Alignment throughput: our batched whisperX backend vs ``whisperx.align`` one utterance at a time.

Run by hand (not a test)::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_align.py --minutes 10
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_align.py --post-processing-only
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_align.py --device cuda --batch-size 64 \
        --chunk-seconds 900 --minutes 30

The first (and third, on a GPU) is end to end, model included. ``--post-processing-only``
times what follows the model on the emissions of the whole corpus, computed beforehand one
utterance per forward pass (whisperX's own): whisperX's functions (``whisperx.align`` handed
the precomputed logits: ``log_softmax``, trellis, backtrack, pandas word grouping) vs ours
(:func:`~data_prep.align.whisperx_emissions.whisperx_word_segments`, all utterances in one
trellis batch on ``--device``); every word's start, end and score must be identical, and the
speed-up is printed last.

Both sides use the same wav2vec2-base-sized ``Wav2Vec2ForCTC`` (hidden 768, 12 layers, random
weights, saved with ``save_pretrained`` and loaded by ``whisperx.load_align_model``) on the same
utterances of 3-15 s: espeak-ng speech from ``data_prep.synth`` when it is available, otherwise
noise with a syllable-rate envelope. The corpus is processed in chunks, baseline and ours taking
turns (alternating which goes first), so a change in machine load hits both alike. Every word
time must be identical; the script fails otherwise. Throughput = audio seconds / wall seconds.

It also prints the most any method with float32 arithmetic could gain on this device: the
forward passes' FLOPs (counted from the model config, checked against
``torch.utils.flop_counter``) divided by the device's measured dense float32 matmul rate is a
floor on the time the wav2vec2 forward alone takes, so ``baseline wall / that floor`` bounds the
speed-up of anything that must give identical word times (reduced precision does not: see the
closing note of issue 3). On a 2-core CPU the baseline already runs at ~80 % of that rate.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.align.base import AlignRequest
from data_prep.align.testing import noise_audio, save_random_wav2vec2_ctc
from vrt_finetune.constants import SAMPLE_RATE

Item = AlignRequest
_FALLBACK_WORDS = "we will paint the small red bottle near the station tomorrow".split()  # noqa: SIM905


def _spoken(text: str) -> list[str]:
    """Crude normalisation for the benchmark: lower case, letters and apostrophes only."""
    return [w for w in (re.sub(r"[^a-z']", "", t.lower()) for t in text.split()) if w]


def make_corpus(minutes: float, seed: int) -> tuple[list[Item], str]:
    """Utterances of 3-15 s adding up to about ``minutes`` of audio, and where they came from."""
    rng = random.Random(seed)
    items: list[Item] = []
    total, target = 0.0, minutes * 60
    try:
        from data_prep.espeak_worker import espeak_available
        from data_prep.sentences import sentence_corpus
        from data_prep.synth import synthesize

        use_synth = espeak_available()
    except ImportError:
        use_synth = False
    sentences = sentence_corpus(10_000, seed) if use_synth else []
    while total < target:
        seconds = rng.uniform(3.0, 15.0)
        if use_synth:
            text = ""
            while len(text.split()) < seconds * 2.6:  # espeak's 160 wpm ≈ 2.7 words/s
                text += " " + sentences.pop()
            utt = synthesize(text.strip())
            if utt.duration > 15.0:  # keep to the range
                continue
            audio, words = utt.audio, _spoken(text)
        else:
            audio = noise_audio(seconds, seed=len(items))
            words = [rng.choice(_FALLBACK_WORDS) for _ in range(int(seconds * 2.6))]
        items.append(AlignRequest(np.array(audio, dtype=np.float32), words, "en"))
        total += len(audio) / SAMPLE_RATE
    return items, "espeak-ng speech (data_prep.synth)" if use_synth else "envelope noise"


def forward_flops(config: Any, n_samples: int) -> int:
    """FLOPs (2 per multiply-add) of one ``Wav2Vec2ForCTC`` forward pass on ``n_samples``.

    Counts what ``torch.utils.flop_counter.FlopCounterMode`` counts (convolutions and matmuls,
    norms and activations being negligible) plus the attention's two ``T x T`` products, which
    the counter does not see inside CPU scaled-dot-product attention. Stable layer norm and the
    adapter are not modelled: the benchmark's model has neither.
    """
    flops, channels, frames = 0, 1, n_samples
    for dim, kernel, stride in zip(
        config.conv_dim, config.conv_kernel, config.conv_stride, strict=True
    ):
        frames = (frames - kernel) // stride + 1
        flops += 2 * frames * dim * channels * kernel
        channels = dim
    hidden, inner = config.hidden_size, config.intermediate_size
    flops += 2 * frames * channels * hidden  # feature projection
    group_in = hidden // config.num_conv_pos_embedding_groups
    flops += 2 * frames * hidden * group_in * config.num_conv_pos_embeddings  # positional conv
    per_layer = 2 * frames * (4 * hidden * hidden + 2 * hidden * inner)  # q, k, v, o and FFN
    per_layer += 2 * 2 * frames * frames * hidden  # scores and weighted values
    flops += config.num_hidden_layers * per_layer
    return flops + 2 * frames * hidden * config.vocab_size  # CTC head


def check_forward_flops(model_dir: Path, n_samples: int) -> None:
    """Fail unless :func:`forward_flops` agrees with torch's FLOP counter on a real pass."""
    import torch
    from torch.nn.utils import parametrize
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import Wav2Vec2ForCTC

    # A copy of its own: the counter cannot see through the positional conv's weight-norm
    # parametrisation, which is removed here (deepcopy of a parametrised model shares it).
    model = Wav2Vec2ForCTC.from_pretrained(model_dir).eval()
    parametrize.remove_parametrizations(model.base_model.encoder.pos_conv_embed.conv, "weight")
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros((1, n_samples)))
    config = model.config
    frames = model._get_feat_extract_output_lengths(n_samples)
    attention = config.num_hidden_layers * 2 * 2 * int(frames) ** 2 * config.hidden_size
    counted, ours = counter.get_total_flops() + attention, forward_flops(config, n_samples)
    assert abs(counted - ours) <= 0.001 * counted, f"FLOP count {ours} vs torch's {counted}"


def dense_fp32_rate(device: str) -> float:
    """Best float32 matmul rate (FLOP/s) of ``device`` on the model's own GEMM shapes."""
    import torch

    best = 0.0
    for m, k, n in ((500, 768, 3072), (500, 3072, 768), (2000, 768, 3072)):
        a = torch.randn((m, k), device=device)
        b = torch.randn((k, n), device=device)
        for _ in range(3):
            a @ b
        for _ in range(5):
            _sync(device)
            t = time.perf_counter()
            for _ in range(10):
                a @ b
            _sync(device)
            best = max(best, 10 * 2 * m * k * n / (time.perf_counter() - t))
    return best


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def chunks(items: list[Item], seconds: float) -> list[list[Item]]:
    """Consecutive groups of about ``seconds`` of audio."""
    out: list[list[Item]] = [[]]
    acc = 0.0
    for item in items:
        if acc >= seconds:
            out.append([])
            acc = 0.0
        out[-1].append(item)
        acc += len(item.audio) / SAMPLE_RATE
    return out


def post_processing(
    model: Any, metadata: dict, items: list[Item], device: str, rounds: int
) -> None:
    """Time whisperX's post-processing vs ours on the same precomputed emissions; print the
    speed-up last (``N.Nx``). Fails unless every word's start, end and score are identical."""
    import torch

    from data_prep.align.ctc_batch import ctc_logits
    from data_prep.align.testing import reference_emissions_align
    from data_prep.align.whisperx_emissions import whisperx_word_segments

    t0 = time.perf_counter()
    # one utterance per forward pass: exactly whisperX's logits
    logits = [
        ctc_logits(model, metadata["type"], [torch.from_numpy(r.audio)], device)[0] for r in items
    ]
    n_frames = sum(len(lg) for lg in logits)
    print(f"emissions: {n_frames} frames (made in {time.perf_counter() - t0:.0f} s)")
    words = [r.words for r in items]
    n_samples = [len(r.audio) for r in items]

    def baseline() -> list:
        return [
            reference_emissions_align(lg, w, metadata, n)
            for lg, w, n in zip(logits, words, n_samples, strict=True)
        ]

    def ours() -> list:
        out = whisperx_word_segments(logits, words, metadata, n_samples)
        _sync(device)
        return out

    ours(), baseline()  # warm-up: imports, punkt, first-call kernel set-up
    wall = {"baseline": [], "ours": []}
    cpu = {"baseline": [], "ours": []}
    got = {}
    for k in range(rounds):
        for side, fn in (("baseline", baseline), ("ours", ours))[:: 1 if k % 2 == 0 else -1]:
            t, c = time.perf_counter(), time.process_time()
            got[side] = fn()
            wall[side].append(time.perf_counter() - t)
            cpu[side].append(time.process_time() - c)
    n_words = sum(len(r) for r in got["baseline"])
    identical = got["ours"] == got["baseline"]
    for side in ("baseline", "ours"):
        name = "whisperX's functions" if side == "baseline" else "ours"
        print(
            f"{name:>20}: {min(wall[side]):8.3f} s wall (best of {rounds}),"
            f" {min(cpu[side]):8.3f} CPU s"
        )
    print(f"identical start, end and score for all {n_words} words: {'yes' if identical else 'NO'}")
    assert identical, "word segments differ from whisperX's"
    print(f"post-processing CPU-time speed-up: {min(cpu['baseline']) / min(cpu['ours']):.1f}x")
    print(
        "post-processing speed-up (ours vs whisperX's functions, wall):"
        f" {min(wall['baseline']) / min(wall['ours']):.1f}x"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="audio to align")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-batch-seconds", type=float, default=120.0)
    parser.add_argument(
        "--max-padding", type=float, default=None, help="padding share (default: per device)"
    )
    parser.add_argument("--chunk-seconds", type=float, default=60.0, help="audio per turn")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--post-processing-only",
        action="store_true",
        help="time trellis, backtrack and word grouping on precomputed emissions only",
    )
    parser.add_argument("--rounds", type=int, default=2, help="post-processing: best of N")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="also time our path under bfloat16 autocast and count the word times it changes",
    )
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        # TF32 kernels are chosen per shape, so batched and lone logits would differ by ~1e-3,
        # enough to move a word by a frame: full float32 on both sides for the identity check.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    from data_prep.align.testing import reference_align
    from data_prep.align.whisperx_backend import WhisperXAligner

    t0 = time.perf_counter()
    items, origin = make_corpus(args.minutes, args.seed)
    audio_s = sum(len(r.audio) for r in items) / SAMPLE_RATE
    print(f"corpus: {len(items)} utterances, {audio_s:.0f} s of {origin}", end="")
    print(f" (made in {time.perf_counter() - t0:.0f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_random_wav2vec2_ctc(
            Path(tmp) / "w2v-base",
            hidden_size=768,
            num_layers=12,
            num_heads=12,
            intermediate_size=3072,
            conv_dim=512,
        )
        check_forward_flops(model_dir, len(items[0].audio))
        ours = WhisperXAligner(
            "en",
            str(model_dir),
            device=args.device,
            batch_size=args.batch_size,
            max_batch_seconds=args.max_batch_seconds,
            max_padding=args.max_padding,
        )
    model, metadata = ours.model_for("en")
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model: random Wav2Vec2ForCTC, {n_params / 1e6:.1f} M parameters, {args.device}, ", end=""
    )
    print(f"{torch.get_num_threads()} threads; batch {args.batch_size}, padding {ours.max_padding}")
    if args.post_processing_only:
        post_processing(model, metadata, items, args.device, args.rounds)
        return

    flops = sum(forward_flops(model.config, len(r.audio)) for r in items)
    warm = items[:2]  # first calls pay one-time kernel set-up: not for either side to carry
    ours.align_batch(warm)
    [reference_align(model, metadata, r.audio, r.words, args.device) for r in warm]
    sides = ["baseline", "ours", *(["ours-bf16"] if args.bf16 else [])]
    wall = dict.fromkeys(sides, 0.0)
    cpu = dict.fromkeys(sides, 0.0)  # process CPU time: less sensitive to other users
    n_words = n_scores_differ = 0
    bf16_moved: list[float] = []  # per word, largest start/end change under bfloat16 (s)
    for k, chunk in enumerate(chunks(items, args.chunk_seconds)):
        got: dict[str, list] = {}
        for side in sides if k % 2 == 0 else sides[::-1]:
            t, c = time.perf_counter(), time.process_time()
            if side == "baseline":
                got[side] = [
                    reference_align(model, metadata, r.audio, r.words, args.device) for r in chunk
                ]
            elif side == "ours":
                got[side] = ours.align_batch(chunk)
            else:
                device_type = torch.device(args.device).type
                with torch.autocast(device_type, dtype=torch.bfloat16):
                    got[side] = ours.align_batch(chunk)
            wall[side] += time.perf_counter() - t
            cpu[side] += time.process_time() - c
        for ref, mine in zip(got["baseline"], got["ours"], strict=True):
            assert isinstance(mine, list), mine
            ref_times = [(r["word"], r["start"], r["end"]) for r in ref]
            assert [(w.word, w.start, w.end) for w in mine] == ref_times, "word times differ"
            n_words += len(mine)
            # batched forward passes move logits by ~1e-6: a score may round the other way
            n_scores_differ += sum(w.score != r["score"] for w, r in zip(mine, ref, strict=True))
        for ref, low in zip(got["baseline"], got.get("ours-bf16", []), strict=False):
            for r, w in zip(ref, low, strict=True):
                bf16_moved.append(max(abs(w.start - r["start"]), abs(w.end - r["end"])))
        print(f"  chunk {k}: baseline {wall['baseline']:.1f} s, ours {wall['ours']:.1f} s so far")

    print(
        f"identical word times for all {n_words} words; scores differ at the 3rd decimal for"
        f" {n_scores_differ} (batched forward passes; identical emissions give identical scores:"
        " --post-processing-only)"
    )
    for side in sides:
        print(
            f"{side:>9}: {wall[side]:7.1f} s wall, {audio_s / wall[side]:6.1f} audio s / wall s"
            f" ({cpu[side]:.1f} CPU s)"
        )
    print(f"speed-up (ours / baseline throughput): {wall['baseline'] / wall['ours']:.2f}x wall,")
    print(f"                                       {cpu['baseline'] / cpu['ours']:.2f}x CPU time")
    if bf16_moved:
        moved = np.array(bf16_moved)
        print(
            f"bfloat16: {wall['baseline'] / wall['ours-bf16']:.2f}x wall, but only"
            f" {np.mean(moved == 0):.1%} of word times identical (within 20 ms:"
            f" {np.mean(moved <= 0.02):.1%}, largest change {moved.max() * 1000:.0f} ms)"
        )
    peak = dense_fp32_rate(args.device)
    floor = flops / peak
    print(
        f"forward passes: {flops / 1e12:.2f} TFLOP; dense float32 matmul on this device:"
        f" {peak / 1e9:.0f} GFLOP/s"
    )
    for side in ("baseline", "ours"):
        print(f"{side:>9}: forward FLOPs / wall = {flops / wall[side] / 1e9:.0f} GFLOP/s")
    print(
        f"float32 floor for the forward passes alone: {floor:.1f} s -> no float32 method (the"
        f" only kind that keeps word times identical) can beat the baseline by more than"
        f" {wall['baseline'] / floor:.2f}x here"
    )


if __name__ == "__main__":
    main()
