#!/usr/bin/python3
"""
PyTorch side of `npm run bench:torch` (bench/train-vs-torch.ts): one worker process that the bench
drives over stdin/stdout, one JSON object per line, so that lory and PyTorch steps alternate in rounds
and never run at the same time.

    /usr/bin/python3 bench/torch/train_worker.py SPEC.json

SPEC: {"kind": "step" | "gemm", "threads": 2, ...}
  step: {"model": {vocab, d, layers, heads, dff, experts, segment, eps, rope_base}, "batch", "seq",
         "weights": "<path>.json" (index of a float32 file in lory's names and layout, or null),
         "data": "<path>" (int64 tokens then targets, [batch, seq] each), "lr", "adamw": {beta1, beta2,
         eps, weight_decay, clip_norm}}
  gemm: {"n": 2048}  (one n×n×n float32 matmul per command: the attainable GEMM rate)
Commands: {"cmd": "step"} → {"wall_ms", "cpu_ms", "loss"}; {"cmd": "quit"} → {"peak_rss_kb"}, exit.
First line out: {"ready": true, "setup_s", "rss_kb", "torch", "threads", "blas": {...}}.

The train step is what a PyTorch user writes: zero_grad, forward, cross-entropy, backward, global-norm
clipping, AdamW (foreach=True: the multi-tensor implementation) with lory's groups.
"""
import ctypes
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lory_torch import Config, LoryLM  # noqa: E402


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def blas_info():
    """Which BLAS torch's float32 GEMMs run on: Debian's torch calls libblas.so.3 (BLAS_INFO=generic),
    which the alternatives system points at OpenBLAS; ask OpenBLAS which kernel family it picked."""
    show = torch.__config__.show()
    info = {
        "blas_info": next((p.split("=")[1] for p in show.replace(",", "\n").split("\n") if "BLAS_INFO=" in p), None),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": next((l.split(":")[1].strip() for l in show.split("\n") if "CPU capability usage" in l), None),
        "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
        "libblas": os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"),
    }
    try:
        lib = ctypes.CDLL("libblas.so.3")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        lib.openblas_get_config.restype = ctypes.c_char_p
        info["openblas_core"] = lib.openblas_get_corename().decode()
        info["openblas_config"] = lib.openblas_get_config().decode()
    except (OSError, AttributeError):
        info["openblas_core"] = None  # libblas.so.3 is not OpenBLAS (e.g. the reference BLAS)
    return info


def load_weights(index_path):
    with open(index_path) as f:
        index = json.load(f)
    raw = open(os.path.join(os.path.dirname(index_path), index["file"]), "rb").read()
    flat = torch.frombuffer(bytearray(raw), dtype=torch.float32)
    out = {}
    for name, e in index["tensors"].items():
        n = 1
        for s in e["shape"]:
            n *= s
        out[name] = flat[e["offset"] : e["offset"] + n].view(e["shape"])
    return out


def make_step(spec):
    m = spec["model"]
    cfg = Config(m["vocab"], m["d"], m["layers"], m["heads"], m["dff"], m["experts"], m["segment"], m["eps"], m["rope_base"])
    model = LoryLM(cfg)
    if spec.get("weights"):
        model.load_lory_tensors(load_weights(spec["weights"]))
    B, S = spec["batch"], spec["seq"]
    data = torch.frombuffer(bytearray(open(spec["data"], "rb").read()), dtype=torch.int64).view(2, B, S)
    tokens, targets = data[0].clone(), data[1].clone()
    a = spec["adamw"]
    opt = torch.optim.AdamW(model.param_groups(a["weight_decay"]), lr=spec["lr"], betas=(a["beta1"], a["beta2"]), eps=a["eps"], foreach=True)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(B * S, -1), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a["clip_norm"])
        opt.step()
        return loss.item()

    return step


def make_gemm(spec):
    n = spec["n"]
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    out = torch.empty(n, n)

    def step():
        torch.mm(a, b, out=out)
        return None

    return step


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    torch.set_num_threads(spec["threads"])
    start = time.perf_counter()
    step = make_step(spec) if spec["kind"] == "step" else make_gemm(spec)
    send = lambda obj: (sys.stdout.write(json.dumps(obj) + "\n"), sys.stdout.flush())
    send({"ready": True, "setup_s": time.perf_counter() - start, "rss_kb": rss_kb(), "torch": torch.__version__,
          "threads": torch.get_num_threads(), "blas": blas_info()})
    for line in sys.stdin:
        cmd = json.loads(line)["cmd"]
        if cmd == "step":
            c0, w0 = time.process_time(), time.perf_counter()
            loss = step()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            send({"wall_ms": wall * 1e3, "cpu_ms": cpu * 1e3, "loss": loss})
        elif cmd == "quit":
            send({"peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
            return
        else:
            raise SystemExit(f"train_worker: unknown command {cmd!r}")


if __name__ == "__main__":
    main()
