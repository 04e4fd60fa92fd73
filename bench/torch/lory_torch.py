"""
Lory in PyTorch, written from the paper (Zhong, Xia, Chen, Lewis 2024, arXiv 2405.03133), not from
lory's code: the independent implementation that lory's golden tensors come from
(src/model/golden/generate_golden.py, float64) and that `npm run bench:torch` trains against lory
(bench/torch/train_worker.py, float32). Needs Debian's python3-torch (1.13); lory itself never runs Python.

The model: LLaMA-style decoder (pre-norm RMSNorm, rotary embeddings in the rotate-half layout, causal
multi-head attention, SwiGLU FFN, untied embeddings, no biases); with experts > 1 every FFN is a Lory
MoE layer: experts merged in parameter space per segment of T tokens, routing weights of segment k
from the mean FFN input of segment k-1, segment 1 from its own mean with the gradient stopped.

Works in whatever dtype the parameters have: the generator sets float64 as the default dtype before
building the model, the bench builds it in float32.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class Config:
    def __init__(self, vocab, d, layers, heads, dff, experts, segment, eps=1e-5, rope_base=10000.0):
        self.vocab, self.d, self.layers, self.heads, self.dff = vocab, d, layers, heads, dff
        self.experts, self.segment, self.eps, self.rope_base = experts, segment, eps, rope_base


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rotary(x, base):
    """x: (B, H, S, hd). Rotate-half RoPE: pairs (i, i + hd/2) rotated by pos * base^(-2i/hd).
    Angles in float64 (as lory's tables), then the dtype of x."""
    S, hd = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    angles = torch.outer(torch.arange(S, dtype=torch.float64), inv_freq)  # (S, hd/2)
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1).to(x.dtype)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1).to(x.dtype)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wq = nn.Linear(cfg.d, cfg.d, bias=False)
        self.wk = nn.Linear(cfg.d, cfg.d, bias=False)
        self.wv = nn.Linear(cfg.d, cfg.d, bias=False)
        self.wo = nn.Linear(cfg.d, cfg.d, bias=False)

    def forward(self, x):
        B, S, d = x.shape
        H = self.cfg.heads
        split = lambda t: t.view(B, S, H, d // H).transpose(1, 2)
        q = rotary(split(self.wq(x)), self.cfg.rope_base)
        k = rotary(split(self.wk(x)), self.cfg.rope_base)
        v = split(self.wv(x))
        att = q @ k.transpose(-2, -1) / math.sqrt(d // H)
        future = torch.triu(torch.ones(S, S, dtype=torch.bool), diagonal=1)
        att = att.masked_fill(future, float("-inf")).softmax(dim=-1)
        return self.wo((att @ v).transpose(1, 2).reshape(B, S, d))


class SwiGLU(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.w_gate = nn.Linear(cfg.d, cfg.dff, bias=False)
        self.w_up = nn.Linear(cfg.d, cfg.dff, bias=False)
        self.w_down = nn.Linear(cfg.dff, cfg.d, bias=False)

    def forward(self, x):
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class LoryMoE(nn.Module):
    """Experts stored like nn.Linear weights, (out, in), stacked on a leading expert axis."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        E, d, f = cfg.experts, cfg.d, cfg.dff
        self.router = nn.Linear(d, E, bias=False)
        self.w_gate = nn.Parameter(torch.empty(E, f, d))
        self.w_up = nn.Parameter(torch.empty(E, f, d))
        self.w_down = nn.Parameter(torch.empty(E, d, f))
        self.last_weights = None

    def merged_ffn(self, x, e):
        """x: (G, T, d), e: (G, E): one FFN per group with weights sum_i e_i * theta_i."""
        gate = torch.einsum("ge,efd->gfd", e, self.w_gate)
        up = torch.einsum("ge,efd->gfd", e, self.w_up)
        down = torch.einsum("ge,edf->gdf", e, self.w_down)
        h = F.silu(torch.bmm(x, gate.transpose(1, 2))) * torch.bmm(x, up.transpose(1, 2))
        return torch.bmm(h, down.transpose(1, 2))

    def forward(self, x, routing="segment"):
        B, L, d = x.shape
        if routing == "prompt":
            e = self.router(x.mean(dim=1)).softmax(dim=-1)  # (B, E)
            self.last_weights = e
            return self.merged_ffn(x, e)
        T = self.cfg.segment
        N = L // T
        segs = x.reshape(B * N, T, d)
        probs = self.router(segs.mean(dim=1)).softmax(dim=-1).view(B, N, -1)
        # segment k is served by the weights computed from segment k-1; segment 1 by its own, detached
        e = torch.cat([probs[:, :1].detach(), probs[:, :-1]], dim=1)
        self.last_weights = e
        return self.merged_ffn(segs, e.reshape(B * N, -1)).view(B, L, d)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.attn_norm = nn.Parameter(torch.ones(cfg.d))
        self.attn = Attention(cfg)
        self.ffn_norm = nn.Parameter(torch.ones(cfg.d))
        self.ffn = LoryMoE(cfg) if cfg.experts > 1 else SwiGLU(cfg)

    def forward(self, x, routing):
        x = x + self.attn(rms_norm(x, self.attn_norm, self.cfg.eps))
        h = rms_norm(x, self.ffn_norm, self.cfg.eps)
        return x + (self.ffn(h, routing) if isinstance(self.ffn, LoryMoE) else self.ffn(h))


class LoryLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.d)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.layers)])
        self.final_norm = nn.Parameter(torch.ones(cfg.d))
        self.lm_head = nn.Linear(cfg.d, cfg.vocab, bias=False)

    def forward(self, tokens, routing="segment"):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, routing)
        return self.lm_head(rms_norm(x, self.final_norm, self.cfg.eps))

    def lory_tensors(self, of=lambda p: p):
        """{lory parameter name: tensor in lory's layout}; `of` picks the weight or its gradient.
        With the default `of` the tensors are views of the parameters (load_lory_tensors writes through them)."""
        t = lambda lin: of(lin.weight).t()  # nn.Linear (out, in) -> lory (in, out)
        out = {"embed": of(self.embed.weight)}
        for l, b in enumerate(self.blocks):
            out[f"layers.{l}.attn_norm"] = of(b.attn_norm)
            for w in ["wq", "wk", "wv", "wo"]:
                out[f"layers.{l}.attn.{w}"] = t(getattr(b.attn, w))
            out[f"layers.{l}.ffn_norm"] = of(b.ffn_norm)
            if isinstance(b.ffn, LoryMoE):
                out[f"layers.{l}.ffn.router"] = t(b.ffn.router)
                for w in ["w_gate", "w_up", "w_down"]:
                    out[f"layers.{l}.ffn.{w}"] = of(getattr(b.ffn, w)).transpose(1, 2)  # (E, out, in) -> (E, in, out)
            else:
                for w in ["w_gate", "w_up", "w_down"]:
                    out[f"layers.{l}.ffn.{w}"] = t(getattr(b.ffn, w))
        out["final_norm"] = of(self.final_norm)
        out["lm_head"] = t(self.lm_head)
        return out

    def load_lory_tensors(self, tensors):
        """Copy {lory name: tensor in lory's layout} into the parameters; every parameter must be given."""
        views = self.lory_tensors()
        missing = sorted(set(views) - set(tensors))
        extra = sorted(set(tensors) - set(views))
        if missing or extra:
            raise ValueError(f"lory weights do not fit the model: missing {missing[:3]}, unexpected {extra[:3]}")
        with torch.no_grad():
            for name, view in views.items():
                src = tensors[name]
                if tuple(src.shape) != tuple(view.shape):
                    raise ValueError(f"lory weight {name}: shape {tuple(src.shape)}, the model wants {tuple(view.shape)}")
                view.copy_(src)

    def param_groups(self, weight_decay):
        """lory's AdamW groups (src/model/params.ts): matrices decay; norm scales and the input embedding do not."""
        no_decay = {id(self.embed.weight), id(self.final_norm)}
        for b in self.blocks:
            no_decay |= {id(b.attn_norm), id(b.ffn_norm)}
        params = list(self.parameters())
        return [
            {"params": [p for p in params if id(p) not in no_decay], "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0},
        ]
