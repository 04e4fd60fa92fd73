#!/usr/bin/python3
"""
Golden tensors for lory's model tests, from an independent PyTorch implementation of Lory
(Zhong, Xia, Chen, Lewis 2024, arXiv 2405.03133), written from the paper, not from lory's code.

    /usr/bin/python3 src/model/golden/generate_golden.py      # Debian: apt-get install python3-torch

writes src/model/golden/golden.json: for each case the config, the batch, every weight (under lory's
parameter names and [in, out] layout), and the float64 results: logits, loss, the gradient of the loss
w.r.t. every weight, and the routing weights each segment was served with. src/model/golden.test.ts
loads the weights into lory's graph and compares. Only test tooling: lory never runs Python.

The model: LLaMA-style decoder (pre-norm RMSNorm, rotary embeddings in the rotate-half layout, causal
multi-head attention, SwiGLU FFN, untied embeddings, no biases); every FFN a Lory MoE layer:
experts merged in parameter space per segment of T tokens, routing weights of segment k from the
mean FFN input of segment k-1, segment 1 from its own mean with the gradient stopped.
"""
import base64
import json
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

torch.set_default_dtype(torch.float64)


class Config:
    def __init__(self, vocab, d, layers, heads, dff, experts, segment, eps=1e-5, rope_base=10000.0):
        self.vocab, self.d, self.layers, self.heads, self.dff = vocab, d, layers, heads, dff
        self.experts, self.segment, self.eps, self.rope_base = experts, segment, eps, rope_base


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rotary(x, base):
    """x: (B, H, S, hd). Rotate-half RoPE: pairs (i, i + hd/2) rotated by pos * base^(-2i/hd)."""
    S, hd = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    angles = torch.outer(torch.arange(S, dtype=torch.float64), inv_freq)  # (S, hd/2)
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1)
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
        """{lory parameter name: tensor in lory's layout}; `of` picks the weight or its gradient."""
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


def init(model, gen):
    """Weights scaled so that routing is far from uniform and every path matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif "router" in name:
                p.copy_(2.0 * torch.randn(p.shape, generator=gen))
            elif "embed" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]))


def b64(t):
    return base64.b64encode(t.detach().contiguous().to(torch.float64).numpy().astype("<f8").tobytes()).decode("ascii")


def enc(t):
    return {"shape": list(t.shape), "f64": b64(t)}


def run_case(name, cfg, batch, seq, seed):
    gen = torch.Generator().manual_seed(seed)
    model = LoryLM(cfg)
    init(model, gen)
    tokens = torch.randint(0, cfg.vocab, (batch, seq), generator=gen)
    targets = torch.randint(0, cfg.vocab, (batch, seq), generator=gen)
    logits = model(tokens)
    loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), targets.reshape(-1))
    loss.backward()
    moe = cfg.experts > 1
    case = {
        "name": name,
        "model": {
            "vocab_size": cfg.vocab, "d_model": cfg.d, "n_layers": cfg.layers, "n_heads": cfg.heads, "d_ff": cfg.dff,
            "experts": cfg.experts, "segment_length": cfg.segment, "norm_eps": cfg.eps, "rope_base": cfg.rope_base,
            "context_length": seq,
        },
        "batch": batch,
        "seq": seq,
        "tokens": tokens.reshape(-1).tolist(),
        "targets": targets.reshape(-1).tolist(),
        "weights": {k: enc(v) for k, v in model.lory_tensors().items()},
        "logits": enc(logits),
        "loss": loss.item(),
        "grads": {k: enc(v) for k, v in model.lory_tensors(lambda p: p.grad).items()},
        "routing": [enc(b.ffn.last_weights) for b in model.blocks] if moe else [],
    }
    if moe:
        with torch.no_grad():
            case["prompt_logits"] = enc(model(tokens, routing="prompt"))
            case["prompt_routing"] = [enc(b.ffn.last_weights) for b in model.blocks]
    return case


def main():
    cases = [
        # 2 sequences x 3 segments of 4 tokens: shifts within each sequence, never across the batch
        run_case("lory-4e", Config(vocab=32, d=16, layers=2, heads=2, dff=24, experts=4, segment=4), batch=2, seq=12, seed=1),
        run_case("dense", Config(vocab=32, d=16, layers=2, heads=2, dff=24, experts=1, segment=4), batch=2, seq=8, seed=2),
    ]
    out = {
        "generator": "src/model/golden/generate_golden.py",
        "torch": torch.__version__,
        "dtype": "float64",
        "note": "tensors: little-endian float64, base64; weights in lory's names and [in, out] layout",
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
