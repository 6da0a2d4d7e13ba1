"""The machine a run ran on, and what of it decides the run's arithmetic.

A CPU run is reproducible bit for bit only where every kernel rounds as it did: the same
code and thread count, and the same kernels, which ATen, MKL and oneDNN each pick by the
instruction sets the CPU reports (MKL also by model and cache). Two hosts of one VM type can
differ there while reporting the same platform, so a record carries ``machine.cpu``: what
the CPU says it is, and a fingerprint of what it computes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

# Environment variables that pick the CPU kernels (and so the rounding) of ATen, MKL and oneDNN,
# or their thread counts; recorded when set.
ARITHMETIC_ENV = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                  "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Kernel pins worth comparing across hosts: each library's own, and all three at once (the
# likeliest to agree across CPU vendors: MKL's SSE2 branch, ATen's and oneDNN's AVX2 kernels).
PINS: dict[str, dict[str, str]] = {
    "default": {},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "MKL_CBWR=AVX2": {"MKL_CBWR": "AVX2"},
    "MKL_CBWR=AVX512": {"MKL_CBWR": "AVX512"},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ONEDNN_MAX_CPU_ISA=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "all three": {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}
SIMD_FLAG = re.compile(r"^(sse|ssse|avx|fma|f16c|amx)")


def cpu_identity(cpuinfo: str | None = None) -> dict[str, Any]:
    """What the CPU says it is (``/proc/cpuinfo``'s first processor, on Linux; ``cpuinfo`` for
    tests), torch's kernel choice, any variable set that pins kernels, and the arithmetic
    fingerprint. A virtual CPU may hide its model name, hence the rest."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    identity: dict[str, Any] = {
        "model_name": fields.get("model name") or platform.processor() or None,
        "vendor": fields.get("vendor_id"),
        "family_model_stepping": "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping")) if fields else None,
        "cache": fields.get("cache size"),
        "simd": sorted(f for f in fields.get("flags", "").split() if SIMD_FLAG.match(f)),
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "fingerprint": arithmetic_fingerprint(),
    }
    pinned = {name: os.environ[name] for name in ARITHMETIC_ENV if name in os.environ}
    if pinned:
        identity["env"] = pinned
    return identity


def pinned_env(machine: dict[str, Any] | None) -> dict[str, str]:
    """The ``ARITHMETIC_ENV`` variables a record's ``machine`` ran with (thread counts, kernel
    pins); {} when none were set or the record predates them."""
    return ((machine or {}).get("cpu") or {}).get("env") or {}


def fingerprint_of(machine: dict[str, Any] | None) -> dict[str, str] | None:
    """A record's ``machine.cpu.fingerprint``; None for a record made before it."""
    return (machine.get("cpu") or {}).get("fingerprint") if isinstance(machine, dict) else None


def kernels_that_differ(recorded: dict[str, Any] | None, here: dict[str, Any] | None) -> list[str] | None:
    """The fingerprint's kernels whose bits differ between two records' ``machine`` dicts, plus
    ``"threads"`` when their thread counts do (the order of reductions); [] for the same CPU
    arithmetic, None when one record predates the fingerprint. Only kernels both records hash
    are compared: a record made before a kernel joined the fingerprint says nothing of it.

    The fingerprint, not the CPU's name, decides: hosts of one model can differ in MKL's code
    path, and hosts of two models can round alike."""
    a, b = fingerprint_of(recorded), fingerprint_of(here)
    if a is None or b is None:
        return None
    differ = sorted(kernel for kernel in a.keys() & b.keys() if a[kernel] != b[kernel])
    return differ + (["threads"] if recorded.get("torch_threads") != here.get("torch_threads") else [])


def kernels_not_compared(recorded: dict[str, Any] | None, here: dict[str, Any] | None) -> list[str]:
    """The kernels one record's fingerprint hashes and the other's does not (made before they
    joined it), of which ``kernels_that_differ`` can say nothing: two hosts that agree on every
    kernel both hash may still differ there (an Intel and an AMD host under the three pins of
    ``PINS`` differ only in ``adamw``, which records before 2026-12-06 lack)."""
    a, b = fingerprint_of(recorded), fingerprint_of(here)
    return [] if a is None or b is None else sorted(a.keys() ^ b.keys())


def machine_info() -> dict[str, Any]:
    """A record's ``machine``: the host, its threads (they set the order of reductions), its
    CPU arithmetic, and its GPU when there is one."""
    info = {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cpu": cpu_identity()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"], info["cudnn"] = torch.version.cuda, torch.backends.cudnn.version()
    return info


def host_record_name(machine: dict[str, Any]) -> str:
    """The file name of a host's record in ``results/machines/``: its platform string and its
    CPU (vendor, family/model/stepping), since one platform string has named hosts of more
    than one CPU (``…-fc-v1272-…``: an AMD 23/49/0 on 2026-12-05, an AMD 25/1/1 on 2026-12-07)."""
    cpu = machine["cpu"]
    name = f"{machine['platform']}__{cpu['vendor']}-{cpu['family_model_stepping']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".json"


@functools.cache  # the kernels a process uses do not change while it runs
def arithmetic_fingerprint() -> dict[str, str]:
    """A hash of the bits each kind of kernel a fit uses gives on fixed inputs (shapes of a
    MiniLM batch: 16 x 128 tokens, hidden 384, 12 heads), one per operation, each on inputs of
    its own so that a hash moves only with its own kernel.

    ``bmm`` and ``softmax`` are attention as eager code computes it; transformers' BERT calls
    ``scaled_dot_product_attention`` instead, a fused ATen kernel (``attention``, forward, and
    ``attention_grad``, backward) whose bits, on an Intel AVX-512 host, move with
    ``ATEN_CPU_CAPABILITY`` and with ``MKL_CBWR``; ``adamw`` is the optimiser's step, whose bits
    move with ``MKL_CBWR`` there. These three were added later (records before 2026-12-06 lack
    them), and are drawn after the others so that the older hashes keep their values; so are
    ``sqrt`` and ``adamw_fused`` (records before 2026-12-07 lack them).

    Equal hashes: this machine rounds as the recorded one did for these kernels (a fit uses
    others too, so a rerun is still the test). A differing one names the kernel that changed:
    on an Intel AVX-512 host ``MKL_CBWR=AVX2`` changes ``linear``, ``bmm``, ``tanh`` and
    ``exp`` (MKL's GEMM and vector math), ``ATEN_CPU_CAPABILITY=avx2`` ``softmax`` and
    ``ONEDNN_MAX_CPU_ISA=AVX2`` ``gelu``; an AMD host's MKL takes other GEMM and vector-math
    code than an Intel host's, and ignores every ``MKL_CBWR`` branch but ``COMPATIBLE``.
    Inputs come from a private generator: the global random state, which a fit's
    reproducibility rests on, is untouched.
    """
    generator = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    def digest(tensor: torch.Tensor) -> str:
        return hashlib.sha256(tensor.detach().contiguous().numpy().tobytes()).hexdigest()[:12]

    with torch.enable_grad():
        tokens = randn(2048, 384).requires_grad_()  # (B*T, H)
        weight = (randn(1536, 384) * 0.05).requires_grad_()  # (4H, H), an intermediate layer
        hidden = torch.nn.functional.linear(tokens, weight, randn(1536))  # (B*T, 4H)
        hidden.backward(torch.full_like(hidden, 1 / 7))
    queries, keys = randn(16 * 12, 128, 32), randn(16 * 12, 128, 32)  # (B*heads, T, H/heads)
    scores = torch.bmm(queries, keys.transpose(1, 2))  # (B*heads, T, T)
    states = randn(16, 128, 384)  # (B, T, H)
    fingerprint = {
        "linear": digest(hidden), "linear_grad_input": digest(tokens.grad), "linear_grad_weight": digest(weight.grad),
        "bmm": digest(scores), "softmax": digest(torch.softmax(randn(16 * 12, 128, 128), -1)),  # attention probabilities
        # tanh before layer_norm and gelu: taken after them, its bits on fc-v1252 differed in about
        # one process in twenty (results/NOTEBOOK.md, "Not done yet"); the bits are the same either way
        "tanh": digest(torch.tanh(states)), "layer_norm": digest(torch.nn.functional.layer_norm(states, (384,))),
        "gelu": digest(torch.nn.functional.gelu(states)), "exp": digest(torch.exp(states)), "sum": digest(states.sum(1)),
    }
    with torch.enable_grad():
        heads = [randn(16, 12, 128, 32).requires_grad_() for _ in range(3)]  # queries, keys, values: (B, heads, T, H/heads)
        keep = torch.arange(128) < 100  # (T,): the last 28 positions are padding
        attended = torch.nn.functional.scaled_dot_product_attention(*heads, attn_mask=keep.expand(16, 1, 128, 128))
        attended.backward(randn(16, 12, 128, 32))
    fingerprint["attention"] = digest(attended)
    fingerprint["attention_grad"] = digest(torch.cat([head.grad for head in heads]))

    def adamw_steps(**options: bool) -> torch.Tensor:  # a prompt after 3 AdamW steps on drawn gradients
        prompt = torch.nn.Parameter(randn(20, 384))  # (prompt length, H)
        optimizer = torch.optim.AdamW([prompt], lr=1e-2, weight_decay=0.01, **options)
        for _ in range(3):
            prompt.grad = randn(20, 384)
            optimizer.step()
        return prompt

    fingerprint["adamw"] = digest(adamw_steps())
    # Added 2026-12-07: under the three pins an Intel and an AMD host differ in ``adamw`` alone.
    # ``sqrt`` (of second-moment-sized values; ATen hands it to MKL's vector math) is a
    # candidate for why; ``adamw_fused`` is the step as ATen's own fused kernel takes it.
    fingerprint["sqrt"] = digest(torch.sqrt(torch.rand(20, 384, generator=generator) * 1e-3))
    fingerprint["adamw_fused"] = digest(adamw_steps(fused=True))
    return fingerprint


def fingerprint_in_a_process(pins: dict[str, str]) -> dict[str, str]:
    """The fingerprint a fresh process gets with ``pins`` set and no other kernel pin (the
    libraries read them once, when they load)."""
    env = {k: v for k, v in os.environ.items() if k not in ARITHMETIC_ENV or k.endswith("NUM_THREADS")} | pins
    code = "import json; from dp_bench.machine import arithmetic_fingerprint as f; print(json.dumps(f()))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)
