"""Building blocks shared by RCF and KDA (method doc §5, reference-implementation §4)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrd.models import native


def init_normal(module: nn.Module, std: float = 0.01) -> None:
    """The reference initialises every Linear/Embedding weight and bias as N(0, 0.01²)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.normal_(m.bias, 0.0, std)


def relational_attention(
    hist: torch.Tensor, mask: torch.Tensor, keys: torch.Tensor, decay: torch.Tensor | None = None
) -> torch.Tensor:
    """One context vector per (candidate, relation type) from attention over the history.

    hist: B x H x d history item embeddings; mask: B x H (True = real item)
    keys: B x C x R x d, (relation + value entity) ⊙ candidate
    decay: B x R x H temporal weights in [0, 1] multiplied into the attention (KDA), or None
    returns B x C x R x d
    """
    b, c, r, d = keys.shape
    logits = torch.bmm(keys.reshape(b, c * r, d), hist.transpose(1, 2)).view(b, c, r, -1)
    logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
    weights = torch.softmax(logits, dim=-1)
    if decay is not None:
        weights = weights * decay[:, None]  # no renormalisation, as in KDA
    return torch.bmm(weights.reshape(b, c * r, -1).to(hist.dtype), hist).view(b, c, r, d)


class ChannelSelfAttention(nn.Module):
    """L rounds of multi-head self-attention across the R relation channels, weights shared by
    all rounds (as in the reference): z = FFN(MHA(x)); x = LayerNorm(x + z).

    One arithmetic in two layouts, each the fastest where it runs (docs/performance.md). Eager:
    tokens x features with torch's fused attention kernel (its plain softmax over rows of R <= 13
    values costs more than the matmuls around it). Compiled (torch.compile): features x tokens,
    so that the R x R attention, its softmax and the LayerNorm become element-wise loops along
    thousands of tokens, which inductor fuses, instead of thousands of tiny matrices. Scoring
    without gradients on a CPU, with `native` set (lrd.train.device.compile_model sets it where
    the kernel builds): one hand-written kernel for all rounds (lrd.models.native).
    """

    native = False

    def __init__(self, d: int, heads: int, layers: int):
        super().__init__()
        if d % heads:
            raise ValueError(f"embedding size {d} must be divisible by the number of heads {heads}")
        self.heads, self.layers = heads, layers
        self.qkv = nn.Linear(d, 3 * d, bias=False)  # one wide matmul instead of three thin ones
        self.ff1 = nn.Linear(d, d)
        self.ff2 = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x R x d -> N x R x d."""
        d = x.shape[-1]
        # Under autocast every op would cast its inputs again; run the block in one dtype
        # instead (the autocast dtype, weights cast once per call) with autocast off.
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        with torch.autocast(x.device.type, enabled=False):
            w_qkv = self.qkv.weight.to(dtype)
            w_qkv = torch.cat([w_qkv[:d] / math.sqrt(d // self.heads), w_qkv[d:]])  # fold the 1/sqrt(dk) scale into W_q
            weights = (w_qkv, *(t.to(dtype) for t in (self.ff1.weight, self.ff1.bias, self.ff2.weight, self.ff2.bias,
                                                      self.norm.weight, self.norm.bias)))
            if self.native and not torch.is_grad_enabled() and native.supports(x.shape[1], d, self.heads) \
                    and dtype == torch.float32 and x.device.type == "cpu":
                return native.channel_block(x.float(), weights, self.heads, self.layers, self.norm.eps)
            if torch.compiler.is_compiling():
                return self._features_by_tokens(x.to(dtype), weights)
            return self._tokens_by_features(x.to(dtype), weights)

    def _tokens_by_features(self, x: torch.Tensor, weights: tuple) -> torch.Tensor:
        n, r, d = x.shape
        w_qkv, w1, b1, w2, b2, g, beta = weights
        for _ in range(self.layers):
            q, k, v = F.linear(x, w_qkv).view(n, r, 3, self.heads, d // self.heads).unbind(2)  # N x R x heads x dk
            z = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=1.0)
            z = F.linear(F.relu(F.linear(z.transpose(1, 2).reshape(n, r, d), w1, b1)), w2, b2)
            x = F.layer_norm(x + z, (d,), g, beta, self.norm.eps)
        return x

    def _features_by_tokens(self, x: torch.Tensor, weights: tuple, lanes: int = 16) -> torch.Tensor:
        """Tokens in groups of `lanes` (one AVX-512 register of fp32): features x groups x R x lanes,
        so that the attention's loops finish one group's R x R x lanes values while they are in
        cache (1.2x the ungrouped layout in training); the sequences padded to whole groups."""
        n, r, d = x.shape
        w_qkv, w1, b1, w2, b2, g, beta = weights
        groups = -(-n // lanes)
        x = F.pad(x, (0, 0, 0, 0, 0, groups * lanes - n))
        xt = x.view(groups, lanes, r, d).permute(3, 0, 2, 1).reshape(d, -1)  # d x (groups R lanes)
        for _ in range(self.layers):
            q, k, v = (w_qkv @ xt).view(3, self.heads, d // self.heads, groups, r, lanes)
            att = torch.softmax((q[:, :, :, :, None] * k[:, :, :, None]).sum(1).float(), dim=3).to(x.dtype)  # heads x groups x R x R x lanes
            z = (att[:, None] * v[:, :, :, None]).sum(4).reshape(d, -1)
            z = torch.addmm(b2[:, None], w2, F.relu(torch.addmm(b1[:, None], w1, z)))
            xt = xt + z
            mean = xt.mean(0)
            var = (xt - mean).square().mean(0)  # biased, as layer_norm
            xt = (xt - mean) * torch.rsqrt(var + self.norm.eps) * g[:, None] + beta[:, None]
        return xt.view(d, groups, r, lanes).permute(1, 3, 2, 0).reshape(groups * lanes, r, d)[:n]


class TemporalKernel(nn.Module):
    """KDA's per-relation decay of the time gap, learned in the frequency domain.

    D_r(τ) = clamp(1/(2F) Σ_k [Re_rk cos(2π f_k τ) − Im_rk sin(2π f_k τ)], 0, 1),
    f_k = k / (2(F−1)), F = n_dft/2 + 1.

    Initialised N(0, 0.01²), then, where `spectra` (R x F complex, lrd.temporal.gap_spectra)
    has a non-zero row, from the spectrum of that relation type's empirical gap distribution.
    """

    def __init__(self, n_relations: int, n_dft: int = 64, spectra: np.ndarray | None = None):
        super().__init__()
        f = n_dft // 2 + 1
        self.real = nn.Parameter(torch.randn(n_relations, f) * 0.01)
        self.imag = nn.Parameter(torch.randn(n_relations, f) * 0.01)
        if spectra is not None:
            rows = torch.from_numpy(np.flatnonzero(np.abs(spectra).sum(1) > 0))
            with torch.no_grad():
                self.real[rows] = torch.from_numpy(spectra.real).float()[rows]
                self.imag[rows] = torch.from_numpy(spectra.imag).float()[rows]
        self.register_buffer("freqs", torch.arange(f, dtype=torch.float32) / (2 * (f - 1)), persistent=False)

    def forward(self, gaps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """gaps, mask: B x H -> decay B x R x H (0 on padding)."""
        angle = 2 * math.pi * gaps.float()[..., None] * self.freqs  # B x H x F
        f = self.real.shape[1]
        decay = (torch.cos(angle) @ self.real.t() - torch.sin(angle) @ self.imag.t()) / (2 * f)
        return (decay.clamp(0, 1) * mask[..., None]).transpose(1, 2)
