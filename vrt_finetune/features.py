"""The official log-mel front end, in batched torch.

Same numbers as transformers' ``VoxtralRealtimeFeatureExtractor`` (a test checks it), written
again here because that class takes Python lists/numpy one call at a time and pads with its own
rules; training and decoding need a front end that runs on a batch tensor on the GPU, and that
maps whole 80 ms tokens of audio to exactly ``MEL_FRAMES_PER_TOKEN`` frames each.

Recipe (``docs/model_contract.md``): Hann window 400, hop 160, centred STFT, power spectrum,
128 slaney mel bins 0-8 kHz, ``log10(max(mel, 1e-10))``, floor at ``1.5 - 8``, then
``(x + 4) / 4``; the last STFT frame is dropped so ``n`` samples give ``n / 160`` frames.
"""

from __future__ import annotations

import torch
from transformers.audio_utils import mel_filter_bank

from vrt_finetune import constants as C

GLOBAL_LOG_MEL_MAX = 1.5
"""Fixed log-mel maximum of the official front end (not the per-utterance max)."""

LOG_MEL_DYNAMIC_RANGE = 8.0
"""Decades of log-mel kept below the maximum."""


class LogMel(torch.nn.Module):
    """Waveforms ``(B, T)`` at 16 kHz → log-mel ``(B, 128, T // 160)`` (official recipe).

    For ``T`` a multiple of ``SAMPLES_PER_TOKEN``, the output has exactly
    ``MEL_FRAMES_PER_TOKEN`` frames per 80 ms token.
    """

    def __init__(self) -> None:
        super().__init__()
        filters = mel_filter_bank(
            num_frequency_bins=1 + C.N_FFT // 2,
            num_mel_filters=C.N_MELS,
            min_frequency=0.0,
            max_frequency=C.SAMPLE_RATE / 2,
            sampling_rate=C.SAMPLE_RATE,
            norm="slaney",
            mel_scale="slaney",
        )
        # (n_freq, n_mels) float32; buffers follow .to(device) but are not saved in checkpoints.
        self.register_buffer("filters", torch.from_numpy(filters).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(C.N_FFT), persistent=False)

    @torch.no_grad()
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Args: waveform ``(B, T)`` or ``(T,)`` float. Returns ``(B, 128, T // 160)`` float32."""
        squeeze = waveform.dim() == 1
        wav = waveform[None] if squeeze else waveform
        stft = torch.stft(
            wav.float(), C.N_FFT, C.HOP_LENGTH, window=self.window, return_complex=True, center=True
        )
        power = stft[..., :-1].abs() ** 2  # (B, n_freq, T // hop): drop the frame past the end
        mel = self.filters.T @ power  # (B, n_mels, frames)
        log_spec = torch.clamp(mel, min=1e-10).log10()
        log_spec = torch.maximum(
            log_spec, log_spec.new_tensor(GLOBAL_LOG_MEL_MAX - LOG_MEL_DYNAMIC_RANGE)
        )
        out = (log_spec + 4.0) / 4.0
        return out[0] if squeeze else out
