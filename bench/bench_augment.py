"""Data-worker throughput with each ``data.augment`` transform on vs off (run by hand, CPU).

    .venv/bin/python bench/bench_augment.py            # ~2 minutes on 2 cores

One DataLoader worker's work, measured in this process with one torch thread: read synthetic
shards (2.5-4 s samples with word times), shuffle, bucket, decode FLAC, augment, lay out
(``ShardStream``, the training path). Each configuration is timed over the same batches;
samples/s is reported with its ratio to the no-augmentation baseline of the same run.

Then one CPU training step is timed as ``bench/bench_train_step.py`` times it (tiny model,
hidden 128, the full 131 072-id vocabulary, LoRA rank 16, batch 8, one thread, median of the
timed steps, SpecAugment's masks applied on the way in), and the script says whether two
workers with every transform on keep up with it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import webdataset as wds

from vrt_finetune import constants as C
from vrt_finetune.augment import Augment, Augmenter, Clipping, Gain, Noise, Reverb, Speed
from vrt_finetune.batches import Batching
from vrt_finetune.data import ShardStream
from vrt_finetune.features import LogMel
from vrt_finetune.shard_format import SampleWord, ShardSample, encode_flac, to_tar_sample
from vrt_finetune.specaugment import SpecAugment, apply_masks
from vrt_finetune.targets import build_targets
from vrt_finetune.tokenizer import build_test_tokenizer, load_tokenizer

WORDS = ["the", "patient", "reports", "mild", "chest", "pain", "since", "this", "morning"]


def write_shards(root: Path, tokenizer, n_shards: int, per_shard: int) -> list[str]:
    """Synthetic shards: noise-like audio, made-up word times, their targets."""
    rng = np.random.default_rng(0)
    urls = []
    for s in range(n_shards):
        url = str(root / f"train-{s:03d}.tar")
        with wds.TarWriter(url) as sink:
            for i in range(per_shard):
                seconds = round(float(rng.uniform(2.5, 4.0)), 2)
                n = C.seconds_to_samples(seconds)
                words = list(rng.choice(WORDS, size=int(seconds * 2.5)))
                ends = np.sort(rng.uniform(0.2, seconds, len(words))).round(3).tolist()
                targets = build_targets(words, ends, n, tokenizer.encode, tokenizer.ids)
                starts = [0.0, *ends[:-1]]
                sample = ShardSample(
                    key=f"s{s:03d}-{i:04d}",
                    text=" ".join(words),
                    duration=seconds,
                    targets=targets,
                    words=tuple(
                        SampleWord(w, a, b, 1.0)
                        for w, a, b in zip(words, starts, ends, strict=True)
                    ),
                )
                sink.write(to_tar_sample(sample, encode_flac(rng.uniform(-0.3, 0.3, n))))
        urls.append(url)
    return urls


def configs(noise_dir: str) -> dict[str, Augment]:
    return {
        "off": Augment(),
        "speed 0.9/1.1": Augment(speed=Speed(p=1.0, factors=[0.9, 1.1])),
        "noise coloured": Augment(noise=Noise(p=1.0)),
        "noise dir": Augment(noise=Noise(p=1.0, dir=noise_dir)),
        "reverb sim": Augment(reverb=Reverb(p=1.0)),
        "gain+clipping": Augment(gain=Gain(p=1.0), clipping=Clipping(p=1.0)),
        "specaugment": Augment(spec=SpecAugment(p=1.0)),
        "all p=1": Augment(
            speed=Speed(p=1.0, factors=[0.9, 1.1]),
            reverb=Reverb(p=1.0),
            noise=Noise(p=1.0),
            gain=Gain(p=1.0),
            clipping=Clipping(p=1.0),
            spec=SpecAugment(p=1.0),
        ),
    }


def _stream(urls, tokenizer, augment: Augment, batch_size: int) -> ShardStream:
    """One worker's training stream of ``batch_size``-sample batches with ``augment``."""
    augmenter = Augmenter(augment, tokenizer.encode, tokenizer.ids) if augment.enabled else None
    return ShardStream(
        urls,
        tokenizer.ids,
        Batching(batch_seconds=4.0 * batch_size, max_batch_size=batch_size, bucket_edges_s=[]),
        train=True,
        shuffle_buffer=32,
        seed=1,
        augmenter=augmenter,
    )


def worker_rate(urls, tokenizer, augment: Augment, n_batches: int, batch_size: int) -> float:
    """Samples/s of one worker making ``n_batches`` training batches (after one warm-up)."""
    it = iter(_stream(urls, tokenizer, augment, batch_size))
    next(it)
    t0, samples = time.perf_counter(), 0
    for _ in range(n_batches):
        samples += len(next(it)["keys"])
    return samples / (time.perf_counter() - t0)


def train_step_rate(urls, tokenizer, tokenizer_path: str, batch_size: int, steps: int) -> float:
    """Samples/s of the CPU training step (bench_train_step's 'ours'), masks included."""
    from vrt_finetune.lit_module import VrtLitModule
    from vrt_finetune.lora import LoraSettings
    from vrt_finetune.train_settings import TinyModel

    stream = _stream(urls, tokenizer, Augment(spec=SpecAugment(p=1.0)), batch_size)
    module = VrtLitModule(
        tiny=TinyModel(hidden=128, heads=4, kv_heads=2),
        tokenizer=tokenizer_path,
        dtype="fp32",
        lora=LoraSettings(rank=16, dropout=0.0),
    )
    module.configure_model()
    params = [p for p in module.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    log_mel, times, it = LogMel(), [], iter(stream)
    for i in range(steps + 1):
        batch = next(it)
        t0 = time.perf_counter()
        with torch.no_grad():
            feats = log_mel(batch.pop("audio"))
            feats = apply_masks(feats, batch.pop("spec_time_mask"), batch.pop("spec_freq_mask"))
        batch["input_features"] = feats
        module.forward_loss(batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return batch_size / statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tok_path = str(build_test_tokenizer(root, vocab_size=None, num_special_tokens=1000))
        tokenizer = load_tokenizer(tok_path)
        urls = write_shards(root, tokenizer, n_shards=4, per_shard=48)
        (root / "noise").mkdir()
        rng = np.random.default_rng(3)
        sf.write(root / "noise" / "hum.wav", 0.05 * rng.standard_normal((44100 * 5, 2)), 44100)
        rates = {
            name: worker_rate(urls, tokenizer, aug, args.batches, args.batch_size)
            for name, aug in configs(str(root / "noise")).items()
        }
        step = train_step_rate(urls, tokenizer, tok_path, args.batch_size, args.steps)
    base = rates["off"]
    print(f"one data worker, 1 thread, batch {args.batch_size}, 2.5-4 s samples, CPU")
    print(f"{'transform':16} {'samples/s':>10} {'vs off':>8}")
    for name, rate in rates.items():
        print(f"{name:16} {rate:10.1f} {rate / base:7.2f}×")
    everything = rates["all p=1"]
    verdict = "keep up" if 2 * everything >= step else "do NOT keep up"
    print(
        f"training step (tiny model, vocab {tokenizer.vocab_size}, 1 thread): {step:.1f} "
        f"samples/s; two workers with every transform on give {2 * everything:.1f} samples/s: "
        f"they {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
