"""The machine a record names: its CPU arithmetic, and when two records share it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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


def test_records_share_cpu_arithmetic_when_their_fingerprints_and_threads_agree():
    fingerprint = {"linear": "a1", "softmax": "b2", "tanh": "c3"}
    here = {"platform": "host-a", "torch_threads": 2, "cpu": {"model_name": "x", "fingerprint": fingerprint}}
    # another host, another model name: the bits decide, not the name
    assert machine.kernels_that_differ({"platform": "host-b", "torch_threads": 2,
                                        "cpu": {"model_name": "y", "fingerprint": dict(fingerprint)}}, here) == []
    other = {"torch_threads": 4, "cpu": {"fingerprint": {**fingerprint, "linear": "a9", "tanh": "c9"}}}
    assert machine.kernels_that_differ(other, here) == ["linear", "tanh", "threads"]
    # a record from before a kernel joined the fingerprint is compared on the kernels both hash
    later = {"torch_threads": 2, "cpu": {"fingerprint": {**fingerprint, "attention": "d4"}}}
    assert machine.kernels_that_differ(here, later) == []
    assert machine.kernels_that_differ({**later, "cpu": {"fingerprint": {**fingerprint, "attention": "d4", "tanh": "c9"}}},
                                       here) == ["tanh"]
    assert machine.kernels_not_compared(here, later) == ["attention"]  # "the same" holds for the other kernels only
    assert machine.kernels_not_compared(here, here) == []
    assert machine.kernels_that_differ({"torch_threads": 2, "cpu": {"model_name": "x"}}, here) is None  # before the fingerprint
    assert machine.kernels_not_compared({"torch_threads": 2, "cpu": {"model_name": "x"}}, here) == []
    assert machine.kernels_that_differ({"platform": "host-a", "torch_threads": 2}, here) is None  # before `cpu`
    assert machine.kernels_that_differ(None, here) is None


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"), reason="pins SSE2 GEMM on an AVX CPU")
def test_the_fingerprint_repeats_in_another_process_and_moves_with_the_kernels():
    plain = machine.fingerprint_in_a_process({})
    assert set(plain) >= {"linear", "linear_grad_weight", "bmm", "softmax", "layer_norm", "gelu",
                          "attention", "attention_grad", "adamw", "sqrt", "adamw_fused"}  # BERT's attention, AdamW's step
    assert machine.fingerprint_in_a_process({}) == plain  # the same kernels: the same bits
    # MKL's SSE2 branch, the one MKL_CBWR branch that Intel and AMD CPUs both take (AMD ignores the others)
    pinned = machine.fingerprint_in_a_process(machine.PINS["MKL_CBWR=COMPATIBLE"])
    assert pinned["linear"] != plain["linear"]  # MKL's GEMM moved ...
    assert (pinned["softmax"], pinned["layer_norm"]) == (plain["softmax"], plain["layer_norm"])  # ... ATen's kernels did not


def test_hosts_of_one_platform_string_and_two_cpus_get_two_host_records():
    zen2 = {"platform": "Linux-6.18.44-fc-v1272-x86_64-with-glibc2.36",
            "cpu": {"vendor": "AuthenticAMD", "family_model_stepping": "23/49/0"}}
    zen3 = {**zen2, "cpu": {"vendor": "AuthenticAMD", "family_model_stepping": "25/1/1"}}
    assert machine.host_record_name(zen2) == "Linux-6.18.44-fc-v1272-x86_64-with-glibc2.36__AuthenticAMD-23_49_0.json"
    assert machine.host_record_name(zen3) != machine.host_record_name(zen2)


def test_the_host_record_names_per_pin_the_kernels_that_differ_from_another_host(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "cpu_arithmetic.py"
    here = machine.machine_info()
    older = {kernel: bits for kernel, bits in here["cpu"]["fingerprint"].items() if kernel != "adamw"}  # before adamw joined
    other_host = {"created": "2026-12-01T00:00:00+00:00", "fingerprints": {"default": {**older, "linear": "0"}},
                  "machine": {**here, "cpu": {**here["cpu"], "model_name": "Other CPU"}}}
    (tmp_path / "other-host.json").write_text(json.dumps(other_host))
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--pins", "default"],
                          capture_output=True, text=True, check=True)
    (written,) = [p for p in tmp_path.glob("*.json") if p.name != "other-host.json"]
    record = json.loads(written.read_text())
    assert record["fingerprints"] == {"default": here["cpu"]["fingerprint"]}
    assert {"git_sha", "versions", "wall_time_s", "machine"} <= record.keys()
    assert "against other-host.json: Other CPU" in done.stdout
    assert re.search(r"default\s+linear differ \(not compared: adamw, hashed on one host only\)", done.stdout)
