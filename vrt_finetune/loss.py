"""Training loss from the decoder's final hidden states: cross-entropy + z-loss, in chunks.

Why not ``model(..., labels=...)``: that path projects every position of the batch to the full
vocabulary and keeps the logits for backward. With the released vocabulary (131 072 ids) a batch
of 8 × 400 positions makes 1.7 GB of fp32 logits plus as much again for their gradient, and half
of those positions (the prompt) carry no target. Here only target positions are projected, a
chunk of ``chunk_tokens`` rows at a time, and the gradients w.r.t. the hidden states (and the
head weight, when it trains) are computed in the same pass, so only one chunk of fp32 logits
exists at any time and nothing of vocabulary size is kept for backward. Under ``no_grad`` /
``inference_mode`` (validation) the pass does the forward matmuls only, trainable head or not.

Per target position i with logits x_i (fp32), lse_i = logsumexp(x_i), token weight w_i (1, or
``pad_weight`` for [P] targets)::

    ce     = Σ w_i (lse_i − x_i[y_i]) / Σ w_i
    z_loss = Σ lse_i² / N                       (PaLM's z-loss keeps the log-normaliser near 0)
    loss   = ce + z_loss_coef · z_loss

and the gradient w.r.t. the logits, used in the pass itself::

    ∂loss/∂x_i = softmax(x_i) · (w_i / Σw + 2 · coef · lse_i / N) − onehot(y_i) · w_i / Σw
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vrt_finetune.layout import IGNORE_INDEX


@dataclass
class LossOutput:
    """What one batch's loss computation returns."""

    loss: torch.Tensor
    """Scalar to back-propagate: ``ce + z_loss_coef · z_loss``."""
    ce: torch.Tensor
    """Scalar, detached: weighted mean cross-entropy over target positions."""
    z_loss: torch.Tensor
    """Scalar, detached: mean of ``logsumexp(logits)²`` over target positions."""
    n_tokens: int
    """Target positions in the batch."""
    weight_sum: torch.Tensor
    """Scalar: Σ w_i, to pool ``ce`` exactly across batches (``ce · weight_sum``)."""


class _ChunkedHeadLoss(torch.autograd.Function):
    """Loss of ``hidden @ weight.T`` without materialising all logits; gradients in forward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        hidden: torch.Tensor,  # (N, H) target positions only
        weight: torch.Tensor,  # (V, H) output head (tied to the token embedding)
        targets: torch.Tensor,  # (N,) int64
        token_w: torch.Tensor,  # (N,) float32
        ce_norm: torch.Tensor,  # () Σ w_i
        z_coef: float,
        chunk: int,
        grad_enabled: bool,  # torch.is_grad_enabled() at the call site
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # needs_input_grad follows requires_grad, which a trainable head keeps under no_grad
        # (validation); grad mode itself is always off in here, so the caller passes it in.
        need_h = grad_enabled and ctx.needs_input_grad[0]
        need_w = grad_enabled and ctx.needs_input_grad[1]
        n = hidden.shape[0]
        acc = torch.promote_types(hidden.dtype, torch.float32)
        ce_sum = torch.zeros((), dtype=acc, device=hidden.device)
        z_sum = torch.zeros_like(ce_sum)
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        for start in range(0, n, chunk):
            h = hidden[start : start + chunk]  # (n_c, H)
            y = targets[start : start + chunk]
            w = token_w[start : start + chunk]
            # Same rounding as transformers: the head runs in the model's dtype (bf16 under
            # autocast), the loss maths in fp32 for this chunk only.
            logits = F.linear(h, weight)  # (n_c, V)
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            lse = torch.logsumexp(logits, dim=-1)  # (n_c,)
            ce_sum += (w * (lse - logits.gather(1, y[:, None]).squeeze(1))).sum()
            z_sum += lse.square().sum()
            if not (need_h or need_w):
                continue
            probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place: logits are done
            probs.mul_((w / ce_norm + (2.0 * z_coef / n) * lse)[:, None])
            probs[torch.arange(len(y), device=y.device), y] -= w / ce_norm
            g = probs.to(weight.dtype)  # (n_c, V) ∂loss/∂logits
            if grad_h is not None:
                grad_h[start : start + chunk] = (g @ weight).to(hidden.dtype)
            if grad_w is not None:
                grad_w += (g.T @ h).to(acc)
            del logits, probs, g
        ce = ce_sum / ce_norm
        z = z_sum / n
        loss = ce + z_coef * z
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        ctx.mark_non_differentiable(ce, z)
        return loss, ce, z

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, *_unused: torch.Tensor):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        # grad_loss is 1 / accumulate_grad_batches (or an AMP scale): a scalar multiple. Multiply
        # in its fp32, then cast: GradScaler's 65536 is past fp16's 65504 (inf, then NaN grads).
        gh = None
        if grad_h is not None:
            gh = (grad_h.to(grad_loss.dtype) * grad_loss).to(grad_h.dtype)
        gw = (grad_w * grad_loss).to(ctx.weight_dtype) if grad_w is not None else None
        return gh, gw, None, None, None, None, None, None


def lm_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    z_loss_coef: float = 1e-4,
    pad_id: int | None = None,
    pad_weight: float = 1.0,
    chunk_tokens: int = 1024,
) -> LossOutput:
    """Cross-entropy + z-loss over target positions, from the final hidden states.

    Args:
        hidden: ``(B, S, H)`` decoder output after the final norm (``model.model(...)``).
        weight: ``(V, H)`` output head weight (``lm_head.weight``, tied to the embedding).
        labels: ``(B, S)`` int64 next-token targets, ``IGNORE_INDEX`` where there is none.
        z_loss_coef: weight of the z-loss in ``loss`` (0 turns it off; it is still reported).
        pad_id: id of ``[P]``; with ``pad_weight`` ≠ 1 its targets are weighted so.
        pad_weight: weight of ``[P]`` targets in the cross-entropy (others weigh 1).
        chunk_tokens: target rows projected at once; peak extra memory ≈ chunk × V × 4 bytes × 2.

    Returns:
        :class:`LossOutput`; ``loss`` back-propagates into ``hidden`` and ``weight``.
    """
    if chunk_tokens < 1:
        raise ValueError("chunk_tokens must be at least 1")
    mask = labels != IGNORE_INDEX  # (B, S)
    h = hidden[mask]  # (N, H)
    y = labels[mask]  # (N,)
    n = int(y.shape[0])
    token_w = torch.ones(n, dtype=torch.float32, device=hidden.device)
    if pad_id is not None and pad_weight != 1.0:
        token_w[y == pad_id] = pad_weight
    weight_sum = token_w.sum()
    if n == 0:
        zero = hidden.sum() * 0.0  # keeps every rank's graph connected under DDP
        return LossOutput(zero, zero.detach(), zero.detach(), 0, weight_sum)
    ce_norm = weight_sum.clamp_min(torch.finfo(torch.float32).tiny)
    loss, ce, z = _ChunkedHeadLoss.apply(
        h, weight, y, token_w, ce_norm, z_loss_coef, chunk_tokens, torch.is_grad_enabled()
    )
    return LossOutput(loss, ce, z, n, weight_sum)
