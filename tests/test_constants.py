import pytest

from vrt_finetune import constants as C


def test_frame_chain() -> None:
    assert C.MEL_FRAMES_PER_SECOND == 100
    assert C.ENCODER_FRAMES_PER_SECOND == 50
    assert C.MEL_FRAMES_PER_TOKEN == 8
    assert C.SAMPLES_PER_TOKEN == 1280
    assert C.SAMPLES_PER_ENCODER_FRAME == 320
    assert C.TOKEN_MS == 80
    assert C.TOKENS_PER_SECOND == 12.5
    assert C.DELAY_CHOICES_MS[0] == 80 and C.DELAY_CHOICES_MS[-1] == 2400
    assert len(C.DELAY_CHOICES_MS) == 30
    assert C.DEFAULT_DELAY_MS == 480


@pytest.mark.parametrize("ms,tokens", [(80, 1), (480, 6), (2400, 30)])
def test_check_delay_ok(ms: int, tokens: int) -> None:
    assert C.check_delay_ms(ms) == tokens


@pytest.mark.parametrize("ms", [0, 40, 500, 2480, -80])
def test_check_delay_rejects(ms: int) -> None:
    with pytest.raises(ValueError, match="multiple of 80 ms between 80 and 2400"):
        C.check_delay_ms(ms)


def test_exact_div_refuses_to_round() -> None:
    with pytest.raises(ValueError):
        C.exact_div(10, 3)


def test_samples_to_tokens_ceil() -> None:
    assert C.samples_to_tokens_ceil(0) == 0
    assert C.samples_to_tokens_ceil(1) == 1
    assert C.samples_to_tokens_ceil(1280) == 1
    assert C.samples_to_tokens_ceil(1281) == 2
