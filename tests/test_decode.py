"""Streaming greedy decoding: streaming == full forward, causality, batching, word bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import VoxtralRealtimeFeatureExtractor

from vrt_finetune import constants as C
from vrt_finetune.decode import Decoded, DecodedWord, StreamingSession, greedy_decode, parse_stream
from vrt_finetune.features import LogMel
from vrt_finetune.layout import IGNORE_INDEX, layout_example
from vrt_finetune.model import build_model, tiny_config
from vrt_finetune.prompt import pad_audio, streaming_prompt
from vrt_finetune.targets import build_targets

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lively_model(tokenizer):
    """The tiny architecture with weights large enough that its argmax follows the input.

    NOTE: at the default init (std 0.02) the tiny random model writes one token whatever it
    hears, which would make every equality below hold trivially. Sliding windows shorter than
    the audio (encoder) and the prompt (decoder) exercise the caches' window handling too.
    """
    config = tiny_config(tokenizer.vocab_size)
    for part in (config, config.audio_config, config.text_config):
        part.initializer_range = 1.0
    config.audio_config.sliding_window = 24  # encoder frames: 6 tokens
    config.text_config.sliding_window = 24  # stream positions; the prompt alone is 33 + d
    return build_model(config, seed=0).eval()


def _audio(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts with a random envelope: no speech, but the encoder sees it change."""
    rng = np.random.default_rng(seed)
    n = C.seconds_to_samples(seconds)
    envelope = np.repeat(rng.uniform(0, 0.5, size=n // C.SAMPLES_PER_ENCODER_FRAME + 1), 320)
    return (envelope[:n] * rng.standard_normal(n)).astype(np.float32)


def _features(tokenizer, audio: np.ndarray, delay_ms: int) -> torch.Tensor:
    """``(1, 128, n * 8)`` log-mel of the whole offline-padded audio, by transformers' extractor.

    The reference is deliberately not our ``LogMel`` (which the decoder uses): a decoder front end
    that cut the audio per token would then disagree with it.
    """
    padded = pad_audio(audio, tokenizer.n_left_pad_tokens, delay_ms)
    extract = VoxtralRealtimeFeatureExtractor()
    return extract(padded, sampling_rate=C.SAMPLE_RATE, return_tensors="pt").input_features


# --- streaming == full sequence -----------------------------------------------------------------


@pytest.mark.parametrize("delay_ms", [80, 480])
def test_streaming_equals_teacher_forced_full_forward(tokenizer, lively_model, delay_ms) -> None:
    audio = _audio(2.3, seed=1)
    got = greedy_decode(lively_model, tokenizer, [audio], delay_ms)[0]
    assert len(set(got.ids)) >= 4, "test model too dull to tell outputs apart"

    prompt = streaming_prompt(tokenizer, delay_ms)
    n_prompt = len(prompt)
    n_positions = n_prompt + len(got.ids) - 1  # the last generated id is never fed back
    features = _features(tokenizer, audio, delay_ms)[:, :, : n_positions * C.MEL_FRAMES_PER_TOKEN]
    with torch.no_grad():
        full = lively_model(
            input_ids=torch.tensor([prompt + got.ids[:-1]]),
            input_features=features,
            num_delay_tokens=delay_ms // C.TOKEN_MS,
        ).logits[0, n_prompt - 1 :]  # (len(ids), vocab): predictions of the generated positions
    assert full.argmax(-1).tolist() == got.ids

    # the cached path's logits, not only their argmax, match the full forward at every step
    session = StreamingSession(lively_model, features, delay_ms // C.TOKEN_MS)
    steps = [session.prefill(torch.tensor([prompt]))]
    steps += [session.step(torch.tensor([t])) for t in got.ids[:-1]]
    torch.testing.assert_close(torch.cat(steps), full, rtol=0, atol=1e-4 * full.abs().max().item())


def _vllm_realtime_forwards(tokenizer, n_samples: int, delay_ms: int) -> int:
    """Forwards vLLM's realtime server runs on an utterance of ``n_samples``: one id each.

    An independent replay of ``VoxtralRealtimeBuffer`` in vllm-project/vllm
    (``vllm/model_executor/models/voxtral_realtime.py``: ``_generate_frame_size_and_num_tokens``
    and ``get_input_stream``), fed as ``buffer_realtime_audio`` feeds it: ``mistral_common``'s
    ``get_padding_audio`` silence around the raw samples. Chunk 0 carries the ``P`` prompt tokens,
    each later chunk one 80 ms token; every chunk also takes ``streaming_look_ahead_ms`` of the
    audio after it (and ``streaming_look_back_ms`` before it), and the stream ends at the first
    chunk the audio cannot fill. Each chunk is one engine forward, which writes one id.
    """
    cfg = tokenizer.audio_config
    left, right = tokenizer.mistral.instruct_tokenizer.audio_encoder.get_padding_audio(delay_ms)
    total = len(left.audio_array) + n_samples + len(right.audio_array)

    def ms_to_samples(ms: float) -> int:
        return int(cfg.sampling_rate * ms / 1000)

    look_ahead = ms_to_samples(cfg.streaming_look_ahead_ms)
    look_back = ms_to_samples(cfg.streaming_look_back_ms)
    step = ms_to_samples(1000 / cfg.frame_rate)
    start, end = 0, len(streaming_prompt(tokenizer, delay_ms)) * cfg.raw_audio_length_per_tok
    leftover_start = 0  # where vLLM's ``_leftover`` begins in the whole padded stream
    forwards = 0
    while True:
        frame_start = max(start - look_back, 0)
        frame_size = end + look_ahead - frame_start
        if total - leftover_start < frame_size:  # the queue runs dry: ``return``
            return forwards
        leftover_start += frame_size - look_ahead - look_back  # ``stride``
        forwards += 1
        start, end = end, end + step


@pytest.mark.filterwarnings("ignore:Using the model-agnostic default `max_length`")
@pytest.mark.parametrize(
    ("seconds", "delay_ms"), [(1.28, 480), (0.7, 80), (2.3, 960), (0.05, 240), (1.5, 2400)]
)
def test_stops_where_transformers_generate_and_vllm_stop(
    tokenizer, lively_model, seconds: float, delay_ms: int
) -> None:
    """As many ids as transformers' ``generate`` and vLLM's realtime buffer, and the same ids.

    The last id any of them writes is predicted at the second-to-last audio token, the last
    position training puts a label on (``layout_example``); one step more would read a position
    that training never supervises.
    """
    audio = _audio(seconds, seed=2)
    # vLLM's realtime stream is not rounded to whole tokens: when the speech ends 1-39 samples
    # into a token, that token lacks its look-ahead and vLLM stops one chunk earlier than the
    # offline paths (transformers, ours), which round up first. The durations avoid that case.
    assert len(audio) % C.SAMPLES_PER_TOKEN == 0 or len(audio) % C.SAMPLES_PER_TOKEN >= 40
    got = greedy_decode(lively_model, tokenizer, [audio], delay_ms)[0]
    assert tokenizer.eos_id not in got.ids, "the lengths below assume no early EOS"
    assert len(set(got.ids)) >= 3, "test model too dull to tell outputs apart"

    features = _features(tokenizer, audio, delay_ms)
    prompt = torch.tensor([streaming_prompt(tokenizer, delay_ms)])
    # no length given: generate runs to max_length = audio tokens (prompt included)
    ref = lively_model.generate(
        input_ids=prompt,
        input_features=features,
        num_delay_tokens=delay_ms // C.TOKEN_MS,
        do_sample=False,
        eos_token_id=tokenizer.eos_id,
    )[0, prompt.shape[1] :].tolist()
    assert got.ids == ref

    n_audio_tokens = features.shape[-1] // C.MEL_FRAMES_PER_TOKEN
    assert len(got.ids) == n_audio_tokens - prompt.shape[1]
    assert len(got.ids) == _vllm_realtime_forwards(tokenizer, len(audio), delay_ms)


def test_one_id_per_training_label(tokenizer, tiny_model) -> None:
    """The issue's case: 1.28 s at 480 ms is 65 audio tokens after a 39-token prompt: 26 ids, as
    many as the training layout has labels (vLLM's realtime buffer: 26 forwards)."""
    audio = _audio(1.28, seed=0)
    got = greedy_decode(tiny_model, tokenizer, [audio], 480)[0]
    assert tokenizer.eos_id not in got.ids
    example = layout_example(
        [tokenizer.pad_id] * C.samples_to_tokens_ceil(len(audio)),
        audio,
        bos_id=tokenizer.bos_id,
        pad_id=tokenizer.pad_id,
        n_left_pad_tokens=tokenizer.n_left_pad_tokens,
        delay_ms=480,
    )
    n_labels = int((example.labels != IGNORE_INDEX).sum())
    assert len(got.ids) == n_labels == _vllm_realtime_forwards(tokenizer, len(audio), 480) == 26


def test_later_audio_never_changes_earlier_output(tokenizer, lively_model) -> None:
    delay_ms = 240
    d = delay_ms // C.TOKEN_MS
    n_speech_tokens = 25
    head = _audio(n_speech_tokens * C.TOKEN_SECONDS, seed=3)
    tails = [_audio(1.0, seed=4), _audio(1.0, seed=5)]
    runs = greedy_decode(
        lively_model, tokenizer, [head, *(np.concatenate([head, t]) for t in tails)], delay_ms
    )
    # generated id i is predicted having heard speech tokens 0 … d + i, and the centred STFT of
    # token d + i peeks 2.5 ms into token d + i + 1: ids up to i = 25 - d - 2 depend on `head` only
    n_same = n_speech_tokens - d - 1
    assert runs[0].ids[:n_same] == runs[1].ids[:n_same] == runs[2].ids[:n_same]
    assert runs[1].ids != runs[2].ids, "continuations should change the later output"


def test_look_ahead_is_exactly_the_stft_overhang(tokenizer, lively_model) -> None:
    """Logits of id i depend on speech tokens 0 … d + i and the first 40 samples of d + i + 1.

    Same teacher-forced ids for three rows whose audio differs only in speech token 25: not at
    all, in its first ``N_FFT / 2 - HOP_LENGTH`` samples, or only after them.
    """
    delay_ms, n_head = 240, 25
    d = delay_ms // C.TOKEN_MS
    overhang = C.N_FFT // 2 - C.HOP_LENGTH  # 40 samples = 2.5 ms
    base = _audio((n_head + 4) * C.TOKEN_SECONDS, seed=6)
    early, late = base.copy(), base.copy()
    edge = n_head * C.SAMPLES_PER_TOKEN
    early[edge : edge + overhang] += 0.5
    late[edge + overhang : edge + 2 * overhang] += 0.5
    padded = [pad_audio(a, tokenizer.n_left_pad_tokens, delay_ms) for a in (base, early, late)]
    features = LogMel()(torch.from_numpy(np.stack(padded)))
    session = StreamingSession(lively_model, features, d)
    prompt = torch.tensor([streaming_prompt(tokenizer, delay_ms)] * 3)
    logits = [session.prefill(prompt)]
    logits += [session.step(torch.full((3,), tokenizer.pad_id)) for _ in range(n_head - d)]
    logits = torch.stack(logits, 1)  # (3, n_ids, vocab): row, generated id, vocab

    def same(row: int, i: int) -> bool:
        return torch.allclose(logits[row, i], logits[0, i], rtol=0, atol=1e-4)

    last_head_only = n_head - d - 2  # id whose audio ends inside speech token 24 plus 2.5 ms
    assert all(same(r, i) for r in (1, 2) for i in range(last_head_only + 1))
    assert not same(1, last_head_only + 1)  # the first 40 samples of token 25 reach id 21 …
    assert same(2, last_head_only + 1)  # … the rest of token 25 does not
    assert not same(2, last_head_only + 2)


# --- batching ----------------------------------------------------------------------------------


def test_batched_equals_unbatched(tokenizer, lively_model) -> None:
    audios = [_audio(s, seed=10 + i) for i, s in enumerate([0.7, 2.3, 0.05, 1.4])]
    one_by_one = greedy_decode(lively_model, tokenizer, audios, 480, batch_size=1)
    assert greedy_decode(lively_model, tokenizer, audios, 480, batch_size=4) == one_by_one
    assert greedy_decode(lively_model, tokenizer, audios, 480, batch_size=3) == one_by_one
    for audio, got in zip(audios, one_by_one, strict=True):
        # each row ran to its own end: one id per audio token past the prompt but the last, or
        # up to EOS
        n_ids = C.samples_to_tokens_ceil(len(audio)) + C.OFFLINE_RIGHT_PAD_EXTRA_TOKENS
        assert len(got.ids) == n_ids or got.ids[-1] == tokenizer.eos_id


def test_on_token_sees_each_id_as_decided(tokenizer, lively_model) -> None:
    audios = [_audio(s, seed=40 + i) for i, s in enumerate([0.9, 0.3, 1.6])]
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
    order: list[int] = []

    def on_token(i: int, token: int) -> None:
        seen[i].append(token)
        order.append(i)

    got = greedy_decode(lively_model, tokenizer, audios, 480, batch_size=2, on_token=on_token)
    assert got == greedy_decode(lively_model, tokenizer, audios, 480, batch_size=2)
    assert [seen[i] for i in range(3)] == [g.ids for g in got]
    # longest first (2, then 0 beside it), one id per step each while both run: interleaved
    assert order[:4] == [2, 0, 2, 0] and order[-1] == 1


def test_max_new_tokens_caps_and_keeps_prefix(tokenizer, lively_model) -> None:
    audio = _audio(1.2, seed=20)
    whole = greedy_decode(lively_model, tokenizer, [audio], 480)[0]
    capped = greedy_decode(lively_model, tokenizer, [audio], 480, max_new_tokens=5)[0]
    assert capped.ids == whole.ids[:5]


def test_session_fixture_model_runs_and_restores_mode(tokenizer, tiny_model) -> None:
    tiny_model.train()
    try:
        got = greedy_decode(tiny_model, tokenizer, [_audio(0.5, 30), _audio(0.9, 31)], 960)
        assert tiny_model.training
    finally:
        tiny_model.eval()
    assert [len(g.ids) for g in got] == [7 + 10, 12 + 10]
    assert all(isinstance(g.text, str) for g in got)


def test_session_refuses_to_run_past_the_audio(tokenizer, tiny_model) -> None:
    session = StreamingSession(tiny_model, torch.zeros(1, C.N_MELS, 3 * 8), 1)
    session.prefill(torch.tensor([[tokenizer.bos_id, tokenizer.pad_id]]))
    session.step(torch.tensor([tokenizer.pad_id]))
    with pytest.raises(ValueError, match="past the audio"):
        session.step(torch.tensor([tokenizer.pad_id]))


# --- word bookkeeping (pure) -------------------------------------------------------------------


def _ids(tokenizer, *parts: str | int) -> list[int]:
    """Special ids as given, text as its tokens (one per frame)."""
    out: list[int] = []
    for part in parts:
        out += tokenizer.encode(part) if isinstance(part, str) else [part]
    return out


def test_parse_stream_frame_by_frame(tokenizer) -> None:
    P, W = tokenizer.pad_id, tokenizer.word_id
    assert tokenizer.n_left_pad_tokens == 32
    # d = 2: ids[0] sits at stream position 1 + 32 + 2 = 35
    #   35 [P]  36 [W]  37 ' he' 38 'll' 39 'o'  40 [P]  41 [W]  42 ' b' 43 'ig' 44 ' world' 45 [P]
    ids = _ids(tokenizer, P, W, " hello", P, W, " big world", P)
    assert len(ids) == 11
    got = parse_stream(ids, tokenizer, 160)
    assert got == Decoded(
        ids=ids,
        text="hello big world",
        words=[
            DecodedWord("hello", 36, pytest.approx(0.32), pytest.approx(0.16)),
            DecodedWord("big", 41, pytest.approx(0.72), pytest.approx(0.56)),
            DecodedWord("world", 41, pytest.approx(0.72), pytest.approx(0.56)),
        ],
    )


def test_parse_stream_irregular_streams(tokenizer) -> None:
    P, W, EOS = tokenizer.pad_id, tokenizer.word_id, tokenizer.eos_id
    he, ll, o = tokenizer.encode(" hello")
    b, ig, world = tokenizer.encode(" big world")
    # 35 ' he' (no [W] yet)  36 [W]  37 'll'  38 'o'  39 [W]  40 ' b'  41 [P]  42 'ig'  43 EOS  44 …
    ids = [he, W, ll, o, W, b, P, ig, EOS, world]
    got = parse_stream(ids, tokenizer, 160)
    assert got.ids == ids[:9]  # cut after EOS
    assert got.text == "hello big"
    # 'hello' was completed in the group of position 36; a [P] inside a group does not end it
    assert [(w.word, w.frame) for w in got.words] == [("hello", 36), ("big", 39)]

    # text before any [W] is dated at its first id; an empty group dates nothing
    ids = [P, he, ll, o, W, W, b, ig]
    assert [(w.word, w.frame) for w in parse_stream(ids, tokenizer, 160).words] == [
        ("hello", 36),
        ("big", 40),
    ]
    assert parse_stream([P, P, P], tokenizer, 160) == Decoded([P, P, P], "", [])


@pytest.mark.parametrize("delay_ms", [80, 960])
def test_parse_stream_reads_target_streams_back(tokenizer, delay_ms: int) -> None:
    """A stream built by the target rule parses to its words, dated at their write frames."""
    words = ["Hello", "big", "world", "again."]
    ends = [0.30, 0.75, 0.76, 1.61]  # write frames 4, 10, 10, 21
    targets = build_targets(words, ends, 2 * C.SAMPLE_RATE, tokenizer.encode, tokenizer.ids)
    assert [(g.frame, g.start) for g in targets.groups] == [(4, 4), (10, 10), (21, 21)]
    got = parse_stream(list(targets.stream), tokenizer, delay_ms)
    assert [w.word for w in got.words] == words
    assert got.text == "Hello big world again."
    start_of = {word: g.start for g in targets.groups for word in g.words}
    offset = tokenizer.n_left_pad_tokens + delay_ms // C.TOKEN_MS
    for word, end in zip(got.words, ends, strict=True):
        assert word.frame == offset + start_of[word.word]
        assert word.ended_at_estimate == pytest.approx(start_of[word.word] * C.TOKEN_SECONDS)
        assert end <= word.ended_at_estimate < end + C.TOKEN_SECONDS + 1e-9
        assert word.emitted_at == pytest.approx(word.ended_at_estimate + delay_ms / 1000)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("delay_ms", [0, 40, 500, 2480])
def test_bad_delay_rejected(tokenizer, tiny_model, delay_ms: int) -> None:
    with pytest.raises(ValueError, match="multiple of 80 ms"):
        greedy_decode(tiny_model, tokenizer, [_audio(0.3, 0)], delay_ms)
    with pytest.raises(ValueError, match="multiple of 80 ms"):
        parse_stream([tokenizer.pad_id], tokenizer, delay_ms)


def test_bad_arguments_rejected(tokenizer, tiny_model) -> None:
    audio = _audio(0.3, 0)
    with pytest.raises(ValueError, match="1-D"):
        greedy_decode(tiny_model, tokenizer, [np.stack([audio, audio])], 480)
    with pytest.raises(ValueError, match="1-D"):
        greedy_decode(tiny_model, tokenizer, [np.zeros(0, np.float32)], 480)
    with pytest.raises(ValueError, match="batch_size"):
        greedy_decode(tiny_model, tokenizer, [audio], 480, batch_size=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_decode(tiny_model, tokenizer, [audio], 480, max_new_tokens=0)
    assert greedy_decode(tiny_model, tokenizer, [], 480) == []
