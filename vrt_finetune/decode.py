"""Greedy frame-synchronous streaming decoding: one token per 80 ms of audio.

Layout (``vrt_finetune.prompt``): the decoder input at stream position ``k`` is
``token_embedding(ids[k]) + adapter(audio token k)``; the prompt is ``[BOS] + [P] × (L + d)``
(``P = L + d + 1`` positions) over the first ``P`` audio tokens of the left-padded audio. Decoding
then runs one position per audio token::

    prefill   positions 0 … P-1  (prompt ids, audio tokens 0 … P-1)  → token for position P
    step k    position k         (token k,    audio token k)         → token for position k + 1
              for k = P … n_audio_tokens - 2

so an utterance whose padded audio has ``n`` tokens gets ``n - P`` generated ids, the last one
predicted at audio token ``n - 2``, unless it writes EOS first. That is where the serving stack
stops: transformers' ``generate`` runs to ``max_length = n`` (prompt included), and vLLM's
realtime buffer runs one forward per 80 ms chunk whose look-ahead samples (2.5 ms of the next
token) have arrived, so the last audio token, which has none, is never fed. It is also the last
position the training layout (``vrt_finetune.layout``) puts a label on: a further step would
predict an id at a position training never supervises, and text written there would land in the
transcript ``vrt-eval`` scores. The decoder KV ``cache``, the encoder's own KV ``encoder_cache``
and the causal convolutions' ``padding_cache`` are carried from step to step, so each step costs
one position of the encoder and of the decoder.

NOTE (front end): the log-mel is computed once over the whole padded audio and sliced into
``MEL_FRAMES_PER_TOKEN`` frames per step, which is exactly what the full-utterance forward (and
training) sees. The STFT is centred, so the last mel frame of audio token ``t`` reaches
``N_FFT / 2 - HOP_LENGTH`` = 40 samples (2.5 ms, the tokenizer's ``streaming_look_ahead_ms``) into
token ``t + 1``: a live front end has to wait for that look-ahead, and cutting the audio per token
instead changes the features (transformers' processor streams overlapping chunks of
``num_samples_per_audio_chunk`` samples for this reason). After the front end all is causal.

Batches hold utterances of different lengths right-padded with silence: every layer is causal,
so padding after an utterance cannot change its outputs, and each row simply stops at its own
end. One delay per call (transformers takes one delay embedding per forward).

``parse_stream`` is the pure bookkeeping half: generated ids → transcript and words, each dated
by its group's ``[W]`` (``vrt_finetune.targets`` read backwards). ``greedy_decode``'s ``on_token``
hands each id to the caller as it is decided (``vrt-transcribe`` prints the transcript from it
while decoding goes on).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import VoxtralRealtimeForConditionalGeneration

from vrt_finetune import constants as C
from vrt_finetune.features import LogMel
from vrt_finetune.prompt import pad_audio, streaming_prompt
from vrt_finetune.tokenizer import StreamingTokenizer

log = logging.getLogger(__name__)

OnToken = Callable[[int, int], None]
"""``on_token(utterance, token_id)``: called with each generated id as it is decided (EOS
included), in stream order per utterance; ``utterance`` is the index into ``audios``."""


@dataclass(frozen=True)
class DecodedWord:
    """One transcribed word and when its group's ``[W]`` was written."""

    word: str
    frame: int
    """Stream position ``p`` of the group's ``[W]`` (prompt included: the first generated id
    sits at ``p = L + d + 1``)."""
    emitted_at: float
    """``(p - L) × 80 ms`` in seconds: speech time at which the model wrote the ``[W]`` (the
    audio it had seen then)."""
    ended_at_estimate: float
    """``(p - L - d) × 80 ms`` in seconds: the group's end as the target rule dates it (exact to
    one frame unless the group waited behind an earlier one)."""


@dataclass(frozen=True)
class Decoded:
    """The decoding of one utterance."""

    ids: list[int]
    """Generated ids, stream positions ``L + d + 1`` onwards; ends with EOS if one was written."""
    text: str
    """Transcript: the text ids decoded as one run (groups join with the tokenizer's own spaces),
    stripped."""
    words: list[DecodedWord]
    """Whitespace-separated words of ``text`` in order, each with its group's ``[W]`` position."""


def _speech_seconds(tokens: int) -> float:
    # integer ms first: 3 * 0.08 is 0.24000000000000002, 3 * 80 / 1000 is 0.24
    return tokens * C.TOKEN_MS / 1000


def parse_stream(ids: Sequence[int], tokenizer: StreamingTokenizer, delay_ms: int) -> Decoded:
    """Turn a generated id stream into a transcript and dated words (pure, no model).

    ``ids[i]`` sits at stream position ``L + d + 1 + i``. A ``[W]`` opens a group; the text ids
    after it, up to the next ``[W]``, are the group's (``[P]`` and other control ids inside are
    skipped, so a group the model writes with gaps still reads as one run). EOS ends the stream;
    ids after it are dropped. Each word of the transcript takes the ``[W]`` position of the group
    holding its last character, so a word split across two groups is dated when it was completed.
    Text written before any ``[W]`` is dated at its first id.

    Args:
        ids: generated ids, without the prompt.
        tokenizer: gives ``[W]``, EOS, ``L`` and the decoding.
        delay_ms: the delay the stream was decoded at (validated).

    Returns:
        ``Decoded`` with ``ids`` cut after EOS.
    """
    d = C.check_delay_ms(delay_ms)
    n_left = tokenizer.n_left_pad_tokens
    start = 1 + n_left + d  # stream position of ids[0]: just past the prompt
    kept: list[int] = []
    groups: list[tuple[int, list[int]]] = []  # ([W] position, text ids)
    for i, token in enumerate(ids):
        kept.append(int(token))
        if token == tokenizer.eos_id:
            break
        if token == tokenizer.word_id:
            groups.append((start + i, []))
        elif not tokenizer.is_special(token):
            if not groups:
                groups.append((start + i, []))
            groups[-1][1].append(int(token))

    # Character offset in the transcript at which each group's text ends. Decoding prefixes
    # (not groups one by one) keeps offsets right where the BPE joins groups without a space.
    prefix: list[int] = []
    group_ends: list[int] = []
    for _, group_ids in groups:
        prefix += group_ids
        group_ends.append(len(tokenizer.decode(prefix)) if group_ids else (group_ends or [0])[-1])
    text = tokenizer.decode(prefix)

    words = []
    for match in re.finditer(r"\S+", text):
        # the first group whose text reaches the word's last character; a byte-level split of a
        # multi-byte character can shift offsets by one, hence the fallback to the last group
        k = next((k for k, end in enumerate(group_ends) if end >= match.end()), len(groups) - 1)
        p = groups[k][0]
        words.append(
            DecodedWord(
                word=match.group(),
                frame=p,
                emitted_at=_speech_seconds(p - n_left),
                ended_at_estimate=_speech_seconds(p - n_left - d),
            )
        )
    return Decoded(ids=kept, text=text.strip(), words=words)


class StreamingSession:
    """One batch's frame-synchronous pass through the model, one audio token per position.

    Holds the three caches transformers' model returns (decoder ``cache``, ``encoder_cache``,
    ``padding_cache``) and the stream position; ``prefill`` then ``step`` feed the ids of
    consecutive positions together with the matching audio tokens.

    Args:
        model: in eval mode.
        features: ``(B, 128, n_audio_tokens * 8)`` log-mel of the padded audio, on the model's
            device and in its dtype.
        delay_tokens: ``d``, fed to the delay embedding.
    """

    def __init__(
        self,
        model: VoxtralRealtimeForConditionalGeneration,
        features: torch.Tensor,
        delay_tokens: int,
    ) -> None:
        if features.shape[-1] % C.MEL_FRAMES_PER_TOKEN:
            raise ValueError(f"{features.shape[-1]} mel frames is not a whole number of tokens")
        self.model = model
        self.features = features
        self.delay_tokens = delay_tokens
        self.n_audio_tokens = features.shape[-1] // C.MEL_FRAMES_PER_TOKEN
        self.position = 0  # next stream position to feed = next audio token
        self._caches: dict[str, object] = {}

    @torch.inference_mode()
    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        end = self.position + ids.shape[1]
        if end > self.n_audio_tokens:
            raise ValueError(f"position {end - 1} is past the audio ({self.n_audio_tokens} tokens)")
        frames = slice(self.position * C.MEL_FRAMES_PER_TOKEN, end * C.MEL_FRAMES_PER_TOKEN)
        out = self.model(
            input_ids=ids,
            input_features=self.features[:, :, frames],
            use_cache=True,
            num_delay_tokens=self.delay_tokens,
            logits_to_keep=1,
            **self._caches,
        )
        # None on the first call: the model then creates all three (conv padding starts at zero,
        # as in the full forward)
        self._caches = {
            "cache": out.cache,
            "encoder_cache": out.encoder_cache,
            "padding_cache": out.padding_cache,
        }
        self.position = end
        return out.logits[:, -1].float()

    def prefill(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """Feed the prompt over the first audio tokens.

        Args:
            prompt_ids: ``(B, P)`` int64.

        Returns:
            ``(B, vocab)`` float32 logits for position ``P``.
        """
        if self.position:
            raise RuntimeError("prefill must come first")
        return self._forward(prompt_ids)

    def step(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Feed one id per row at the current position, with that position's audio token.

        Args:
            token_ids: ``(B,)`` int64.

        Returns:
            ``(B, vocab)`` float32 logits for the next position.
        """
        return self._forward(token_ids[:, None])


def _decode_batch(
    model: VoxtralRealtimeForConditionalGeneration,
    tokenizer: StreamingTokenizer,
    padded: list[np.ndarray],
    delay_ms: int,
    limits: list[int],
    log_mel: LogMel,
    on_token: OnToken | None = None,
) -> list[list[int]]:
    """Greedy ids for a batch of padded utterances; row ``b`` stops after ``limits[b]`` or EOS.
    ``on_token(b, id)`` sees each kept id of row ``b`` as soon as it is decided."""
    device = next(model.parameters()).device
    wav = torch.zeros(len(padded), max(len(a) for a in padded))  # right pad = more silence
    for b, audio in enumerate(padded):
        wav[b, : len(audio)] = torch.from_numpy(audio)
    # reflect padding of the centred STFT only ever sees trailing silence, batched or not
    features = log_mel(wav.to(device)).to(model.dtype)  # (B, 128, n_max * 8)
    session = StreamingSession(model, features, C.check_delay_ms(delay_ms))
    prompt = torch.tensor([streaming_prompt(tokenizer, delay_ms)] * len(padded), device=device)
    logits = session.prefill(prompt)
    out: list[list[int]] = [[] for _ in padded]
    done = [False] * len(padded)
    while True:
        next_ids = logits.argmax(-1)  # (B,)
        for b, token in enumerate(next_ids.tolist()):
            if not done[b]:
                out[b].append(token)
                done[b] = token == tokenizer.eos_id or len(out[b]) >= limits[b]
                if on_token is not None:
                    on_token(b, token)
        if all(done):
            return out
        # finished rows keep stepping (their outputs are dropped): the batch shares one position
        logits = session.step(next_ids)


def greedy_decode(
    model: VoxtralRealtimeForConditionalGeneration,
    tokenizer: StreamingTokenizer,
    audios: list[np.ndarray],
    delay_ms: int,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    on_token: OnToken | None = None,
) -> list[Decoded]:
    """Transcribe utterances with greedy frame-synchronous streaming decoding.

    Each utterance is padded the offline way (``pad_audio``: ``L`` silent tokens before,
    ``(d + 1) + 10`` after) and decoded up to its padded audio's second-to-last token (where
    transformers and vLLM stop, and training's last label sits) or EOS. Utterances are batched
    by length (longest first) to waste few steps on padding; results keep input order.

    Args:
        model: a Voxtral Realtime model; put in eval mode for the call, then restored.
        tokenizer: the model's tokenizer (prompt, ``L``, ids).
        audios: ``(T_i,)`` float 16 kHz mono waveforms.
        delay_ms: transcription delay, 80-2400 ms in 80 ms steps.
        max_new_tokens: cap on generated ids per utterance (default: to the end of the audio,
            ``ceil(T_i / 1280) + 10`` ids).
        batch_size: utterances per forward.
        on_token: called with ``(index into audios, id)`` for each generated id as it is
            decided (the ids ``Decoded.ids`` ends up with), e.g. to show a transcript while it
            is written; with ``batch_size > 1`` the utterances of a batch interleave.

    Returns:
        one ``Decoded`` per input audio, in input order.

    Raises:
        ValueError: bad delay, audio that is not 1-D, or a non-positive size.
    """
    d = C.check_delay_ms(delay_ms)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}")
    for i, audio in enumerate(audios):
        if np.ndim(audio) != 1 or len(audio) == 0:
            raise ValueError(f"audio {i} must be a non-empty 1-D waveform, got {np.shape(audio)}")

    n_left = tokenizer.n_left_pad_tokens
    prompt_len = 1 + n_left + d
    padded = [pad_audio(np.asarray(a, dtype=np.float32), n_left, delay_ms) for a in audios]
    # one id per audio token after the prompt but the last (module docstring)
    limits = [len(a) // C.SAMPLES_PER_TOKEN - prompt_len for a in padded]
    if max_new_tokens is not None:
        limits = [min(n, max_new_tokens) for n in limits]

    order = sorted(range(len(audios)), key=lambda i: -len(padded[i]))
    ids: list[list[int]] = [[] for _ in audios]
    log_mel = LogMel().to(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        for first in range(0, len(order), batch_size):
            batch = order[first : first + batch_size]
            rows = _decode_batch(
                model,
                tokenizer,
                [padded[i] for i in batch],
                delay_ms,
                [limits[i] for i in batch],
                log_mel,
                None if on_token is None else lambda b, t, batch=batch: on_token(batch[b], t),
            )
            for i, row in zip(batch, rows, strict=True):
                ids[i] = row
    finally:
        model.train(was_training)
    log.debug("decoded %d utterances, %d ids", len(audios), sum(map(len, ids)))
    return [parse_stream(row, tokenizer, delay_ms) for row in ids]
