import numpy as np
import pytest
import torch
from mistral_common.protocol.transcription.request import StreamingMode, TranscriptionRequest
from mistral_common.tokens.tokenizers.audio import Audio
from transformers import VoxtralRealtimeFeatureExtractor

from vrt_finetune import constants as C
from vrt_finetune.features import LogMel
from vrt_finetune.prompt import pad_audio, right_pad_tokens, streaming_prompt


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / C.SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return (tone + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("n_samples", [C.SAMPLES_PER_TOKEN * 7, 16000 + 333, 400])
def test_log_mel_equals_transformers(n_samples: int) -> None:
    audio = _speechlike(n_samples)
    ref = VoxtralRealtimeFeatureExtractor()(audio, sampling_rate=C.SAMPLE_RATE, return_tensors="pt")
    ours = LogMel()(torch.from_numpy(audio)[None])
    assert ours.shape == ref.input_features.shape
    torch.testing.assert_close(ours, ref.input_features, rtol=0, atol=1e-5)


def test_log_mel_frames_per_token() -> None:
    audio = torch.zeros(3, C.SAMPLES_PER_TOKEN * 5)
    assert LogMel()(audio).shape == (3, C.N_MELS, C.MEL_FRAMES_PER_TOKEN * 5)


@pytest.mark.parametrize("delay_ms", [80, 240, 480, 960, 2400])
def test_prompt_and_padding_equal_mistral_common(tokenizer, delay_ms: int) -> None:
    audio = _speechlike(16000 + 555, seed=delay_ms)
    instruct = tokenizer.mistral.instruct_tokenizer
    encoder = instruct.audio_encoder
    ref_ids = instruct.start() + encoder.encode_streaming_tokens(delay_ms)
    ids = streaming_prompt(tokenizer, delay_ms)
    assert ids == ref_ids
    assert len(ids) == 1 + tokenizer.n_left_pad_tokens + delay_ms // C.TOKEN_MS
    padded = pad_audio(audio, tokenizer.n_left_pad_tokens, delay_ms)
    np.testing.assert_array_equal(padded, encoder.pad(audio, C.SAMPLE_RATE, delay_ms))
    left = tokenizer.n_left_pad_tokens * C.SAMPLES_PER_TOKEN
    np.testing.assert_array_equal(padded[left : left + len(audio)], audio)
    assert not padded[:left].any() and not padded[left + len(audio) :].any()


def test_default_delay_equals_offline_transcription_request(tokenizer) -> None:
    audio = _speechlike(12345)
    request = TranscriptionRequest(
        audio=Audio(audio, C.SAMPLE_RATE, "wav").to_base64("wav"),
        streaming=StreamingMode.OFFLINE,
        language=None,
    )
    encoded = tokenizer.mistral.encode_transcription(request)
    assert encoded.tokens == streaming_prompt(tokenizer, tokenizer.default_delay_ms)
    ref_audio = encoded.audios[0].audio_array
    ours = pad_audio(audio, tokenizer.n_left_pad_tokens, tokenizer.default_delay_ms)
    np.testing.assert_allclose(ours, ref_audio, atol=1e-4)  # wav round trip quantises


def test_training_padding_fits_exact_tokens() -> None:
    audio = _speechlike(1000)
    out = pad_audio(audio, 4, 480, total_tokens=10)
    assert out.shape == (10 * C.SAMPLES_PER_TOKEN,)
    with pytest.raises(ValueError, match="does not fit"):
        pad_audio(audio, 4, 480, total_tokens=4)
    assert right_pad_tokens(480) == 6 + 1 + 10


def test_bad_delay_rejected(tokenizer) -> None:
    with pytest.raises(ValueError, match="multiple of 80 ms"):
        streaming_prompt(tokenizer, 500)
