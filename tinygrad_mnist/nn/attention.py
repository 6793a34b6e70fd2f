"""nn.MultiheadAttention with torch.nn's parameters, masks and return values.

    mha = nn.MultiheadAttention(embed_dim=16, num_heads=4, batch_first=True)
    out, weights = mha(x, x, x, key_padding_mask=pad)   # x (N, L, 16); weights (N, L, L), averaged over heads

Built from recorded tensor ops (linear, matmul, softmax, dropout), like F.scaled_dot_product_attention.
"""

from __future__ import annotations

import math

import numpy as np

from ..engine import Tensor
from . import functional as F
from . import init
from .modules import Linear, Module, Parameter, _float_dtype


class MultiheadAttention(Module):
    """Attention over num_heads heads of embed_dim // num_heads each, as torch.nn.MultiheadAttention.

    Parameters under PyTorch's names: in_proj_weight (3E, E) and in_proj_bias (3E) hold the query, key and
    value projections stacked in that order (q_proj_weight, k_proj_weight, v_proj_weight instead when
    kdim or vdim differ from embed_dim), out_proj is a Linear(E, E). Initialised as PyTorch does:
    Xavier-uniform projections, zero biases, out_proj.weight U(-1/sqrt(E), 1/sqrt(E)).

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (output, weights or None). Inputs are (L, N, E)
    ((N, L, E) with batch_first) or unbatched (L, E). A bool key_padding_mask (N, S) or attn_mask (L, S) /
    (N * num_heads, L, S) marks with True what may NOT be attended to; float masks are added to the scores.
    is_causal is a hint that attn_mask is the causal mask, as in PyTorch: attn_mask must be given and is used.
    Dropout (dropout=p) acts on the attention weights in training mode. add_bias_kv appends the learned
    bias_k, bias_v (1, 1, E) as one more key and value, add_zero_attn an all-zero one per head (after it),
    both visible to every query, so the weights have S + 1 or S + 2 columns.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, device=None, dtype=None):
        dtype = _float_dtype(dtype, device, "MultiheadAttention")
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        self.embed_dim, self.num_heads, self.dropout = int(embed_dim), int(num_heads), float(dropout)
        self.kdim = self.embed_dim if kdim is None else int(kdim)
        self.vdim = self.embed_dim if vdim is None else int(vdim)
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.head_dim, self.batch_first = self.embed_dim // self.num_heads, bool(batch_first)
        E = self.embed_dim
        # PyTorch's registration order: projections, in_proj_bias, then out_proj (state_dict keys follow it)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.zeros((3 * E, E), dtype))
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.in_proj_weight = None
            self.q_proj_weight = Parameter(np.zeros((E, E), dtype))
            self.k_proj_weight = Parameter(np.zeros((E, self.kdim), dtype))
            self.v_proj_weight = Parameter(np.zeros((E, self.vdim), dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * E, dtype)) if bias else None
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype)
        if add_bias_kv:  # one more key and value, learned, appended to every sequence
            self.bias_k, self.bias_v = Parameter(np.zeros((1, 1, E), dtype)), Parameter(np.zeros((1, 1, E), dtype))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = bool(add_zero_attn)  # one more all-zero key and value per head
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _projections(self):
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            ws = self.in_proj_weight.split(E, 0)
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        bs = (None,) * 3 if self.in_proj_bias is None else self.in_proj_bias.split(E, 0)
        return zip(ws, bs)

    def _check(self, query: Tensor, key: Tensor, value: Tensor) -> bool:
        """Whether the inputs are batched; shape errors name what was expected."""
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"MultiheadAttention: {name} must be a Tensor, got {type(t).__name__}")
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must all be 3-D (batched) or all 2-D "
                             f"(unbatched), got shapes {query.shape}, {key.shape}, {value.shape}")
        dims = (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim))
        for name, t, want in dims:
            if t.shape[-1] != want:
                raise ValueError(f"MultiheadAttention: {name} must have {want} features in its last dimension, "
                                 f"got shape {t.shape}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"MultiheadAttention: key {key.shape} and value {value.shape} must agree but for "
                             f"the last dimension")
        return query.ndim == 3

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        batched = self._check(query, key, value)
        if is_causal and attn_mask is None:
            raise RuntimeError("MultiheadAttention: need attn_mask if specifying the is_causal hint (is_causal=True "
                               "says that attn_mask is the causal mask)")
        if not batched:  # one sequence: a batch of one
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = Tensor(np.asarray(key_padding_mask)) if not isinstance(
                    key_padding_mask, Tensor) else key_padding_mask
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        L, N, E = query.shape
        S, H, hd = key.shape[0], self.num_heads, self.head_dim
        if key.shape[1] != N:
            raise ValueError(f"MultiheadAttention: query has batch size {N} but key and value have {key.shape[1]}")
        bias = self._bias(attn_mask, key_padding_mask, query.dtype, L, S, N)

        # project, then split the heads: (L, N, E) -> (N, H, L, hd)
        q, k, v = (F.linear(t, w, b) for t, (w, b) in zip((query, key, value), self._projections()))
        extra = 0  # keys appended after the S given ones; every query may attend to them
        if self.bias_k is not None:
            k = Tensor.cat([k, self.bias_k.expand(1, N, E)], 0)
            v = Tensor.cat([v, self.bias_v.expand(1, N, E)], 0)
            extra += 1
        q, k, v = (t.reshape(t.shape[0], N, H, hd).permute(1, 2, 0, 3) for t in (q, k, v))
        if self.add_zero_attn:
            zero = Tensor.zeros((N, H, 1, hd), dtype=k.dtype)
            k, v = Tensor.cat([k, zero], 2), Tensor.cat([v, zero], 2)
            extra += 1
        if extra and bias is not None:
            bias = F.pad(bias, (0, extra))
        p = self.dropout if self.training else 0.0
        out, weights = F._attend(q, k, v, bias, p, 1.0 / math.sqrt(hd))
        out = F.linear(out.permute(2, 0, 1, 3).reshape(L, N, E), self.out_proj.weight, self.out_proj.bias)

        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, (weights if batched else weights.squeeze(0))

    def _bias(self, attn_mask, key_padding_mask, dtype, L: int, S: int, N: int):
        """attn_mask and key_padding_mask as one additive bias broadcasting to (N, H, L, S), or None."""
        bias = None
        if attn_mask is not None:
            shape = tuple(attn_mask.shape)
            if shape == (L, S):
                bias = F._mask_bias(attn_mask, dtype, allowed_when_true=False)
            elif shape == (N * self.num_heads, L, S):
                bias = F._mask_bias(attn_mask, dtype, allowed_when_true=False).reshape(N, self.num_heads, L, S)
            else:
                raise ValueError(f"MultiheadAttention: attn_mask must have shape {(L, S)} or "
                                 f"{(N * self.num_heads, L, S)}, got {shape}")
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (N, S):
                raise ValueError(f"MultiheadAttention: expected key_padding_mask of shape {(N, S)}, got "
                                 f"{tuple(key_padding_mask.shape)}")
            pad = F._mask_bias(key_padding_mask, dtype, allowed_when_true=False).reshape(N, 1, 1, S)
            bias = pad if bias is None else bias + pad
        return bias

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
