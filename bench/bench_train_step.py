"""Training step of vrt-finetune vs the obvious baseline, on CPU (run by hand).

    .venv/bin/python bench/bench_train_step.py            # ~2 minutes on 2 cores

Both variants train the same small Voxtral Realtime (random weights, the full 131 072-id test
vocabulary so that the output projection weighs as it does in the real model) with the same
LoRA adapters on the same batches (built by ``vrt_finetune.batches.collate`` at 480 ms):

* ours: ``model.model(...)`` hidden states → ``vrt_finetune.loss.lm_loss`` (CE + z-loss over
  target positions only, in chunks, gradients computed in the same pass);
* baseline: ``model(..., labels=...)``, transformers' own loss on full-sequence logits.

Each variant runs in a fresh process; peak memory is the rise of the process's peak RSS
(``ru_maxrss``) over its RSS just before the first step, i.e. what the steps add on top of the
weights. Samples/s is the median over the timed steps (after one untimed warm-up step).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _batches(tokenizer, n_batches: int, batch_size: int, delay_ms: int, seed: int = 0):
    import torch

    from vrt_finetune import constants as C
    from vrt_finetune.batches import collate
    from vrt_finetune.features import LogMel
    from vrt_finetune.testing import training_item

    rng = np.random.default_rng(seed)
    words = ["the", "patient", "reports", "mild", "chest", "pain", "since", "this", "morning"]
    log_mel, ids, out = LogMel(), tokenizer.ids, []
    for _ in range(n_batches):
        items = []
        for i in range(batch_size):
            seconds = float(rng.uniform(2.5, 4.0))
            n = C.seconds_to_samples(seconds)
            chosen = list(rng.choice(words, size=int(seconds * 2.5)))
            ends = np.sort(rng.uniform(0.2, seconds, len(chosen))).tolist()
            audio = rng.uniform(-0.3, 0.3, n)
            items.append(training_item(tokenizer, f"b{i}", audio, chosen, ends, seconds))
        batch = collate(items, delay_ms, ids)
        with torch.no_grad():
            batch["input_features"] = log_mel(batch.pop("audio"))
        out.append(batch)
    return out


def run_variant(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from vrt_finetune.lit_module import VrtLitModule
    from vrt_finetune.lora import LoraSettings, base_of
    from vrt_finetune.tokenizer import load_tokenizer
    from vrt_finetune.train_settings import TinyModel

    tokenizer = load_tokenizer(args.tokenizer)
    batches = _batches(tokenizer, args.steps + 1, args.batch_size, args.delay_ms)
    module = VrtLitModule(
        tiny=TinyModel(hidden=args.hidden, heads=4, kv_heads=2),
        tokenizer=args.tokenizer,
        dtype="fp32",
        lora=LoraSettings(rank=16, dropout=0.0),
    )
    module.configure_model()
    model = module.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step(batch) -> float:
        if args.variant == "ours":
            out = module.forward_loss(batch)
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return float(out.ce)  # comparable with the baseline (the z-loss adds ~0.014)
        else:
            # transformers shifts labels itself: give it the ids-aligned targets
            labels = torch.full_like(batch["labels"], -100)
            labels[:, 1:] = batch["labels"][:, :-1]
            loss = base_of(model)(
                input_ids=batch["input_ids"],
                input_features=batch["input_features"],
                num_delay_tokens=batch["num_delay_tokens"],
                labels=labels,
            ).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    rss_before = _rss_bytes()
    first_loss = step(batches[0])  # warm-up, untimed (allocator, lazy init)
    times = []
    for batch in batches[1:]:
        t0 = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    positions = sum(int(b["input_ids"].numel()) for b in batches) / len(batches)
    return {
        "variant": args.variant,
        "samples_per_s": args.batch_size / statistics.median(times),
        "step_memory_mb": (peak - rss_before) / 2**20,
        "first_loss": first_loss,
        "positions_per_batch": positions,
        "vocab": tokenizer.vocab_size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["ours", "baseline"])
    parser.add_argument("--tokenizer", help="tekken.json (default: a 131072-id test one)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--delay-ms", type=int, default=480)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant, best kept")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        if args.tokenizer is None:
            from vrt_finetune.tokenizer import build_test_tokenizer

            args.tokenizer = str(
                build_test_tokenizer(tmp, vocab_size=None, num_special_tokens=1000)
            )
        results: dict[str, dict] = {}
        for _ in range(args.repeats):  # alternate, so load from other jobs hits both alike
            for variant in ("ours", "baseline"):
                cmd = [sys.executable, __file__, "--variant", variant]
                for k in ("tokenizer", "hidden", "batch_size", "steps", "delay_ms", "threads"):
                    cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
                env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                best = results.get(variant)
                if best is None or r["samples_per_s"] > best["samples_per_s"]:
                    r["step_memory_mb"] = min(r["step_memory_mb"], (best or r)["step_memory_mb"])
                    results[variant] = r
    ours, base = results["ours"], results["baseline"]
    print(
        f"vocab {ours['vocab']}, hidden {args.hidden}, batch {args.batch_size} × "
        f"{ours['positions_per_batch'] / args.batch_size:.0f} positions, delay "
        f"{args.delay_ms} ms, {args.threads} thread(s), CPU"
    )
    print(f"{'':10} {'samples/s':>10} {'step memory MB':>15} {'first CE':>11}")
    for r in (ours, base):
        print(
            f"{r['variant']:10} {r['samples_per_s']:10.2f} {r['step_memory_mb']:15.0f} "
            f"{r['first_loss']:11.4f}"
        )
    print(
        f"speed ours/baseline: {ours['samples_per_s'] / base['samples_per_s']:.2f}×   "
        f"memory ours/baseline: {ours['step_memory_mb'] / base['step_memory_mb']:.2f}×"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
