"""``make demo``: the main job end to end on an embedded default.

Runs every stage that has landed, on CPU, with nothing downloaded: builds the offline test
tokenizer and a tiny random Voxtral Realtime, then feeds it a streaming prompt and log-mel audio
built by the toolkit's own modules. Later stages (synthetic corpus, shards, training, evaluation,
export) join as their issues land.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vrt_finetune import constants as C
from vrt_finetune.features import LogMel
from vrt_finetune.model import load_model
from vrt_finetune.prompt import pad_audio, streaming_prompt
from vrt_finetune.testing import make_test_tokenizer, save_tiny_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--delay-ms", type=int, default=480)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out: Path = args.out
    tokenizer = make_test_tokenizer(out / "tokenizer")
    print(
        f"[1/3] test tokenizer: {tokenizer.path} ({tokenizer.vocab_size} ids, "
        f"[P]={tokenizer.pad_id} [W]={tokenizer.word_id} L={tokenizer.n_left_pad_tokens})"
    )
    model_dir = save_tiny_checkpoint(out / "tiny-model", tokenizer)
    model = load_model(model_dir, dtype="fp32")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[2/3] tiny model: {model_dir} ({n_params / 1e6:.2f} M parameters)")
    ids = streaming_prompt(tokenizer, args.delay_ms)
    speech = np.random.default_rng(0).standard_normal(C.SAMPLES_PER_TOKEN * 7).astype(np.float32)
    audio = pad_audio(0.05 * speech, tokenizer.n_left_pad_tokens, args.delay_ms)
    mel = LogMel()(torch.from_numpy(audio)[None])[..., : len(ids) * C.MEL_FRAMES_PER_TOKEN]
    with torch.no_grad():
        logits = model(
            input_ids=torch.tensor([ids]),
            input_features=mel,
            num_delay_tokens=C.check_delay_ms(args.delay_ms),
        ).logits
    first = tokenizer.decode([int(logits[0, -1].argmax())], keep_special=True)
    print(
        f"[3/3] forward pass: prompt of {len(ids)} tokens at {args.delay_ms} ms, "
        f"logits {tuple(logits.shape)}, first token {first!r} (random weights)"
    )
    print(f"done in {time.perf_counter() - t0:.1f} s; outputs under {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
