#!/usr/bin/python3
"""
Golden tensors for lory's model tests, from an independent PyTorch implementation of Lory
(Zhong, Xia, Chen, Lewis 2024, arXiv 2405.03133), written from the paper, not from lory's code.

    /usr/bin/python3 src/model/golden/generate_golden.py      # Debian: apt-get install python3-torch

writes src/model/golden/golden.json: for each case the config, the batch, every weight (under lory's
parameter names and [in, out] layout), and the float64 results: logits, loss, the gradient of the loss
w.r.t. every weight, and the routing weights each segment was served with. src/model/golden.test.ts
loads the weights into lory's graph and compares. Only test tooling: lory never runs Python.

The model (bench/torch/lory_torch.py, shared with `npm run bench:torch`): LLaMA-style decoder (pre-norm
RMSNorm, rotary embeddings in the rotate-half layout, causal multi-head attention, SwiGLU FFN, untied
embeddings, no biases); every FFN a Lory MoE layer: experts merged in parameter space per segment of
T tokens, routing weights of segment k from the mean FFN input of segment k-1, segment 1 from its own
mean with the gradient stopped.
"""
import base64
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

# The model itself lives beside the PyTorch side of the training-speed bench, which trains it in float32.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "bench", "torch"))
from lory_torch import Config, LoryLM  # noqa: E402

torch.set_default_dtype(torch.float64)


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
