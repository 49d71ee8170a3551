"""LoRA training step of the full-size Voxtral Realtime on one GPU: eager vs compiled (by hand).

    python3 bench/bench_gpu_train.py --recipe recipes/train/medical.yaml --json train.json
        # eager vs compiled layers, batch 2-16 of 10 s, the recipe's LoRA and checkpointing
    python3 bench/bench_gpu_train.py --recipe recipes/train/medical.yaml --batch-sizes 8 16 24 \\
        --fit-gib 76        # and the largest batch per bucket in 76 GiB, as the recipe trains
    .venv/bin/python bench/bench_gpu_train.py --tiny --device cpu --dtype fp32 \\
        --batch-sizes 2 3 --seconds 2 --steps 2 --compile-backend aot_eager --fit-gib 2
        # checks the script itself on a CPU (inductor would compile for minutes there)

The model is the released architecture (``vrt_finetune.model.full_config``, 4.4 B parameters,
131 072-id vocabulary) with random weights, built directly on the device in ``--dtype`` (default
bf16: nothing is materialised on the CPU), with LoRA from ``vrt_finetune.lora.apply_lora``, trained
as the recipes train it (bf16 base, fp32 adapters, bf16 autocast, AdamW). ``--recipe`` takes the
LoRA, loss, gradient checkpointing, compile backend and batching settings from a training recipe
(``recipe_fit.py``); without it, the defaults of ``LoraSettings`` (rank 16, encoder and decoder)
and no checkpointing. Batches are ``vrt_finetune.batches.collate`` of synthetic utterances of
exactly ``--seconds`` each (noise audio, a grouped [P]/[W] target stream from
``vrt_finetune.targets``) at ``--delay-ms``; the log-mel (``vrt_finetune.features.LogMel``) runs
on the device inside each timed step, as in training. Variants, each in a fresh process:

* eager: hidden states of ``model.model(...)`` → ``vrt_finetune.loss.lm_loss`` (CE + z-loss over
  target positions, in chunks), as ``VrtLitModule.forward_loss`` does;
* compiled: the same with each encoder and decoder layer compiled by
  ``vrt_finetune.regional_compile.compile_each_layer``, as ``model.compile_layers: true`` does;
* baseline: transformers' ``model(..., labels=...)`` (full-sequence logits and its own loss).

Per batch size (one process runs the whole sweep, smallest first; an out-of-memory batch size is
reported as ``OOM`` and the sweep goes on): the first step's time (for the first batch size of
``compiled``, the compiling); median step time over ``--steps`` timed steps after ``--warmup``
untimed ones; samples/s; audio seconds/s; tokens/s (decoder positions, prompt and silence padding
included: ``B × S``); peak memory (``torch.cuda.max_memory_allocated`` since the start of that
batch size, weights included); and MFU::

    MFU = 6 · N · B · S / step_time / peak
    N   = N_decoder (embedding excluded) + N_head (V·H: the tied output projection)
          + N_projector + 4 · N_encoder (4 encoder frames of 20 ms per 80 ms position)

i.e. the usual 6·N FLOPs per token (2·N forward + 4·N backward), with N counted per decoder
position (the encoder runs 4 frames per position). Attention score FLOPs (small next to the
projections at these lengths: windows of ≤ 750 encoder frames) and the conv stem are left
out. ``peak`` is the dense bf16 peak of an H100/H200 SXM, 989 TFLOP/s (``--peak-tflops``).
NOTE: with LoRA the frozen weights get no weight gradients, so the hardware does only about 4·N
per token (forward 2·N + activation gradients 2·N); multiply MFU by 2/3 for the utilisation of
the work actually done.
All variants are charged the same model FLOPs (the baseline's full-vocabulary head included),
so their MFU ratio is their speed ratio.

"first CE" is the cross-entropy of the first step of each batch size: the model keeps training
through the sweep, so only the first batch size starts from the random model; the variants
must agree there (same seed, same batches; LoRA B starts at zero).

``--fit-gib G`` then finds, in the variant the recipe trains (``compiled`` when it sets
``model.compile_layers``, else ``eager``), per duration bucket (its longest stored duration,
stretched by ``1 / min(speed factors)`` when the recipe slows audio down, at its longest delay),
the largest batch whose step fits in G GiB (``torch.cuda.set_per_process_memory_fraction``, so a
larger card stands in for a smaller one; on a CPU: peak resident memory), and the recipe's
``batch_seconds`` that keeps every bucket within it. An 80 GB card has 79.6 GiB, less the CUDA
context (~0.5 GiB) and some headroom for fragmentation: 76.

NOTE (measured on an H200, eager mode): a step is bound by per-op host overhead (~25 000 small
ops, ~370 ms) up to batch ~8 of 10 s: at batch 1 the GPU is busy 61 ms of a 373 ms step; compiled
layers remove most of it (batch 16: 299 vs 547 ms per step). The sweep starts at batch 2: a
compiled layer specialises batch size 1 and would compile twice. ``--profile DIR`` writes a
``torch.profiler`` op table of one step per batch size.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = "RESULT "  # prefix of the result lines a variant process prints on stdout
FIT = "FIT "  # prefix of the --fit-gib lines
VARIANTS = ("eager", "compiled", "baseline")
"""See the module docstring."""
H100_BF16_DENSE_TFLOPS = 989.0
"""Dense bf16 tensor-core peak of H100 SXM and H200 (same compute die)."""


# --------------------------------------------------------------------------------- one variant
def run_variant(args: argparse.Namespace) -> None:
    """Build the model once, sweep the batch sizes, print one ``RESULT`` line per batch size."""
    import dataclasses

    import torch
    from gpu_step import build_train_step, free_memory, is_oom, profile_step, utterances
    from recipe_fit import fit_buckets, recipe_settings

    from vrt_finetune import constants as C
    from vrt_finetune.batches import collate
    from vrt_finetune.model import resolve_dtype
    from vrt_finetune.tokenizer import load_tokenizer

    torch.set_num_threads(args.threads)
    settings = recipe_settings(args.recipe)
    if args.gradient_checkpointing:
        settings = dataclasses.replace(settings, gradient_checkpointing=True)
    if args.compile_backend:
        settings = dataclasses.replace(settings, compile_backend=args.compile_backend)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and args.fit_gib:  # this process may use only that much (an 80 GB card on an H200)
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.fit_gib * 2**30 / total), device)
    tokenizer = load_tokenizer(args.tokenizer)
    step = build_train_step(
        args.variant, settings, tokenizer, device, resolve_dtype(args.dtype), args.tiny
    )
    device_name = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(
        f"[{args.variant}] model built in {step.build_s:.1f} s on {device_name}: "
        f"{step.trainable:,} of {step.total:,} parameters trainable, weights "
        f"{step.weights_bytes / 2**30:.1f} GiB ({settings.name}: LoRA rank {settings.lora.rank}, "
        f"gradient checkpointing {'on' if step.checkpointing else 'off'})",
        file=sys.stderr,
        flush=True,
    )
    pool = utterances(tokenizer, 2 * max(args.batch_sizes), args.seconds)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    for bs in args.batch_sizes:
        row: dict = {"variant": args.variant, "batch_size": bs, "device": device_name}
        batches = [
            collate(pool[i * bs : (i + 1) * bs], args.delay_ms, tokenizer.ids) for i in range(2)
        ]
        n_positions = int(batches[0]["input_ids"].numel())
        oom = False
        free_memory(cuda)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        try:
            start = time.perf_counter()
            first_ce = step.run(batches[0])
            sync()
            first_s = time.perf_counter() - start
            for k in range(1, args.warmup):
                step.run(batches[k % 2])
            times = []
            for k in range(args.steps):
                sync()
                start = time.perf_counter()
                step.run(batches[k % 2])
                sync()
                times.append(time.perf_counter() - start)
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not is_oom(err):
                raise
            oom = True  # handled below, once the exception (and the frames it holds) is gone
        if args.profile and not oom:
            path = args.profile / f"{args.variant}_b{bs}.txt"
            profile_step(functools.partial(step.run, batches[0]), sync, cuda, path)
        if oom:
            step.opt.zero_grad(set_to_none=True)
            row["status"] = "OOM"
            if cuda:
                row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        else:
            step_s = statistics.median(times)
            flops = 6 * step.flops_per_position * n_positions
            row.update(
                status="ok",
                first_step_s=first_s,
                step_s=step_s,
                samples_per_s=bs / step_s,
                audio_s_per_s=bs * args.seconds / step_s,
                tokens_per_s=n_positions / step_s,
                positions_per_sample=n_positions // bs,
                peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
                tflops=flops / step_s / 1e12,
                mfu=flops / step_s / (args.peak_tflops * 1e12),
                first_ce=first_ce,
            )
        row.update(
            weights_gib=step.weights_bytes / 2**30,
            trainable_params=step.trainable,
            total_params=step.total,
            flops_params_per_position=step.flops_per_position,
            build_s=step.build_s,
            delay_ms=args.delay_ms,
            seconds=args.seconds,
            recipe=settings.name,
            lora_rank=settings.lora.rank,
            gradient_checkpointing=step.checkpointing,
            compiled=args.variant == "compiled",
            audio_tokens_per_sample=C.seconds_to_samples(args.seconds) / C.SAMPLES_PER_TOKEN,
        )
        print(
            f"[{args.variant}] batch {bs}: {row['status']}"
            + (f", {row['step_s'] * 1e3:.0f} ms/step" if row["status"] == "ok" else ""),
            file=sys.stderr,
            flush=True,
        )
        print(RESULT + json.dumps(row), flush=True)
        del batches
        free_memory(cuda)
    if args.fit_gib and args.variant == settings.variant():
        fit_buckets(
            step, settings, tokenizer, device, args.fit_gib, args.fit_max_batch, args.variant, FIT
        )


# --------------------------------------------------------------------------------- the driver
def _child(
    args: argparse.Namespace, variant: str, fit_variant: str
) -> tuple[list[dict], list[dict]]:
    """Run one variant in a fresh process; its sweep rows (an ``error`` row per batch size it did
    not reach) and its ``--fit-gib`` rows."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant]
    cmd += ["--tokenizer", args.tokenizer, "--device", args.device, "--dtype", args.dtype]
    cmd += ["--batch-sizes", *map(str, args.batch_sizes)]
    keys = ("seconds", "steps", "warmup", "delay_ms", "threads", "peak_tflops", "fit_max_batch")
    for key in keys:
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    cmd += ["--tiny"] * args.tiny + ["--gradient-checkpointing"] * args.gradient_checkpointing
    cmd += ["--profile", str(args.profile)] * bool(args.profile)
    cmd += ["--recipe", str(args.recipe)] * bool(args.recipe)
    cmd += ["--fit-gib", str(args.fit_gib)] * bool(args.fit_gib)
    cmd += ["--compile-backend", str(args.compile_backend)] * bool(args.compile_backend)
    # keep what the caller put on PYTHONPATH (e.g. a --target directory of newer wheels)
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=args.variant_timeout
        )
        stdout, stderr, why = proc.stdout, proc.stderr, f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired as err:
        stdout, stderr = err.stdout or "", err.stderr or ""
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
        why = f"timed out after {args.variant_timeout} s"

    def parsed(prefix: str) -> list[dict]:
        lines = stdout.splitlines()
        return [json.loads(line[len(prefix) :]) for line in lines if line.startswith(prefix)]

    rows, fits = parsed(RESULT), parsed(FIT)
    progress = [line for line in stderr.splitlines() if line.startswith(f"[{variant}]")]
    print("\n".join(progress), file=sys.stderr, flush=True)
    done = {r["batch_size"] for r in rows}
    missing = [bs for bs in args.batch_sizes if bs not in done]
    if missing or (args.fit_gib and variant == fit_variant and not fits):
        print(f"[{variant}] died ({why}); last lines:", file=sys.stderr)
        print("\n".join(stderr.splitlines()[-25:]), file=sys.stderr, flush=True)
        rows += [{"variant": variant, "batch_size": bs, "status": "error"} for bs in missing]
    return rows, fits


def _ratios(ok: dict, top: str, bottom: str, batch_sizes: list[int]) -> str | None:
    """``"top / bottom: batch 16: 1.83× speed, 0.95× memory; …"`` where both ran."""
    parts = []
    for bs in batch_sizes:
        a, b = ok.get((top, bs)), ok.get((bottom, bs))
        if a and b:
            memory = f", {a['peak_gib'] / b['peak_gib']:.2f}× memory" if b["peak_gib"] else ""
            parts.append(
                f"batch {bs}: {a['samples_per_s'] / b['samples_per_s']:.2f}× speed{memory}"
            )
    return f"{top} / {bottom}: " + "; ".join(parts) if parts else None


def _table(rows: list[dict], args: argparse.Namespace) -> str:
    head = (
        "| variant | batch | samples/s | audio s/s | tokens/s | peak GiB | TFLOP/s | MFU % "
        "| ms/step | first step s | first CE |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        if r["status"] != "ok":
            peak = f"{r['peak_gib']:.1f}" if r.get("peak_gib") is not None else "-"
            status = r["status"]
            lines.append(
                f"| {r['variant']} | {r['batch_size']} | {status} | {status} | {status} "
                f"| {peak} | - | - | - | - | - |"
            )
            continue
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
        lines.append(
            f"| {r['variant']} | {r['batch_size']} | {r['samples_per_s']:.2f} "
            f"| {r['audio_s_per_s']:.1f} | {r['tokens_per_s']:.0f} | {peak} "
            f"| {r['tflops']:.1f} | {100 * r['mfu']:.1f} | {1e3 * r['step_s']:.0f} "
            f"| {r['first_step_s']:.1f} | {r['first_ce']:.4f} |"
        )
    ok = {(r["variant"], r["batch_size"]): r for r in rows if r["status"] == "ok"}
    ratios = [
        _ratios(ok, "compiled", "eager", args.batch_sizes),
        _ratios(ok, "eager", "baseline", args.batch_sizes),
    ]
    lines += [""] * any(ratios) + [r for r in ratios if r]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of every utterance")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per batch size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per batch size")
    parser.add_argument("--recipe", type=Path, help="training recipe whose model settings to use")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="also without it")
    parser.add_argument("--compile-backend", help="of compiled (default: the recipe's, inductor)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="op tables of one step")
    parser.add_argument("--delay-ms", type=int, default=480)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", help="base weights (bf16: bf16 autocast too)")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS)
    parser.add_argument("--tiny", action="store_true", help="tiny_config model (CPU checks)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["eager", "compiled"])
    parser.add_argument("--fit-gib", type=float, help="find the largest batch per bucket in GiB")
    parser.add_argument("--fit-max-batch", type=int, default=256, help="largest batch tried")
    parser.add_argument("--json", type=Path, help="write the rows and settings here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--variant-timeout", type=int, default=480, help="seconds per variant")
    parser.add_argument("--tokenizer", help="tekken.json (default: the 131072-id test one)")
    parser.add_argument(
        "--save-random-checkpoint",
        type=Path,
        metavar="DIR",
        help="only write a full-size random checkpoint (+ tekken.json) to DIR, for bench_decode",
    )
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    from gpu_step import save_random_checkpoint
    from recipe_fit import fit_table, recipe_settings

    if args.variant:
        run_variant(args)
        return 0
    if args.save_random_checkpoint:
        t0 = time.perf_counter()
        save_random_checkpoint(args.save_random_checkpoint, args.device, args.dtype)
        print(
            f"random checkpoint in {args.save_random_checkpoint} ({time.perf_counter() - t0:.0f} s)"
        )
        return 0

    settings = recipe_settings(args.recipe)  # fails here, before any model, on a bad recipe
    if args.fit_gib and settings.variant() not in args.variants:
        parser.error(
            f"--fit-gib measures the variant {settings.name} trains: add {settings.variant()} "
            "to --variants"
        )
    with tempfile.TemporaryDirectory() as tmp:
        if args.tokenizer is None:
            from vrt_finetune.testing import make_test_tokenizer

            # tiny: the 4096-id test vocabulary (fast on a CPU); else the released size
            tok = make_test_tokenizer(tmp, vocab_size=4096 if args.tiny else None)
            args.tokenizer = str(tok.path)
        rows, fits = [], []
        for variant in args.variants:
            more_rows, more_fits = _child(args, variant, settings.variant())
            rows, fits = rows + more_rows, fits + more_fits
    table = _table(rows, args)
    ok = [r for r in rows if r["status"] == "ok"]
    first = ok[0] if ok else {}
    checkpointing = settings.gradient_checkpointing or args.gradient_checkpointing
    print(
        f"\n{'tiny' if args.tiny else 'full-size'} Voxtral Realtime "
        f"({first.get('total_params', 0) / 1e9:.2f} B parameters, "
        f"{first.get('trainable_params', 0) / 1e6:.1f} M trainable: {settings.name}, LoRA rank "
        f"{settings.lora.rank}), {args.dtype}, "
        f"{args.seconds:g} s utterances ({first.get('positions_per_sample', '?')} positions), "
        f"delay {args.delay_ms} ms, gradient checkpointing {'on' if checkpointing else 'off'}, "
        f"{first.get('device', args.device)}; "
        f"MFU = 6·N·tokens / time / {args.peak_tflops:g} TFLOP/s"
    )
    print(table)
    if fits:
        print(fit_table(fits, settings))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        record = {"settings": options, "rows": rows, "fits": fits}
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
