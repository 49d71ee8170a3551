"""Chunked CE + z-loss equals the full-logits reference, in value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from vrt_finetune.layout import IGNORE_INDEX
from vrt_finetune.loss import lm_loss


def reference(hidden, weight, labels, z_coef, pad_id, pad_weight):
    mask = labels != IGNORE_INDEX
    logits = (hidden[mask] @ weight.T).double()
    y = labels[mask]
    w = torch.ones_like(y, dtype=torch.float64)
    w[y == pad_id] = pad_weight
    ce = (w * F.cross_entropy(logits, y, reduction="none")).sum() / w.sum()
    z = logits.logsumexp(-1).square().mean()
    return ce + z_coef * z, ce, z


def _inputs(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(3, 11, 16, generator=g, dtype=dtype, requires_grad=True)
    weight = torch.randn(40, 16, generator=g, dtype=dtype, requires_grad=True)
    labels = torch.randint(0, 40, (3, 11), generator=g)
    labels[:, :4] = IGNORE_INDEX  # prompt
    labels[2, 8:] = IGNORE_INDEX  # right padding
    labels[0, 5:8] = 7  # some [P] targets
    return hidden, weight, labels


@pytest.mark.parametrize("chunk", [1, 5, 1000])
@pytest.mark.parametrize(("z_coef", "pad_weight"), [(1e-4, 1.0), (0.1, 0.3), (0.0, 0.0)])
def test_matches_reference(chunk: int, z_coef: float, pad_weight: float) -> None:
    hidden, weight, labels = _inputs()
    out = lm_loss(
        hidden, weight, labels, z_loss_coef=z_coef, pad_id=7, pad_weight=pad_weight,
        chunk_tokens=chunk,
    )  # fmt: skip
    ref, ce, z = reference(hidden, weight, labels, z_coef, 7, pad_weight)
    torch.testing.assert_close(out.loss, ref)
    torch.testing.assert_close(out.ce, ce)
    torch.testing.assert_close(out.z_loss, z)
    assert out.n_tokens == int((labels != IGNORE_INDEX).sum())
    assert not out.ce.requires_grad and not out.z_loss.requires_grad
    got = torch.autograd.grad(out.loss * 3.0, [hidden, weight])  # grad_output is honoured
    want = torch.autograd.grad(ref * 3.0, [hidden, weight])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_frozen_head_gets_no_gradient_and_fp32_logits_from_bf16() -> None:
    hidden, weight, labels = _inputs(torch.bfloat16)
    frozen = weight.detach()
    out = lm_loss(hidden, frozen, labels, chunk_tokens=4)
    (grad,) = torch.autograd.grad(out.loss, [hidden])
    assert grad.dtype == torch.bfloat16 and out.loss.dtype == torch.float32
    ref, _, _ = reference(hidden.float(), frozen.float(), labels, 1e-4, None, 1.0)
    torch.testing.assert_close(out.loss, ref.float(), rtol=2e-2, atol=2e-2)


def test_no_targets_is_zero_but_connected() -> None:
    hidden, weight, labels = _inputs()
    out = lm_loss(hidden, weight, torch.full_like(labels, IGNORE_INDEX))
    assert out.loss.item() == 0.0 and out.n_tokens == 0
    out.loss.backward()
    assert hidden.grad is not None and not hidden.grad.any()


@pytest.mark.parametrize("no_grad", [torch.no_grad, torch.inference_mode])
def test_no_gradient_work_when_grad_mode_is_off(no_grad) -> None:
    """Validation (grad mode off) with a trainable head: the forward matmuls only, same values.

    ``needs_input_grad`` follows ``requires_grad``, which a trainable head keeps under
    ``no_grad``: the head's fp32 ``vocab × hidden`` gradient would be one more matmul per chunk.
    """
    hidden, weight, labels = _inputs(torch.float32)
    n, (v, h) = int((labels != IGNORE_INDEX).sum()), weight.shape
    forward_flops = 2 * n * v * h  # hidden @ weight.T
    with FlopCounterMode(display=False) as flops:
        train = lm_loss(hidden, weight, labels, chunk_tokens=4)
    assert flops.get_total_flops() == 3 * forward_flops  # + ∂/∂hidden and ∂/∂weight in the pass
    with no_grad(), FlopCounterMode(display=False) as flops:
        val = lm_loss(hidden, weight, labels, chunk_tokens=4)
    assert weight.requires_grad and hidden.requires_grad
    assert flops.get_total_flops() == forward_flops
    assert not val.loss.requires_grad
    assert torch.equal(val.loss, train.loss.detach())
    assert torch.equal(val.ce, train.ce) and torch.equal(val.z_loss, train.z_loss)


def test_fp16_hidden_survives_the_grad_scalers_scale() -> None:
    """``precision: 16-mixed`` on an fp16 model: GradScaler's 65536 must not become fp16 inf.

    The backward is ``grad_h × grad_loss``; 65536 is past fp16's largest finite value (65504),
    so the product is taken in fp32 and only then cast to the hidden states' dtype.
    """
    hidden, weight, labels = _inputs(torch.float32, seed=1)
    weight = weight.detach() * 0.25  # frozen head; keeps 65536 × the gradient below 65504
    hidden16 = hidden.detach().half().requires_grad_()
    scaler = torch.amp.GradScaler("cpu")
    assert scaler.get_scale() == 65536.0  # the default, as Lightning's 16-mixed creates it
    out = lm_loss(hidden16, weight.half(), labels, chunk_tokens=4)
    scaler.scale(out.loss).backward()
    got = hidden16.grad
    assert got.dtype == torch.float16
    assert got.isfinite().all(), f"{(~got.isfinite()).sum()} non-finite gradient entries"

    hidden32 = hidden16.detach().float().requires_grad_()  # the same (fp16-rounded) inputs
    ref, _, _ = reference(hidden32, weight.half().float(), labels, 1e-4, None, 1.0)
    (want,) = torch.autograd.grad(ref * 65536.0, [hidden32])
    assert want.abs().max() < torch.finfo(torch.float16).max  # representable: finite is right
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2 * want.abs().max().item())
