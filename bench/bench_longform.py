"""Long-form alignment of one long recording: wall time and peak memory, run by hand.

    .venv/bin/python bench/bench_longform.py [--minutes 60] [--model tiny|base] [--device cpu]

Each measurement runs in a fresh process and reports its VmHWM (peak resident memory; not
``ru_maxrss``, which Linux carries over from the parent across exec):

1. ``oracle-mms`` / ``oracle-whisperx``: ``--minutes`` of oracle CTC posteriors (peaked at known
   word times, ``data_prep.align.testing``) through ``LongFormAligner.align_emissions``: the
   chunked Viterbi plus each backend's own alignment per piece. Reports the share of words
   within one 20 ms frame of the truth (target ≥ 99 %).
2. ``audio``: ``--minutes`` of noise with a syllable-rate envelope and a ~3 words/s transcript
   through ``LongFormAligner.align`` with a random wav2vec2 (``tiny``, or ``base``: the size of
   wav2vec2-base, 95 M parameters) behind the MMS backend: the emissions window by window, then
   the alignment. Its word times mean nothing; time and memory are the point (target < 3 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BASE = {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072}


def _peak_gb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 2**20


def _oracle(backend: str, minutes: float) -> dict:
    import torch

    from data_prep.align.longform import LongFormAligner
    from data_prep.align.testing import (
        MMS_LABELS,
        oracle_logits,
        oracle_spans,
        random_torchaudio_wav2vec2,
        save_random_wav2vec2_ctc,
    )
    from vrt_finetune.constants import SAMPLE_RATE, SAMPLES_PER_ENCODER_FRAME

    frame_s = SAMPLES_PER_ENCODER_FRAME / SAMPLE_RATE
    seconds = minutes * 60
    n_frames = round(seconds / frame_s)
    spans = oracle_spans(seconds)
    if backend == "mms":
        from data_prep.align.mms_backend import MMSAligner

        ids = {c: i for i, c in enumerate(MMS_LABELS)}
        aligner = MMSAligner(random_torchaudio_wav2vec2(len(MMS_LABELS)), ids, blank=0)
        logits = oracle_logits(spans, n_frames, aligner.char_ids, blank=0)
    else:
        from data_prep.align.whisperx_backend import WhisperXAligner

        with tempfile.TemporaryDirectory() as d:
            aligner = WhisperXAligner("en", str(save_random_wav2vec2_ctc(Path(d) / "w2v")))
        d = aligner.model_for("en")[1]["dictionary"]
        logits = oracle_logits(spans, n_frames, d, blank=0, delimiter="|")
    emissions = torch.log_softmax(logits, dim=-1)
    before = _peak_gb()
    t0 = time.perf_counter()
    got = LongFormAligner(aligner).align_emissions(
        emissions, [w for w, _, _ in spans], "en", seconds
    )
    wall = time.perf_counter() - t0
    tol = frame_s + 1e-6
    ok = sum(
        abs(g.start - s) <= tol and abs(g.end - e) <= tol
        for g, (_, s, e) in zip(got, spans, strict=True)
    )
    return {
        "words": len(spans),
        "frames": n_frames,
        "align_s": round(wall, 1),
        "within_one_frame": round(ok / len(spans), 4),
        "flagged": sum(g.flagged for g in got),
        "peak_gb_before_align": round(before, 2),
        "peak_gb": round(_peak_gb(), 2),
    }


def _audio(minutes: float, model: str, device: str) -> dict:
    import numpy as np
    import torch

    from data_prep.align.longform import LongFormAligner, stitched_log_probs
    from data_prep.align.mms_backend import MMSAligner
    from data_prep.align.testing import ORACLE_WORDS, noise_audio, save_random_wav2vec2_ctc

    torch.backends.cudnn.allow_tf32 = False
    with tempfile.TemporaryDirectory() as d:
        path = save_random_wav2vec2_ctc(Path(d) / "w2v", **(BASE if model == "base" else {}))
        aligner = MMSAligner.from_pretrained(str(path), local_files_only=True, device=device)
    n = round(minutes * 60 * 16000)
    audio = np.empty(n, dtype=np.float32)  # made a minute at a time: no float64 hour
    for k in range(0, n, 60 * 16000):
        audio[k : k + 60 * 16000] = noise_audio(60, seed=k)[: n - k]
    rng = np.random.default_rng(0)
    words = [ORACLE_WORDS[i] for i in rng.integers(0, len(ORACLE_WORDS), round(minutes * 180))]
    long_form = LongFormAligner(aligner)
    backend = long_form.backend("en")
    before = _peak_gb()
    t0 = time.perf_counter()
    emissions = stitched_log_probs(backend.frame_log_probs, audio, backend.hop, long_form.options)
    t1 = time.perf_counter()
    got = long_form.align_emissions(emissions, words, "en", len(audio) / 16000)
    t2 = time.perf_counter()
    return {
        "model": model,
        "device": device,
        "threads": torch.get_num_threads(),
        "words": len(words),
        "frames": len(emissions),
        "emissions_s": round(t1 - t0, 1),
        "align_s": round(t2 - t1, 1),
        "flagged": sum(g.flagged for g in got),
        "peak_gb_before": round(before, 2),
        "peak_gb": round(_peak_gb(), 2),
        "cuda_peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if device.startswith("cuda")
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--model", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=["oracle-mms", "oracle-whisperx", "audio"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.only == "audio":
            result = _audio(args.minutes, args.model, args.device)
        else:
            result = _oracle(args.only.removeprefix("oracle-"), args.minutes)
        print("RESULT " + json.dumps(result))
        return
    for what in [args.only] if args.only else ["oracle-mms", "oracle-whisperx", "audio"]:
        cmd = [sys.executable, __file__, "--child", "--only", what, "--minutes", str(args.minutes)]
        cmd += ["--model", args.model, "--device", args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        print(what, re.search(r"RESULT (.*)", out).group(1), flush=True)


if __name__ == "__main__":
    main()
