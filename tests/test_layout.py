"""The training layout, checked frame by frame against stored word timings."""

import numpy as np
import pytest

from vrt_finetune import constants as C
from vrt_finetune.layout import IGNORE_INDEX, layout_example
from vrt_finetune.targets import build_targets


@pytest.mark.parametrize("delay_ms", [80, 480, 2400])
def test_layout_matches_timings(tokenizer, delay_ms: int) -> None:
    words = ["Heart", "rate", "was", "normal."]
    ends = [0.31, 0.52, 0.64, 1.20]  # "was" (frame 8) waits for the tokens of "rate" (frame 7)
    speech = np.ones(C.seconds_to_samples(1.4), dtype=np.float32)
    targets = build_targets(words, ends, len(speech), tokenizer.encode, tokenizer.ids)
    L, d = tokenizer.n_left_pad_tokens, delay_ms // C.TOKEN_MS
    ex = layout_example(
        targets.stream,
        speech,
        bos_id=tokenizer.bos_id,
        pad_id=tokenizer.pad_id,
        n_left_pad_tokens=L,
        delay_ms=delay_ms,
    )
    n = len(ex.input_ids)
    n_speech = C.samples_to_tokens_ceil(len(speech))
    frames = max(len(targets.stream), n_speech + C.OFFLINE_RIGHT_PAD_EXTRA_TOKENS)
    assert n == 1 + L + d + frames
    # the stored stream, then [P] over the silence that offline decoding also runs through
    np.testing.assert_array_equal(
        ex.input_ids[1 + L + d : 1 + L + d + len(targets.stream)], targets.stream
    )
    assert (ex.input_ids[1 + L + d + len(targets.stream) :] == tokenizer.pad_id).all()
    assert ex.audio.shape == (n * C.SAMPLES_PER_TOKEN,)
    # prompt: [BOS] + [P] x (L + d), all ignored by the loss except the last position
    assert ex.input_ids[0] == tokenizer.bos_id
    assert (ex.input_ids[1 : 1 + L + d] == tokenizer.pad_id).all()
    assert (ex.labels[: L + d] == IGNORE_INDEX).all() and ex.labels[-1] == IGNORE_INDEX
    np.testing.assert_array_equal(ex.labels[L + d : -1], ex.input_ids[L + d + 1 :])
    # audio: L silent tokens, then the speech, then silence
    left = L * C.SAMPLES_PER_TOKEN
    assert not ex.audio[:left].any() and ex.audio[left : left + len(speech)].all()
    assert not ex.audio[left + len(speech) :].any()
    # every [W] is predicted at the first position whose audio reaches the words' end + delay
    # (or later, when the previous group's tokens still occupy that frame)
    tau = delay_ms / 1000
    assert [g.start > g.frame for g in targets.groups] == [False, False, True, False]
    for group, end in zip(targets.groups, ends, strict=True):
        k = L + d + group.start - 1  # position that predicts the group's [W]
        assert ex.labels[k] == tokenizer.word_id
        seen = (k + 1 - L) * C.TOKEN_SECONDS  # speech covered by audio tokens 0..k
        assert seen >= end + tau - 1e-9
        if group.start == group.frame:  # the position before did not reach it
            assert seen - C.TOKEN_SECONDS < end + tau


def test_stream_shorter_than_audio_rejected(tokenizer) -> None:
    with pytest.raises(ValueError, match="shorter than the audio"):
        layout_example(
            [tokenizer.pad_id] * 2,
            np.zeros(C.SAMPLES_PER_TOKEN * 3, dtype=np.float32),
            bos_id=tokenizer.bos_id,
            pad_id=tokenizer.pad_id,
            n_left_pad_tokens=4,
            delay_ms=480,
        )


def test_bad_delay_rejected(tokenizer) -> None:
    with pytest.raises(ValueError, match="multiple of 80 ms"):
        layout_example(
            [0], np.zeros(10, np.float32), bos_id=1, pad_id=0, n_left_pad_tokens=4, delay_ms=100
        )
