"""The learning proof: a tiny model trained with this toolkit learns text and timing.

The demo's base stages, each the toolkit's own command: espeak-ng sentences (three pitches of
``en-us``) with exact word times → ``vrt-prep`` shards → ``vrt-train`` from random
initialisation (``recipes/train/demo_base.yaml``) → ``vrt-eval`` streaming greedy decoding of
held-out sentences; all of it the session's ``demo_base`` fixture, which trains in the background.
Held-out WER must be below 15 % at 240 and 960 ms, and the median emission latency within one
80 ms frame of each delay: the check that targets, delay conditioning and decoding agree. The
fixture's job took 12 minutes on the 2-core VM (shards 115 s, training 568 s, decoding 23 s),
most of it beside the rest of the suite; the test itself only reads its figures.
"""

from __future__ import annotations

import pytest
from vrt_recipes import demo

pytestmark = [pytest.mark.slow, pytest.mark.demo_base]

MAX_WER = 0.15
MAX_LATENCY_OFFSET_S = 0.080  # one decoder frame


def test_tiny_model_learns_text_and_timing(demo_base) -> None:
    results = demo_base.english
    report = ", ".join(
        f"{ms} ms: WER {r['wer']:.1%}, median latency {r['latency']['median'] * 1000:.0f} ms"
        for ms, r in results.items()
    )
    report += f" (prep {demo_base.prep_s:.0f} s, training {demo_base.train_s:.0f} s)"
    print(report)
    for ms in demo.DELAYS_MS:
        r = results[str(ms)]
        assert r["n_utterances"] >= 100, report
        assert r["wer"] < MAX_WER, report
        assert abs(r["latency"]["median"] - ms / 1000) <= MAX_LATENCY_OFFSET_S, report
