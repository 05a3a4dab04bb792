"""The training step of bench/train-step in plain PyTorch (no timm), as the reference.

DeiT-Ti distilled, 32x32 input, patch 4, 10 classes: forward of both heads, DeiT distillation loss
(base CE with label smoothing 0.1 on the cls head; soft = KL(log_softmax(dist/t) || log_softmax(teacher/t))
summed * t^2 / numel, or hard = CE(dist, argmax teacher)), alpha 0.5, backward, AdamW (lr 5e-4,
wd 0.05, no decay on tokens, pos_embed, biases and norms). Whole batch in one pass.

Set up fairly (bench/../shared/reference/measured-here.md): the BLAS in use must be OpenBLAS (openmp
build), and torch.set_num_threads(2); the script checks the mapped BLAS and reports it. Prints
progress lines, then one JSON line: {"times_ms": [...], "cpu_ms": [...], "threads": n, "info": "...",
"peak_rss_bytes": n}
or {"skipped": "..."}.
"""

import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as error:  # the caller reports the skip
    print(json.dumps({"skipped": f"PyTorch not importable: {error}"}))
    sys.exit(0)

IMG, PATCH, DIM, DEPTH, HEADS, MLP_RATIO, CLASSES = 32, 4, 192, 12, 3, 4, 10


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc1", nn.Linear(dim, dim * MLP_RATIO))
        self.mlp.add_module("act", nn.GELU())  # exact erf GELU, as DeiT
        self.mlp.add_module("fc2", nn.Linear(dim * MLP_RATIO, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DistilledDeiT(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, DIM, PATCH, PATCH)
        tokens = (IMG // PATCH) ** 2 + 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIM) * 1e-6)
        self.dist_token = nn.Parameter(torch.randn(1, 1, DIM) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, DIM) * 0.02)
        self.blocks = nn.Sequential(*[Block(DIM, HEADS) for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM, eps=1e-6)
        self.head = nn.Linear(DIM, CLASSES)
        self.head_dist = nn.Linear(DIM, CLASSES)

    def forward(self, x):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        b = x.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), x], dim=1)
        x = self.norm(self.blocks(x + self.pos_embed))
        return self.head(x[:, 0]), self.head_dist(x[:, 1])


def distillation_loss(cls, dist, teacher, labels, kind, alpha=0.5, tau=1.0, smoothing=0.1):
    base = F.cross_entropy(cls, labels, label_smoothing=smoothing)
    if kind == "soft":
        distill = (
            F.kl_div(F.log_softmax(dist / tau, dim=1), F.log_softmax(teacher / tau, dim=1), reduction="sum", log_target=True)
            * (tau * tau)
            / dist.numel()
        )
    else:
        distill = F.cross_entropy(dist, teacher.argmax(dim=1))
    return (1 - alpha) * base + alpha * distill


def blas_in_use():
    """The BLAS shared objects actually mapped into this process (after a matmul has run)."""
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "blas" in line.lower() and line.split()[-1].startswith("/")}
    return sorted(libs)


def peak_rss_bytes():
    """VmHWM of this process: the peak resident set the comparison reports beside tfjs's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--loss", choices=["soft", "hard"], default="soft")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)  # Debian's build starts with 1
    model = DistilledDeiT().train()
    no_decay = {"cls_token", "dist_token", "pos_embed"}
    decay, exempt = [], []
    for name, p in model.named_parameters():
        (exempt if p.ndim <= 1 or name.endswith(".bias") or name in no_decay else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": exempt, "weight_decay": 0.0}], lr=5e-4, eps=1e-8
    )

    x = torch.rand(args.batch, 3, IMG, IMG) * 4 - 2
    labels = torch.randint(0, CLASSES, (args.batch,))
    teacher = torch.rand(args.batch, CLASSES) * 6 - 3

    times, cpu = [], []
    for i in range(args.warmup + args.steps):
        c0 = time.process_time()  # all threads of the process
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        cls, dist = model(x)
        loss = distillation_loss(cls, dist, teacher, labels, args.loss)
        loss.backward()
        optimizer.step()
        ms = (time.perf_counter() - t0) * 1000
        cpu_ms = (time.process_time() - c0) * 1000
        if i >= args.warmup:
            times.append(ms)
            cpu.append(cpu_ms)
        warm = " (warm-up)" if i < args.warmup else ""
        print(f"torch step {i}{warm}: {ms:7.0f} ms, cpu {cpu_ms:.0f} ms  (loss {loss.item():.4f})", flush=True)

    blas = blas_in_use()
    if not any("openblas" in lib for lib in blas):
        print(json.dumps({"skipped": f"BLAS in use is not OpenBLAS ({blas}); the ratio would be meaningless"}))
        return
    params = sum(p.numel() for p in model.parameters())
    info = f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {params} params, BLAS {', '.join(blas)}"
    summary = {"times_ms": times, "cpu_ms": cpu, "threads": torch.get_num_threads(), "info": info}
    summary["peak_rss_bytes"] = peak_rss_bytes()
    # For one table cell: the BLAS by its Debian alternatives folder (openblas-openmp, openblas-pthread, blas).
    folders = sorted({lib.split("/")[-2] for lib in blas if "blas" in lib.split("/")[-1]})
    summary["label"] = f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {'/'.join(folders)}"
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
