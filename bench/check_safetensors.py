#!/usr/bin/env python3
"""Check that a lory checkpoint's safetensors files load in Python: with the `safetensors` package
(numpy and PyTorch back ends) and PyTorch, every tensor equal to an independent parse of the file by
the format's definition, with the names and shapes the checkpoint's config.json implies.

Not part of CI (needs Python packages): python3 bench/check_safetensors.py work/demo/runs/lory
(a run directory reads checkpoints/latest; a checkpoint directory is read as is).
Needs: numpy, safetensors, torch (Debian: python3-torch; pip: safetensors).
"""
import json
import os
import struct
import sys

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file as load_torch


def checkpoint_dir(path):
    if os.path.exists(os.path.join(path, "checkpoints", "latest")):
        with open(os.path.join(path, "checkpoints", "latest")) as f:
            return os.path.join(path, "checkpoints", f.read().strip())
    return path


def expected_shapes(model):
    """The parameter list of src/model/params.ts (paramSpecs), from the YAML-spelled model section."""
    V, d, f, L, E = model["vocab_size"], model["d_model"], model["d_ff"], model["n_layers"], model["experts"]
    lead = [E] if E > 1 else []
    shapes = {"embed": [V, d], "final_norm": [d], "lm_head": [d, V]}
    for l in range(L):
        p = f"layers.{l}"
        shapes[f"{p}.attn_norm"] = [d]
        shapes[f"{p}.ffn_norm"] = [d]
        for w in ("wq", "wk", "wv", "wo"):
            shapes[f"{p}.attn.{w}"] = [d, d]
        if E > 1:
            shapes[f"{p}.ffn.router"] = [d, E]
        shapes[f"{p}.ffn.w_gate"] = lead + [d, f]
        shapes[f"{p}.ffn.w_up"] = lead + [d, f]
        shapes[f"{p}.ffn.w_down"] = lead + [f, d]
    return shapes


def parse_by_hand(path):
    """The format by its definition: u64 LE header length, JSON header, data at header-relative offsets."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert (8 + n) % 8 == 0, "data must start 8-aligned"
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dt = {"F32": "<f4", "F64": "<f8"}[e["dtype"]]
        out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=dt).reshape(e["shape"])
    return out


def check(path, shapes, dtype):
    by_hand = parse_by_hand(path)
    as_numpy = load_numpy(path)
    as_torch = load_torch(path)
    assert set(by_hand) == set(shapes) == set(as_numpy) == set(as_torch), f"{path}: tensor names differ from the config's"
    for name, shape in shapes.items():
        t = as_torch[name]
        assert list(t.shape) == shape, f"{path}: {name} has shape {list(t.shape)}, expected {shape}"
        assert t.dtype == dtype, f"{path}: {name} is {t.dtype}, expected {dtype}"
        assert np.array_equal(t.numpy(), by_hand[name]) and np.array_equal(as_numpy[name], by_hand[name]), f"{path}: {name} differs"
    total = sum(t.numel() for t in as_torch.values())
    print(f"ok  {path}: {len(shapes)} tensors, {total:,} values, {dtype}, equal across safetensors/numpy, safetensors/torch and a by-hand parse")


def main():
    ck = checkpoint_dir(sys.argv[1] if len(sys.argv) > 1 else "work/demo/runs/lory")
    with open(os.path.join(ck, "config.json")) as f:
        model = json.load(f)["model"]
    dtype = torch.float64 if model["dtype"] == "float64" else torch.float32
    shapes = expected_shapes(model)
    check(os.path.join(ck, "model.safetensors"), shapes, dtype)
    opt = os.path.join(ck, "optimizer.safetensors")
    if os.path.exists(opt):
        check(opt, {f"adam_{k}/{n}": s for k in ("m", "v") for n, s in shapes.items()}, dtype)
    # PyTorch can use the weights directly: the LM head applied to the final norm of the embeddings.
    w = load_torch(os.path.join(ck, "model.safetensors"))
    logits = (w["embed"][:3] * w["final_norm"]) @ w["lm_head"]
    print(f"ok  torch matmul on the loaded weights: logits {list(logits.shape)}, finite={bool(torch.isfinite(logits).all())}")


if __name__ == "__main__":
    main()
