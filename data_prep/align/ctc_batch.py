"""Batched CTC emissions from wav2vec2-family models that match one-utterance forwards.

Padding a batch of waveforms and running one forward pass is only safe when every padded item
gets (almost) the logits it would get alone. Three things in wav2vec2 see the padding:

1. The first convolution of "group norm" feature encoders (wav2vec2-base, including whisperX's
   English default ``WAV2VEC2_ASR_BASE_960H``) normalises each channel over the *whole* time
   axis, so trailing zeros would shift every frame. We run that one layer per item, on the
   item's own samples, and pad its output; the later convolutions have no padding and no
   normalisation across time, so frames inside an item's length only ever see its own samples.
2. The transformer's self-attention and positional convolution: the attention mask (Hugging
   Face) or ``lengths`` (torchaudio) masks padded keys and zeroes padded frames before the
   positional convolution, exactly the zeros a lone utterance's convolution pads with.
3. Waveform normalisation: whisperX feeds raw samples (no ``Wav2Vec2FeatureExtractor``
   normalisation) and MMS_FA layer-normalises over the whole input tensor; either way it is
   done per item before padding (see the backends), never over the padded batch.

What remains is float summation order (different GEMM shapes): per-item logits differ from the
unbatched ones by about 1e-6 in float32, far below what moves a Viterbi decision in practice,
and a batch of one runs exactly the unbatched call. NOTE: on CUDA, TF32 convolutions (PyTorch's
default for cuDNN) widen that to ~1e-3; disable ``torch.backends.cudnn.allow_tf32`` where word
times must match an unbatched run exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

ModelKind = Literal["huggingface", "torchaudio"]
"""``huggingface``: a ``transformers`` CTC model (``model(x).logits``); ``torchaudio``: a
``torchaudio.models.Wav2Vec2Model`` (``model(x, lengths) -> (logits, lengths)``)."""


def plan_batches(
    n_samples: Sequence[int], max_batch_samples: int, batch_size: int, max_padding: float = 1.0
) -> list[list[int]]:
    """Group utterances into forward passes with little padding.

    Items are sorted longest first and taken greedily while the padded batch
    (``count * longest``) stays within ``max_batch_samples``, ``count <= batch_size`` and each
    item is at least ``(1 - max_padding) * longest`` long; an item longer than the budget runs
    alone.

    Args:
        n_samples: Length of each utterance in samples.
        max_batch_samples: Budget of padded samples per forward pass (memory bound).
        batch_size: Most utterances per forward pass.
        max_padding: Largest share of an item's row that may be padding (0: equal lengths only,
            1: any).

    Returns:
        Batches of indices into ``n_samples``; every index appears once.
    """
    order = sorted(range(len(n_samples)), key=lambda i: -n_samples[i])
    batches: list[list[int]] = []
    for i in order:
        last = batches[-1] if batches else None
        if (
            last is not None
            and len(last) < batch_size
            and (len(last) + 1) * n_samples[last[0]] <= max_batch_samples
            and n_samples[i] >= (1.0 - max_padding) * n_samples[last[0]]
        ):
            last.append(i)
        else:
            batches.append([i])
    return batches


def default_max_padding(device: str | torch.device) -> float:
    """How much padding batching is worth on ``device``.

    On a CPU a lone utterance already keeps the cores busy (wav2vec2-base runs its GEMMs at
    ~100 GFLOP/s on 2 cores either way; batched forward passes measured no faster), so padded
    samples are pure extra work: batch only near-equal lengths. A GPU is far from saturated by
    one utterance, so filling it is worth padding.
    """
    return 0.05 if torch.device(device).type == "cpu" else 0.5


def unwrap_torchaudio(model: nn.Module) -> tuple[nn.Module, bool, bool, bool]:
    """Split a torchaudio pipeline model into the bare ``Wav2Vec2Model`` and its extras.

    ``bundle.get_model()`` returns, for some bundles (MMS_FA, the large LV60K/XLSR models), a
    wrapper that layer-normalises the whole input tensor, applies ``log_softmax`` and/or appends
    a zero "star" column. Normalising a padded batch as one tensor would mix utterances, so
    :func:`ctc_logits` applies the extras per item itself.

    Returns:
        ``(inner_model, normalize_waveform, apply_log_softmax, append_star)``.
    """
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module) and hasattr(model, "normalize_waveform"):
        return (
            inner,
            bool(model.normalize_waveform),
            bool(getattr(model, "apply_log_softmax", False)),
            bool(getattr(model, "append_star", False)),
        )
    return model, False, False, False


def _conv_layers(model: nn.Module, kind: ModelKind) -> nn.ModuleList:
    if kind == "huggingface":
        return model.base_model.feature_extractor.conv_layers
    return unwrap_torchaudio(model)[0].feature_extractor.conv_layers


def frame_hop_samples(model: nn.Module, kind: ModelKind) -> int:
    """Samples between consecutive CTC frames: the product of the conv strides (and of a Hugging
    Face adapter's), :data:`~vrt_finetune.constants.SAMPLES_PER_ENCODER_FRAME` for wav2vec2."""
    if kind == "torchaudio":
        return math.prod(layer.stride for layer in _conv_layers(model, kind))
    config = model.config
    hop = math.prod(config.conv_stride)
    if getattr(config, "add_adapter", False):
        hop *= config.adapter_stride**config.num_adapter_layers
    return hop


class _PerItemFirstConv(nn.Module):
    """Runs a feature encoder's first conv layer on each item's own samples (see module doc).

    Input ``(batch, 1, max_samples)``; output ``(batch, channels, frames(max_samples))`` with
    each item's frames beyond its own length left at zero.
    """

    def __init__(self, layer: nn.Module, n_samples: Sequence[int], kind: ModelKind) -> None:
        super().__init__()
        self.layer = layer
        self.n_samples = list(n_samples)
        self.kind = kind

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x) if self.kind == "huggingface" else self.layer(x, None)[0]

    def forward(
        self, x: torch.Tensor, length: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        outs = [self._one(x[i : i + 1, :, :n]) for i, n in enumerate(self.n_samples)]
        n_frames = max(o.shape[-1] for o in outs)
        y = x.new_zeros((x.shape[0], outs[0].shape[1], n_frames))
        for i, o in enumerate(outs):
            y[i, :, : o.shape[-1]] = o[0]
        if self.kind == "huggingface":
            return y
        if length is not None:  # same arithmetic as torchaudio's ConvLayerBlock
            k, s = self.layer.kernel_size, self.layer.stride
            length = torch.clamp(torch.div(length - k, s, rounding_mode="floor") + 1, min=0)
        return y, length


@contextmanager
def _first_conv_per_item(
    model: nn.Module, kind: ModelKind, n_samples: Sequence[int]
) -> Iterator[None]:
    """Temporarily swap in :class:`_PerItemFirstConv` when layer 0 normalises over time.

    NOTE: mutates the model for the duration of one forward pass; do not share a model between
    threads that align concurrently.
    """
    layers = _conv_layers(model, kind)
    first = layers[0]
    if not isinstance(getattr(first, "layer_norm", None), nn.GroupNorm):
        yield
        return
    layers[0] = _PerItemFirstConv(first, n_samples, kind)
    try:
        yield
    finally:
        layers[0] = first


def ctc_logits(
    model: nn.Module, kind: ModelKind, waves: Sequence[torch.Tensor], device: str | torch.device
) -> list[torch.Tensor]:
    """CTC outputs of several utterances from one padded forward pass.

    Args:
        model: Hugging Face ``Wav2Vec2ForCTC``-like model, or torchaudio ``Wav2Vec2Model``
            (bare or as a pipeline wrapper, see :func:`unwrap_torchaudio`), in eval mode on
            ``device``.
        kind: Which of the two calling conventions ``model`` follows.
        waves: Per utterance, the samples exactly as the model would be given them alone,
            shape ``(n_samples_i,)``.
        device: Where ``model`` lives.

    Returns:
        Per utterance, float32 outputs on ``device`` (logits, or log-probabilities for wrappers
        that apply ``log_softmax``) of shape ``(n_frames_i, vocab)``; ``n_frames_i`` is the
        frame count a forward pass of that utterance alone produces.
    """
    with torch.inference_mode():
        if len(waves) == 1:  # exactly the unbatched call
            x = waves[0][None].to(device)
            out = model(x).logits if kind == "huggingface" else model(x)[0]
            return [out[0].float()]
        if kind == "torchaudio":
            return _torchaudio_logits(model, waves, device)
        x, lengths = _pad(waves, device)
        n_samples = lengths.tolist()
        mask = torch.arange(x.shape[1], device=device)[None, :] < lengths[:, None]
        with _first_conv_per_item(model, kind, n_samples):
            logits = model(x, attention_mask=mask.long()).logits
        n_frames = model._get_feat_extract_output_lengths(lengths).tolist()
        return [logits[i, :n].float() for i, n in enumerate(n_frames)]


def ctc_log_probs(
    model: nn.Module, kind: ModelKind, waves: Sequence[torch.Tensor], device: str | torch.device
) -> list[torch.Tensor]:
    """:func:`ctc_logits` as float32 CPU log-probabilities, ``(n_frames_i, vocab)`` per utterance.

    ``log_softmax`` over the vocabulary; on outputs that already are log-probabilities (MMS_FA's
    wrapper) it changes nothing but rounding.
    """
    return [torch.log_softmax(lg, dim=-1).cpu() for lg in ctc_logits(model, kind, waves, device)]


def _pad(
    waves: Sequence[torch.Tensor], device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad with zeros: ``(batch, max_samples)`` and lengths ``(batch,)``."""
    n_samples = [int(w.shape[0]) for w in waves]
    x = torch.zeros((len(waves), max(n_samples)), dtype=waves[0].dtype)
    for i, w in enumerate(waves):
        x[i, : n_samples[i]] = w
    return x.to(device), torch.tensor(n_samples, device=device)


def _torchaudio_logits(
    model: nn.Module, waves: Sequence[torch.Tensor], device: str | torch.device
) -> list[torch.Tensor]:
    inner, normalize, log_softmax, star = unwrap_torchaudio(model)
    if normalize:  # what the wrapper does to a lone utterance: over its own samples only
        waves = [nn.functional.layer_norm(w, w.shape) for w in waves]
    x, lengths = _pad(waves, device)
    with _first_conv_per_item(inner, "torchaudio", lengths.tolist()):
        logits, n_frames = inner(x, lengths)
    if log_softmax:
        logits = torch.log_softmax(logits, dim=-1)
    if star:
        logits = torch.cat([logits, logits.new_zeros((*logits.shape[:2], 1))], dim=-1)
    return [logits[i, :n].float() for i, n in enumerate(n_frames.tolist())]
