"""LoRA training step of the full-size Voxtral Realtime on one GPU: ours vs the baseline (by hand).

    python3 bench/bench_gpu_train.py --batch-sizes 1 2 4 8 16 --seconds 10 --steps 8 \\
        --json train.json                                     # ~2 minutes on one H200
    .venv/bin/python bench/bench_gpu_train.py --tiny --device cpu --dtype fp32 \\
        --batch-sizes 1 2 --seconds 2 --steps 2               # check the script itself on a CPU

The model is the released architecture (``vrt_finetune.model.full_config``, 4.4 B parameters,
131 072-id vocabulary) with random weights, built directly on the device in ``--dtype`` (default
bf16: nothing is materialised on the CPU), with LoRA from ``vrt_finetune.lora.apply_lora`` at the
default ``LoraSettings``, trained as the recipes train it (bf16 base, fp32 adapters, bf16
autocast, AdamW). Batches are ``vrt_finetune.batches.collate`` of synthetic utterances of exactly
``--seconds`` each (noise audio, a grouped [P]/[W] target stream from ``vrt_finetune.targets``) at
``--delay-ms``; the log-mel (``vrt_finetune.features.LogMel``) runs on the device inside each
timed step, as in training. Two variants, each in a fresh process:

* ours: hidden states of ``model.model(...)`` → ``vrt_finetune.loss.lm_loss`` (CE + z-loss over
  target positions, in chunks), as ``VrtLitModule.forward_loss`` does;
* baseline: transformers' ``model(..., labels=...)`` (full-sequence logits and its own loss).

Per batch size (one process runs the whole sweep, smallest first; an out-of-memory batch size is
reported as ``OOM`` and the sweep goes on): median step time over ``--steps`` timed steps after
``--warmup`` untimed ones; samples/s; audio seconds/s; tokens/s (decoder positions, prompt and
silence padding included: ``B × S``); peak memory (``torch.cuda.max_memory_allocated`` since the
start of that batch size, weights included); and MFU::

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
Both variants are charged the same model FLOPs (the baseline's full-vocabulary head included),
so their MFU ratio is their speed ratio.

"first CE" is the cross-entropy of the first step of each batch size: the model keeps training
through the sweep, so only the first batch size starts from the random model; ours and the
baseline must agree there (same seed, same batches; LoRA B starts at zero).

NOTE (measured on an H200, eager mode): a step is bound by per-op host overhead (~25 000 small
ops, ~370 ms) up to batch ~8 of 10 s: at batch 1 the GPU is busy 61 ms of a 373 ms step.
``--compile`` compiles each layer as ``VrtLitModule(compile=True)`` does (batch 16: 299 vs 547 ms
per step); ``--profile DIR`` writes a ``torch.profiler`` op table of one step per batch size.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULT = "RESULT "  # prefix of the result lines a variant process prints on stdout
H100_BF16_DENSE_TFLOPS = 989.0
"""Dense bf16 tensor-core peak of H100 SXM and H200 (same compute die)."""


# --------------------------------------------------------------------------------- one variant
def _utterances(tokenizer, n: int, seconds: float, seed: int = 0) -> list:
    """``n`` synthetic ``Item``s of exactly ``seconds`` of noise with a [P]/[W] target stream."""
    from vrt_finetune import constants as C
    from vrt_finetune.testing import training_item

    rng = np.random.default_rng(seed)
    words = ["the", "patient", "reports", "mild", "chest", "pain", "since", "this", "morning"]
    n_samples = C.seconds_to_samples(seconds)
    items = []
    for i in range(n):
        chosen = list(rng.choice(words, size=max(1, int(seconds * 2.5))))  # 2.5 words/s
        ends = np.sort(rng.uniform(0.2, seconds, len(chosen))).tolist()
        audio = rng.uniform(-0.3, 0.3, n_samples)
        items.append(training_item(tokenizer, f"u{i}", audio, chosen, ends, seconds))
    return items


def _build_model(tiny: bool, vocab_size: int, dtype, device, seed: int = 0):
    """Random-weight model built in ``dtype`` directly on ``device`` (no CPU copy on a GPU)."""
    import torch

    from vrt_finetune.model import MODEL_CLASS, full_config, tiny_config

    config = tiny_config(vocab_size) if tiny else full_config(vocab_size)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    # what from_pretrained(dtype=...) does: parameters are created (and initialised) in dtype
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = MODEL_CLASS(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def _flops_params(model) -> dict[str, int]:
    """Parameter counts per part of the base model (before LoRA), for the MFU formula."""
    inner = model.model
    embed = inner.language_model.get_input_embeddings().weight

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    parts = {
        "encoder": count(inner.audio_tower),
        "projector": count(inner.multi_modal_projector),
        "decoder": count(inner.language_model) - embed.numel() + count(inner.time_embedding),
        "head": embed.numel(),  # tied: the output projection does V·H MACs per position
    }
    parts["per_position"] = 4 * parts["encoder"] + parts["projector"] + parts["decoder"]
    parts["per_position"] += parts["head"]
    parts["total"] = sum(p.numel() for p in model.parameters())
    return parts


def _is_oom(err: BaseException) -> bool:
    """Out of device memory, also as cuBLAS/cuDNN report it (a plain RuntimeError)."""
    text = str(err)
    return type(err).__name__ == "OutOfMemoryError" or any(
        s in text for s in ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC")
    )


def save_random_checkpoint(directory: Path, device: str, dtype: str) -> None:
    """A full-size random Hugging Face-format checkpoint + the 131072-id test ``tekken.json``.

    For ``bench/bench_decode.py --model DIR``, which loads a model directory (8.8 GB in bf16).
    """
    from vrt_finetune.model import resolve_dtype
    from vrt_finetune.testing import make_test_tokenizer

    tok = make_test_tokenizer(directory, vocab_size=None)  # writes DIR/tekken.json
    model = _build_model(False, tok.vocab_size, resolve_dtype(dtype), device)
    model.save_pretrained(directory)


def _profile_step(run, sync, cuda: bool, path: Path) -> None:
    """``torch.profiler`` table of one step (ops by device time) into ``path``.

    Its footer compares "Self CPU time total" with "Self CUDA time total": a GPU busy for much
    less than the step's wall time is waiting for the host (per-op launch overhead).
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        run()
        sync()
    wall = time.perf_counter() - start
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = prof.key_averages().table(sort_by=sort, row_limit=30)
    path.write_text(
        f"wall time of the profiled step: {wall * 1e3:.0f} ms (profiler overhead included)\n{table}"
    )


def run_variant(args: argparse.Namespace) -> None:
    """Build the model once, sweep the batch sizes, print one ``RESULT`` line per batch size."""
    import torch

    from vrt_finetune import constants as C
    from vrt_finetune.batches import collate
    from vrt_finetune.features import LogMel
    from vrt_finetune.lora import LoraSettings, apply_lora, count_parameters, output_weight
    from vrt_finetune.loss import lm_loss
    from vrt_finetune.model import resolve_dtype
    from vrt_finetune.tokenizer import load_tokenizer
    from vrt_finetune.train_settings import LossSettings

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = resolve_dtype(args.dtype)
    tokenizer = load_tokenizer(args.tokenizer)
    t0 = time.perf_counter()
    base = _build_model(args.tiny, tokenizer.vocab_size, dtype, device)
    flops_n = _flops_params(base)
    model = apply_lora(base, LoraSettings())
    if args.gradient_checkpointing:  # as VrtLitModule.configure_model does
        base.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
        if hasattr(base, "_require_grads_hook"):
            base.disable_input_require_grads()
    if args.compile:  # as VrtLitModule.configure_model does (compile: true)
        for layer in [*base.model.audio_tower.layers, *base.model.language_model.layers]:
            layer.compile(backend="inductor", dynamic=True)
    model.train()
    trainable, total = count_parameters(model)
    build_s = time.perf_counter() - t0
    weights_bytes = torch.cuda.memory_allocated(device) if cuda else 0
    device_name = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(
        f"[{args.variant}] model built in {build_s:.1f} s on {device_name}: {trainable:,} of "
        f"{total:,} parameters trainable, weights {weights_bytes / 2**30:.1f} GiB",
        file=sys.stderr,
        flush=True,
    )
    log_mel = LogMel().to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)  # VrtLitModule's optimizer (defaults of OptimSettings)
    loss_settings = LossSettings()
    # bf16 base → bf16 autocast, as the recipes' precision: bf16-mixed; fp32 → plain fp32
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if dtype == torch.bfloat16
        else contextlib.nullcontext()
    )
    conv_dtype = base.model.audio_tower.embedder.conv1.weight.dtype
    ids = tokenizer.ids
    pool = _utterances(tokenizer, 2 * max(args.batch_sizes), args.seconds)

    def step(batch: dict) -> float:
        input_ids = batch["input_ids"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        features = log_mel(batch["audio"].to(device, non_blocking=True)).to(conv_dtype)
        with autocast:
            if args.variant == "ours":  # VrtLitModule.forward_loss
                hidden = base.model(
                    input_ids=input_ids,
                    input_features=features,
                    num_delay_tokens=batch["num_delay_tokens"],
                    use_cache=False,
                ).last_hidden_state  # (B, S, H)
                out = lm_loss(
                    hidden,
                    output_weight(model),
                    labels,
                    z_loss_coef=loss_settings.z_loss_coef,
                    pad_id=tokenizer.pad_id,
                    pad_weight=loss_settings.pad_weight,
                    chunk_tokens=loss_settings.chunk_tokens,
                )
                loss, ce = out.loss, out.ce  # ce: comparable with the baseline's loss
            else:
                shifted = torch.full_like(labels, -100)  # transformers shifts labels itself
                shifted[:, 1:] = labels[:, :-1]
                loss = base(
                    input_ids=input_ids,
                    input_features=features,
                    num_delay_tokens=batch["num_delay_tokens"],
                    labels=shifted,
                    use_cache=False,
                ).loss
                ce = loss.detach()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(ce)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    for bs in args.batch_sizes:
        row: dict = {"variant": args.variant, "batch_size": bs, "device": device_name}
        batches = [collate(pool[i * bs : (i + 1) * bs], args.delay_ms, ids) for i in range(2)]
        n_positions = int(batches[0]["input_ids"].numel())
        oom = False
        if cuda:
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        try:
            first_ce = step(batches[0])
            for k in range(1, args.warmup):
                step(batches[k % 2])
            times = []
            for k in range(args.steps):
                sync()
                start = time.perf_counter()
                step(batches[k % 2])
                sync()
                times.append(time.perf_counter() - start)
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err):
                raise
            oom = True  # handled below, once the exception (and the frames it holds) is gone
        if args.profile and not oom:
            path = args.profile / f"{args.variant}_b{bs}.txt"
            _profile_step(functools.partial(step, batches[0]), sync, cuda, path)
        if oom:
            opt.zero_grad(set_to_none=True)
            row["status"] = "OOM"
            if cuda:
                row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        else:
            step_s = statistics.median(times)
            flops = 6 * flops_n["per_position"] * n_positions
            row.update(
                status="ok",
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
            weights_gib=weights_bytes / 2**30,
            trainable_params=trainable,
            total_params=total,
            flops_params_per_position=flops_n["per_position"],
            build_s=build_s,
            delay_ms=args.delay_ms,
            seconds=args.seconds,
            gradient_checkpointing=args.gradient_checkpointing,
            compile=args.compile,
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
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()


# --------------------------------------------------------------------------------- the driver
def _child(args: argparse.Namespace, variant: str) -> list[dict]:
    """Run one variant in a fresh process; its rows (an ``error`` row if it died early)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant]
    cmd += ["--tokenizer", args.tokenizer, "--device", args.device, "--dtype", args.dtype]
    cmd += ["--batch-sizes", *map(str, args.batch_sizes)]
    for key in ("seconds", "steps", "warmup", "delay_ms", "threads", "peak_tflops"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    cmd += ["--tiny"] * args.tiny + ["--gradient-checkpointing"] * args.gradient_checkpointing
    cmd += ["--compile"] * args.compile + ["--profile", str(args.profile)] * bool(args.profile)
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
    rows = [
        json.loads(line[len(RESULT) :]) for line in stdout.splitlines() if line.startswith(RESULT)
    ]
    progress = [line for line in stderr.splitlines() if line.startswith(f"[{variant}]")]
    print("\n".join(progress), file=sys.stderr, flush=True)
    done = {r["batch_size"] for r in rows}
    missing = [bs for bs in args.batch_sizes if bs not in done]
    if missing:
        print(f"[{variant}] died ({why}); last lines:", file=sys.stderr)
        print("\n".join(stderr.splitlines()[-25:]), file=sys.stderr, flush=True)
        rows += [{"variant": variant, "batch_size": bs, "status": "error"} for bs in missing]
    return rows


def _table(rows: list[dict], args: argparse.Namespace) -> str:
    head = (
        "| variant | batch | samples/s | audio s/s | tokens/s | peak GiB | TFLOP/s | MFU % "
        "| ms/step | first CE |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        if r["status"] != "ok":
            peak = f"{r['peak_gib']:.1f}" if r.get("peak_gib") is not None else "-"
            status = r["status"]
            lines.append(
                f"| {r['variant']} | {r['batch_size']} | {status} | {status} | {status} "
                f"| {peak} | - | - | - | - |"
            )
            continue
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
        lines.append(
            f"| {r['variant']} | {r['batch_size']} | {r['samples_per_s']:.2f} "
            f"| {r['audio_s_per_s']:.1f} | {r['tokens_per_s']:.0f} | {peak} "
            f"| {r['tflops']:.1f} | {100 * r['mfu']:.1f} | {1e3 * r['step_s']:.0f} "
            f"| {r['first_ce']:.4f} |"
        )
    ok = {(r["variant"], r["batch_size"]): r for r in rows if r["status"] == "ok"}
    ratios = [
        f"batch {bs}: {ok['ours', bs]['samples_per_s'] / ok['baseline', bs]['samples_per_s']:.2f}× "
        f"speed, {ok['ours', bs]['peak_gib'] / ok['baseline', bs]['peak_gib']:.2f}× memory"
        for bs in args.batch_sizes
        if ("ours", bs) in ok and ("baseline", bs) in ok and ok["ours", bs]["peak_gib"]
    ]
    if ratios:
        lines.append("\nours / baseline: " + "; ".join(ratios))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of every utterance")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per batch size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per batch size")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile each layer")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="op tables of one step")
    parser.add_argument("--delay-ms", type=int, default=480)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", help="base weights (bf16: bf16 autocast too)")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS)
    parser.add_argument("--tiny", action="store_true", help="tiny_config model (CPU checks)")
    parser.add_argument("--variants", nargs="+", default=["ours", "baseline"])
    parser.add_argument("--json", type=Path, help="write the rows and settings here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--variant-timeout", type=int, default=300, help="seconds per variant")
    parser.add_argument("--tokenizer", help="tekken.json (default: the 131072-id test one)")
    parser.add_argument(
        "--save-random-checkpoint",
        type=Path,
        metavar="DIR",
        help="only write a full-size random checkpoint (+ tekken.json) to DIR, for bench_decode",
    )
    parser.add_argument("--variant", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
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

    with tempfile.TemporaryDirectory() as tmp:
        if args.tokenizer is None:
            from vrt_finetune.testing import make_test_tokenizer

            # tiny: the 4096-id test vocabulary (fast on a CPU); else the released size
            tok = make_test_tokenizer(tmp, vocab_size=4096 if args.tiny else None)
            args.tokenizer = str(tok.path)
        rows = [row for variant in args.variants for row in _child(args, variant)]
    table = _table(rows, args)
    ok = [r for r in rows if r["status"] == "ok"]
    first = ok[0] if ok else {}
    print(
        f"\n{'tiny' if args.tiny else 'full-size'} Voxtral Realtime "
        f"({first.get('total_params', 0) / 1e9:.2f} B parameters, "
        f"{first.get('trainable_params', 0) / 1e6:.1f} M trainable), {args.dtype}, "
        f"{args.seconds:g} s utterances ({first.get('positions_per_sample', '?')} positions), "
        f"delay {args.delay_ms} ms, gradient checkpointing "
        f"{'on' if args.gradient_checkpointing else 'off'}, "
        f"compile {'on' if args.compile else 'off'}, "
        f"{first.get('device', args.device)}; "
        f"MFU = 6·N·tokens / time / {args.peak_tflops:g} TFLOP/s"
    )
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
