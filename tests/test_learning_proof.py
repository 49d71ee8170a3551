"""The learning proof: a tiny model trained with this toolkit learns text and timing.

The demo's base stages, each the toolkit's own command: espeak-ng sentences with exact word times
→ ``vrt-prep`` shards → ``vrt-train`` from random initialisation (``recipes/train/demo_base.yaml``)
→ ``vrt-eval`` streaming greedy decoding of held-out sentences. Held-out WER must be below 15 %
at 240 and 960 ms, and the median emission latency within one 80 ms frame of each delay: the check
that targets, delay conditioning and decoding agree. About 6 minutes on 2 cores.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from vrt_recipes import demo

from vrt_finetune.evaluate import main as eval_main

pytestmark = pytest.mark.slow

MAX_WER = 0.15
MAX_LATENCY_OFFSET_S = 0.080  # one decoder frame


def test_tiny_model_learns_text_and_timing(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    tok = demo.make_tokenizer(tmp_path)
    summary = demo.prepare(tmp_path / "shards", "proof", tok.path, demo.DEFAULT_N_GENERAL, 0, 0)
    assert summary["kept_samples"] == demo.DEFAULT_N_GENERAL
    t_prep = time.perf_counter() - t0

    base = demo.train_base(tmp_path, tok.path, demo.DEFAULT_BASE_STEPS)
    t_train = time.perf_counter() - t0 - t_prep

    delays = [str(ms) for ms in demo.DELAYS_MS]
    eval_dir = tmp_path / "eval"
    args = ["--model", f"base={base}", "--data", str(tmp_path / "shards"), "--delays", *delays]
    args += ["--device", "cpu", "--dtype", "fp32", "--out", str(eval_dir)]
    assert eval_main(args) == 0
    results = json.loads((eval_dir / "metrics.json").read_text())["models"]["base"]["domain"]

    report = ", ".join(
        f"{ms} ms: WER {r['wer']:.1%}, median latency {r['latency']['median'] * 1000:.0f} ms"
        for ms, r in results.items()
    )
    report += f" (prep {t_prep:.0f} s, training {t_train:.0f} s)"
    print(report)
    for ms in demo.DELAYS_MS:
        r = results[str(ms)]
        assert r["n_utterances"] >= 100, report
        assert r["wer"] < MAX_WER, report
        assert abs(r["latency"]["median"] - ms / 1000) <= MAX_LATENCY_OFFSET_S, report
