"""The language proof: the demo's English base learns Spanish and keeps its English.

``make demo-language``'s stages on the session's ``demo_base`` (the English base the learning
proof checks): Spanish sentences in three espeak-ng voices with exact word times → ``vrt-prep``
→ ``vrt-train`` with ``recipes/train/demo_language.yaml`` (LoRA on encoder and decoder, the
projector and the token embedding, at the served delay 480 ms; English replayed beside the
Spanish) → ``vrt-eval``. At 480 ms: Spanish WER from near 100 % to below 25 %, English WER within
10 points of the base's (its best at the delays it was trained at: it never learnt 480 ms), and
the median emission latency within one 80 ms frame of the delay. On the 2-core VM: Spanish shards
75 s (while the base still trains in the background), adaptation 161 s, decoding 34 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from vrt_recipes import demo, demo_language

pytestmark = [pytest.mark.slow, pytest.mark.demo_base]

DELAY_MS = 480
BASE_MIN_WER = 0.8  # the base never heard Spanish
MAX_WER = 0.25
MAX_FORGETTING = 0.10  # English WER points
MAX_LATENCY_OFFSET_S = 0.080  # one decoder frame


def test_base_learns_spanish_and_keeps_english(
    demo_tokenizer: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    t0 = time.perf_counter()
    # The Spanish shards need only the tokenizer: prepared while the base still trains.
    demo_language.prepare_language(
        tmp_path, demo_tokenizer, demo_language.DEFAULT_N_SPANISH, report_sets=False
    )
    t_prep = time.perf_counter() - t0
    demo_base = request.getfixturevalue("demo_base")
    t0 = time.perf_counter()
    adapter = demo_language.adapt(
        tmp_path, demo_base.model, demo_base.root / "shards", demo_language.DEFAULT_STEPS
    )
    t_train = time.perf_counter() - t0
    spanish, ms = tmp_path / "shards_es", str(DELAY_MS)
    base = demo.evaluate({"base": str(demo_base.model)}, spanish, [DELAY_MS], tmp_path / "e0")
    adapted = demo.evaluate(
        {"adapted": f"{demo_base.model}:{adapter}"}, spanish, [DELAY_MS], tmp_path / "e1",
        "--general", str(demo_base.root / "shards"),
    )["adapted"]  # fmt: skip

    es_before, es_after = base["base"]["domain"][ms]["wer"], adapted["domain"][ms]["wer"]
    en_base = min(r["wer"] for r in demo_base.english.values())
    en_after = adapted["general"][ms]["wer"]
    latency = adapted["domain"][ms]["latency"]["median"]
    report = (
        f"{DELAY_MS} ms: Spanish WER {es_before:.1%} -> {es_after:.1%}, English WER {en_after:.1%} "
        f"(base {en_base:.1%} at its own delays), median latency {latency * 1000:.0f} ms "
        f"(prep {t_prep:.0f} s, training {t_train:.0f} s, decoding "
        f"{time.perf_counter() - t0 - t_train:.0f} s)"
    )
    print(report)
    assert adapted["domain"][ms]["n_utterances"] >= 100, report
    assert es_before > BASE_MIN_WER, report
    assert es_after < MAX_WER, report
    assert en_after <= en_base + MAX_FORGETTING, report
    assert abs(latency - DELAY_MS / 1000) <= MAX_LATENCY_OFFSET_S, report
