"""Throughput of greedy streaming decoding (``vrt_finetune.decode.greedy_decode``).

Usage::

    .venv/bin/python bench/bench_decode.py                       # tiny random model, CPU
    .venv/bin/python bench/bench_decode.py --model DIR --device cuda --dtype bf16

Prints generated ids per second (one id = 80 ms of audio, so ids/s ÷ 12.5 is the real-time
factor across the batch) for each batch size. Random noise stands in for speech: the work per
id does not depend on what is said.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from vrt_finetune import constants as C
from vrt_finetune.decode import greedy_decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="Hugging Face-format model dir (default: tiny random)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each utterance")
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--delay-ms", type=int, default=C.DEFAULT_DELAY_MS)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.model:
        from vrt_finetune.model import load_model
        from vrt_finetune.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(args.model)
        model = load_model(args.model, dtype=args.dtype, device=args.device)
    else:
        from vrt_finetune.model import resolve_dtype
        from vrt_finetune.testing import make_test_tokenizer, make_tiny_model

        tokenizer = make_test_tokenizer(tempfile.mkdtemp(prefix="bench_tok_"))
        model = make_tiny_model(tokenizer).to(args.device, resolve_dtype(args.dtype)).eval()

    rng = np.random.default_rng(0)
    n = C.seconds_to_samples(args.seconds)
    audios = [(0.1 * rng.standard_normal(n)).astype(np.float32) for _ in range(args.utterances)]
    greedy_decode(model, tokenizer, audios[:1], args.delay_ms, max_new_tokens=4)  # warm-up
    for batch_size in args.batch_sizes:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = greedy_decode(model, tokenizer, audios, args.delay_ms, batch_size=batch_size)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        n_ids = sum(len(d.ids) for d in out)
        print(
            f"batch {batch_size:3d}: {n_ids} ids in {seconds:.2f} s = {n_ids / seconds:8.1f} ids/s "
            f"({n_ids / seconds / C.TOKENS_PER_SECOND:6.1f}x real time)"
        )


if __name__ == "__main__":
    main()
