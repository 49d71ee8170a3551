"""Block-wise resampling that gives exactly the samples of a whole-signal ``torchaudio`` resample.

Separate from :mod:`data_prep.audio_io` (decoding, windows, errors) because it is pure signal
arithmetic with no I/O: it bounds the memory of decoding long files, and it can be checked on
its own against ``torchaudio.functional.resample``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torchaudio


class StreamResampler:
    """Block-wise ``torchaudio`` sinc resampling equal to resampling the whole signal at once.

    ``torchaudio.functional.resample`` reduces the rates by their gcd to ``orig``/``new`` and
    computes output samples ``[i*new, (i+1)*new)`` from input ``[i*orig - w, i*orig + orig + w)``
    (``w`` = kernel half-width), zero-padding the signal ends. Resampling a chunk that starts on a
    multiple of ``orig`` with ``ctx >= w`` samples of real context on both sides therefore gives
    the same samples as the full signal; the kernel is built once (``transforms.Resample``).
    """

    def __init__(self, orig_freq: int, new_freq: int, chunk: int) -> None:
        gcd = math.gcd(orig_freq, new_freq)
        self.orig, self.new = orig_freq // gcd, new_freq // gcd
        # Same formula as torchaudio's _get_sinc_resample_kernel (lowpass_filter_width=6,
        # rolloff=0.99, the defaults used by transforms.Resample below).
        width = math.ceil(6 * self.orig / (0.99 * min(self.orig, self.new)))
        self.ctx = self.orig * -(-width // self.orig)
        self.chunk = max(self.orig, chunk // self.orig * self.orig)
        self.resampler = torchaudio.transforms.Resample(self.orig, self.new)
        # Leading zeros stand in for the left zero padding of a whole-signal resample.
        self.buf = np.zeros(self.ctx, dtype=np.float32)
        self.n_in = 0

    def _run(self, window: np.ndarray) -> np.ndarray:
        # window: (ctx + L + ctx,) with L a multiple of orig; returns the L * new / orig middle.
        with torch.no_grad():
            out = self.resampler(torch.from_numpy(window)).numpy()
        first = self.ctx // self.orig * self.new
        return out[first : first + (len(window) - 2 * self.ctx) // self.orig * self.new]

    def push(self, block: np.ndarray) -> Iterator[np.ndarray]:
        """Feed mono float32 samples; yield every output block that is now complete."""
        self.n_in += len(block)
        self.buf = np.concatenate([self.buf, block])
        while len(self.buf) >= self.chunk + 2 * self.ctx:
            yield self._run(self.buf[: self.chunk + 2 * self.ctx])
            self.buf = self.buf[self.chunk :]

    def flush(self) -> Iterator[np.ndarray]:
        """Yield the rest, trimmed so the total length is ``ceil(n_in * new / orig)``."""
        rest = len(self.buf) - self.ctx
        if rest > 0:
            padded = -(-rest // self.orig) * self.orig
            window = np.zeros(padded + 2 * self.ctx, dtype=np.float32)
            window[: len(self.buf)] = self.buf
            out = self._run(window)
            yield out[: -(-rest * self.new // self.orig)]
        self.buf = np.zeros(self.ctx, dtype=np.float32)
