"""Frame-by-frame tests of the grouped [P]/[W] target rule, written by hand."""

import pytest

from vrt_finetune import constants as C
from vrt_finetune.targets import TargetOptions, Targets, build_targets, write_frame
from vrt_finetune.tokenizer import StreamIds

P, W, EOS = 0, 1, 2
IDS = StreamIds(bos=1, pad=P, word=W, eos=EOS, n_left_pad_tokens=32)
# toy vocabulary: each word is one token, except "alpha" (3 tokens) and "beta" (2 tokens)
VOCAB = {"a": [10], "b": [11], "c": [12], "hi": [13], "alpha": [20, 21, 22], "beta": [30, 31]}
SPACES: list[str] = []


def toy_encode(text: str) -> list[int]:
    SPACES.append(text)
    return [i for w in text.split() for i in VOCAB[w]]


def tokens(seconds: float) -> int:
    return C.seconds_to_samples(seconds)


def build(words, ends, audio_s, **opts) -> Targets:
    return build_targets(words, ends, tokens(audio_s), toy_encode, IDS, TargetOptions(**opts))


def test_single_word() -> None:
    # "hi" ends at 100 ms: needs speech tokens 0 and 1 -> frame 2; audio 400 ms = 5 tokens
    t = build(["hi"], [0.10], 0.40)
    assert t.stream == (P, W, 13, P, P)
    assert [(g.frame, g.start) for g in t.groups] == [(2, 2)]


def test_words_on_one_frame_form_one_group() -> None:
    # "a" ends 50 ms and "b" 70 ms: both frame 1 -> one [W], text tokenized as a run " a b"
    SPACES.clear()
    t = build(["a", "b", "c"], [0.05, 0.07, 0.30], 0.40)
    assert t.stream == (W, 10, 11, W, 12)  # "c" ends 300 ms: frame ceil(3.75) = 4
    assert SPACES == [" a b", " c"]
    assert [g.words for g in t.groups] == [("a", "b"), ("c",)]


def test_group_frames_are_ceil_of_end() -> None:
    assert write_frame(0.30) == 4  # 300 ms / 80 ms = 3.75 -> 4
    assert build(["c"], [0.30], 0.40).stream == (P, P, P, W, 12)


def test_overrun_waits_and_keeps_own_word_token() -> None:
    # "alpha" at frame 1 fills frames 1-4 ([W] + 3 tokens); "b" (frame 2) waits for frame 5
    t = build(["alpha", "b"], [0.05, 0.12], 0.40)
    assert t.stream == (W, 20, 21, 22, W, 11)
    assert [(g.frame, g.start) for g in t.groups] == [(1, 1), (2, 5)]


def test_overrun_waits_in_a_chain() -> None:
    # frames 1, 2, 3: "beta" [W]+2 fills 1-3, "a" waits to 4-5, "b" (frame 3) waits to 6-7
    t = build(["beta", "a", "b"], [0.01, 0.10, 0.20], 0.24)
    assert t.stream == (W, 30, 31, W, 10, W, 11)
    assert [g.start for g in t.groups] == [1, 4, 6]


def test_overrun_merge_option() -> None:
    SPACES.clear()
    t = build(["alpha", "b"], [0.05, 0.12], 0.40, overrun="merge")
    assert t.stream == (W, 20, 21, 22, 11)
    assert [g.words for g in t.groups] == [("alpha", "b")]
    assert SPACES[-1] == " alpha b"


def test_first_frame() -> None:
    # a word cannot be written before frame 1 (the first generated position)
    assert write_frame(0.0) == 1
    assert write_frame(0.001) == 1
    assert build(["a"], [0.0], 0.08).stream == (W, 10)


def test_word_ending_exactly_on_a_frame_boundary() -> None:
    assert write_frame(0.08) == 1
    assert write_frame(0.16) == 2  # 0.16 / 0.08 == 2.0000000000000004 in floats
    assert write_frame(0.16 + 1 / C.SAMPLE_RATE) == 3
    assert write_frame(2.4) == 30
    assert build(["a", "b"], [0.08, 0.16], 0.32).stream == (W, 10, W, 11)


def test_last_frame_and_tokens_past_the_audio() -> None:
    # audio 240 ms = 3 tokens; "alpha" ends at its very end (frame 3) and runs to frame 6
    t = build(["alpha"], [0.24], 0.24)
    assert t.stream == (P, P, W, 20, 21, 22)
    # trailing silence: the stream covers every speech token
    assert build(["a"], [0.05], 0.40).stream == (W, 10, P, P, P)
    # audio length not a whole number of tokens: rounded up
    assert len(build(["a"], [0.05], 0.41).stream) == 6


def test_eos_option() -> None:
    # EOS at the first free frame at or after the end of the audio (5 tokens -> frame 6)
    assert build(["a"], [0.05], 0.40, eos=True).stream == (W, 10, P, P, P, EOS)
    # ... or right after the last word's tokens when they run past the audio
    assert build(["alpha"], [0.24], 0.24, eos=True).stream == (P, P, W, 20, 21, 22, EOS)


def test_no_leading_space_option() -> None:
    SPACES.clear()
    build(["a", "b"], [0.05, 0.3], 0.4, leading_space=False)
    assert SPACES == ["a", "b"]


def test_no_words_gives_pads_only() -> None:
    assert build([], [], 0.24).stream == (P, P, P)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="2 words but 1 end"):
        build(["a", "b"], [0.1], 0.4)
    with pytest.raises(ValueError, match="must not decrease"):
        build(["a", "b"], [0.3, 0.1], 0.4)
    with pytest.raises(ValueError, match="overrun"):
        TargetOptions(overrun="drop")  # type: ignore[arg-type]


def test_json_round_trip() -> None:
    t = build(["alpha", "b"], [0.05, 0.12], 0.40, eos=True)
    assert Targets.from_json(t.to_json()) == t


def test_real_tokenizer_text_survives(tokenizer) -> None:
    words = ["The", "patient's", "BP", "was", "120/80,", "stable."]
    ends = [0.2, 0.55, 0.8, 0.9, 1.6, 2.2]
    t = build_targets(words, ends, tokens(2.5), tokenizer.encode, tokenizer.ids)
    assert t.stream.count(tokenizer.word_id) == len(t.groups)
    text = tokenizer.decode([i for i in t.stream if i != tokenizer.word_id])
    assert text == " " + " ".join(words)
    # each [W] sits at or after its words' write frame, never before
    for g in t.groups:
        assert t.stream[g.start - 1] == tokenizer.word_id and g.start >= g.frame
