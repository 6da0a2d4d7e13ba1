"""The machine a record names: its CPU arithmetic, and when two records share it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from dp_bench import machine

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 106
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
stepping\t: 6
cache size\t: 55296 KB
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512_vnni aes

processor\t: 1
model name\t: another block, not read
"""


def test_cpu_identity_names_the_model_and_the_instruction_sets_that_pick_kernels(monkeypatch):
    for name in machine.ARITHMETIC_ENV:
        monkeypatch.delenv(name, raising=False)
    identity = machine.cpu_identity(CPUINFO)
    assert identity["model_name"] == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    assert (identity["vendor"], identity["family_model_stepping"], identity["cache"]) == ("GenuineIntel", "6/106/6", "55296 KB")
    assert identity["simd"] == ["avx", "avx2", "avx512_vnni", "avx512f", "f16c", "fma", "sse", "sse2", "sse4_1", "sse4_2", "ssse3"]
    assert isinstance(identity["torch_capability"], str)  # this machine's ATen kernels ("AVX512", ...)
    assert "env" not in identity
    monkeypatch.setenv("MKL_CBWR", "AVX2")  # a pinned kernel choice is part of the identity
    assert machine.cpu_identity(CPUINFO)["env"] == {"MKL_CBWR": "AVX2"}


def test_same_cpu_arithmetic_needs_the_same_cpu_and_threads_and_is_unknown_for_older_records():
    cpu = {"model_name": "x", "simd": ["avx2"], "torch_capability": "AVX2"}
    here = {"platform": "host-a", "torch_threads": 2, "cpu": cpu}
    assert machine.same_cpu_arithmetic({"platform": "host-b", "torch_threads": 2, "cpu": dict(cpu)}, here) is True
    assert machine.same_cpu_arithmetic({"torch_threads": 4, "cpu": cpu}, here) is False
    assert machine.same_cpu_arithmetic({"torch_threads": 2, "cpu": {**cpu, "simd": ["avx2", "avx512f"]}}, here) is False
    assert machine.same_cpu_arithmetic({"platform": "host-a", "torch_threads": 2}, here) is None  # before `cpu`
    assert machine.same_cpu_arithmetic(None, here) is None


FINGERPRINT = "import json; from dp_bench.machine import arithmetic_fingerprint; print(json.dumps(arithmetic_fingerprint()))"


def fingerprint_in_a_process(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in machine.ARITHMETIC_ENV}
    done = subprocess.run([sys.executable, "-c", FINGERPRINT], env=clean | env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"), reason="pins SSE2 GEMM on an AVX CPU")
def test_the_fingerprint_repeats_in_another_process_and_moves_with_the_kernels():
    plain = fingerprint_in_a_process()
    assert set(plain) >= {"linear", "linear_grad_weight", "bmm", "softmax", "layer_norm", "gelu"}
    assert fingerprint_in_a_process() == plain  # the same kernels: the same bits
    # MKL's SSE2 branch, the one MKL_CBWR branch that Intel and AMD CPUs both take (AMD ignores the others)
    pinned = fingerprint_in_a_process(MKL_CBWR="COMPATIBLE")
    assert pinned["linear"] != plain["linear"]  # MKL's GEMM moved ...
    assert (pinned["softmax"], pinned["layer_norm"]) == (plain["softmax"], plain["layer_norm"])  # ... ATen's kernels did not
