"""The machine a benchmark ran on, and what its matrix units can do.

Speed figures mean little without the hardware beside them, so every run records: core
count, CPU model and the flags that decide the fast paths (AVX2, AVX-512F, AVX-512 BF16,
AMX BF16), torch's thread count, the versions of every tool compared, and a measured
GEMM peak. The peak is the denominator of the model-FLOP utilisation (MFU) the report
gives for each fine-tuning variant: 2048x2048 fp32 matrix products, timed after warm-up,
best of several. bf16 is measured only where the CPU computes it natively; elsewhere
PyTorch emulates it at a small fraction of fp32 speed, so the figure is recorded as null
with the reason instead of spending minutes measuring emulation.

``cpu_flags`` and ``has_native_bf16`` read ``/proc/cpuinfo`` and import nothing heavy;
``describe`` imports torch and runs inside the ``machine`` worker.
"""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata

FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
PACKAGES = ("torch", "transformers", "accelerate", "sentence-transformers", "setfit", "scikit-learn", "enctune")
NO_BF16_REASON = "skipped: no native bf16 (CPU has neither avx512_bf16 nor amx_bf16)"


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name, as every benchmark table names it."""
    return _cpuinfo_field("model name") or platform.processor() or "?"


def cpu_flags() -> set[str]:
    return set((_cpuinfo_field("flags") or "").split())


def cpu_kind() -> str:
    """The CPU's fast-path family, as benchmark tables name it: AMX, AVX-512 BF16, AVX-512 or AVX2."""
    flags = cpu_flags()
    return "AMX" if "amx_bf16" in flags else "AVX-512 BF16" if "avx512_bf16" in flags else (
        "AVX-512" if "avx512f" in flags else "AVX2")


def has_native_bf16() -> bool:
    """True where bf16 matrix products run in hardware (AVX-512 BF16 or AMX) rather than emulated."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def _mem_total_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def gemm_peak_gflops(dtype, n: int = 2048, warmup: int = 3, repeats: int = 10) -> float:
    """Best-of-``repeats`` GFLOP/s of an (n, n) @ (n, n) product: 2 n^3 FLOPs each."""
    import torch

    a = torch.randn(n, n, dtype=torch.float32).to(dtype)
    b = torch.randn(n, n, dtype=torch.float32).to(dtype)
    for _ in range(warmup):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return round(2 * n**3 / best / 1e9, 1)


def encoder_param_counts(path: str) -> dict[str, int]:
    """Parameters of the default encoder, total and without the input (word) embeddings.

    The non-embedding count N is the one in the usual cost model: training costs about
    6 N FLOPs per real (non-pad) token, forward 2 N plus backward 4 N.
    """
    from transformers import AutoModel

    model = AutoModel.from_pretrained(path)
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for p in model.get_input_embeddings().parameters())
    return {"encoder_params": total, "encoder_non_embedding_params": total - emb}


def describe(encoder_path: str) -> dict:
    """Everything the report prints about the machine (imports torch; run it in a worker)."""
    import torch

    flags = cpu_flags()
    native_bf16 = has_native_bf16()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = None
    info = {
        "nproc": affinity or os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "cpu_flags": {f: f in flags for f in FLAGS_OF_INTEREST},
        "native_bf16": native_bf16,
        "memory_gb": _mem_total_gb(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "versions": versions(),
        "encoder_path": encoder_path,
        **encoder_param_counts(encoder_path),
        "gemm": {"n": 2048, "fp32_gflops": gemm_peak_gflops(torch.float32)},
    }
    if native_bf16:
        info["gemm"]["bf16_gflops"] = gemm_peak_gflops(torch.bfloat16)
        info["gemm"]["bf16_note"] = None
    else:
        info["gemm"]["bf16_gflops"] = None
        info["gemm"]["bf16_note"] = NO_BF16_REASON
    return info
