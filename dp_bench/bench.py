"""``dp-bench bench``: what each method costs, measured side by side in one process.

Users pick a method by accuracy *and* cost. The paper's released code (Yang et al. 2023,
arXiv 2303.02909) inserts dynamic prompts with a Python loop over the batch and the
``L+1`` candidate positions and runs the frozen backbone twice per step; this command
measures what our vectorised insertion and the feature cache buy, and how our static
methods compare with PEFT's on the same backbone and batch:

- ``insertion``: prompt insertion alone, forward + backward with the full straight-through
  position gradient: ours (``assemble.arrange_with_choice``) against the per-example loop
  (``bench_baselines.loop_arrange_with_choice``), plus a bare gather without the position
  gradient, over B in {8, 32}, L in {20, 100}, T in {128, 256}, H = 384.
- ``features``: ``adap_ins_pos`` train step with the instance-feature cache
  (``adap_ins_pos+cache``) and without it (``adap_ins_pos+nocache``) against ``prompt_tuning``.
- ``peft``: our ``prompt_tuning`` / ``p_tuning_v2`` against PEFT's prompt / prefix tuning.
- ``gpu`` (CUDA only): the train steps and the target insertion case in bf16, and the
  achieved fraction of the GPU's matmul peak (FLOPs from ``FlopCounterMode``).

Every method of a section is timed round-robin (one call of each per round), so a noisy
machine slows all of them alike and the ratios hold. Timings live here, never in tests.
Outputs: ``<out>/<name>.json`` (the record) and ``<out>/<name>.md`` (the tables).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from dp_bench.machine import pinned_env

SECTIONS = ("insertion", "features", "peft", "gpu")
# Train-step methods each section compares (the first is the reference of its ratios).
SECTION_METHODS = {
    "features": ("prompt_tuning", "adap_ins_pos+cache", "adap_ins_pos+nocache"),
    "peft": ("prompt_tuning", "peft_prompt_tuning", "p_tuning_v2", "peft_prefix_tuning"),
}
# Dense bf16 matmul peak in TFLOP/s (vendor datasheets, without sparsity), by device name.
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
INSERTION_METHODS = ("ours", "gather", "loop")
HIDDEN = 384  # MiniLM's width, for the insertion section

Comparison = Literal[">=", "<="]


@dataclass
class BenchSettings:
    """What to measure and where.

    Args:
        device: "cpu" or "cuda"; None picks cuda when available.
        out: folder for the JSON record and the Markdown table.
        name: file stem of the outputs; None derives it from the machine (plus the sections
            of a partial run and ``-quick``).
        sections: comma-separated subset of insertion,features,peft,gpu.
        repeats: timed calls per measurement at most (after warm-up).
        warmup: untimed calls per measurement before timing (at least 1: the last one sizes the repeats).
        min_repeats: timed calls per measurement at least, however slow the call.
        budget_s: seconds of timed calls per measurement; slower methods get fewer repeats.
        backbone: frozen backbone for the train steps (packaged short name or local path).
        batch_size: train-step batch size; None: 16 on CPU, 32 on CUDA.
        seq_len: train-step padded input length T; None: 128 on CPU, 256 on CUDA.
        peak_tflops: the GPU's dense bf16 matmul peak; None looks the device name up.
        memory: measure peak memory (CPU: a fresh subprocess per method).
        seed: seed of the random batches and prompts.
    """

    device: Literal["cpu", "cuda"] | None = None
    out: str = "results/bench"
    name: str | None = None
    sections: str = ",".join(SECTIONS)
    repeats: int = 10
    warmup: int = 1
    min_repeats: int = 2
    budget_s: float = 8.0
    backbone: str = "all-MiniLM-L6-v2"
    batch_size: int | None = None
    seq_len: int | None = None
    peak_tflops: float | None = None
    memory: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [s for s in self.section_list if s not in SECTIONS]
        if unknown:
            raise ValueError(f"BenchSettings.sections={self.sections!r}: unknown {unknown}; choose from {', '.join(SECTIONS)}")
        for field in ("repeats", "warmup", "min_repeats"):
            if getattr(self, field) < 1:
                raise ValueError(f"BenchSettings.{field}={getattr(self, field)!r}: must be >= 1")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("BenchSettings.device='cuda': no CUDA device is available")

    @property
    def section_list(self) -> list[str]:
        return [s.strip() for s in self.sections.split(",") if s.strip()]


@dataclass
class Sizes:
    """Problem sizes of one run (the full grid, or tiny ones for ``--quick``)."""

    insertion_batch: tuple[int, ...] = (8, 32)
    insertion_prompt: tuple[int, ...] = (20, 100)
    insertion_seq: tuple[int, ...] = (128, 256)
    batch_size: int = 16
    seq_len: int = 128

    @property
    def target_case(self) -> tuple[int, int, int]:
        """(B, L, T) of the insertion target: B=32, L=20, T=256 in the full grid."""
        return max(self.insertion_batch), min(self.insertion_prompt), max(self.insertion_seq)


QUICK_SIZES = Sizes((2,), (4,), (16,), batch_size=2, seq_len=16)


# ---------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarize(times: list[float]) -> dict[str, Any]:
    """Median, quartiles and extremes of timings in seconds (``times_s`` keeps them all)."""
    q1, q3 = (statistics.quantiles(times, n=4, method="inclusive")[i] for i in (0, 2)) if len(times) > 1 else (times[0],) * 2
    return {
        "median_s": statistics.median(times), "q1_s": q1, "q3_s": q3,
        "min_s": min(times), "max_s": max(times), "n": len(times), "times_s": times,
    }


def time_round_robin(
    calls: dict[str, Callable[[], Any]], settings: BenchSettings, device: torch.device
) -> dict[str, dict[str, Any]]:
    """Time each call, one of each per round, so load changes hit every method alike.

    The last warm-up call of each method sets its repeats: as many as fit in
    ``budget_s`` (at least ``min_repeats``, at most ``repeats``).
    """
    if not calls:
        return {}
    counts = {}
    for name, call in calls.items():
        first = 0.0
        for _ in range(settings.warmup):
            _sync(device)
            start = time.perf_counter()
            call()
            _sync(device)
            first = time.perf_counter() - start
        counts[name] = max(settings.min_repeats, min(settings.repeats, int(settings.budget_s / max(first, 1e-9))))
    times: dict[str, list[float]] = {name: [] for name in calls}
    gc.collect()
    for r in range(max(counts.values())):
        for name, call in calls.items():
            if r < counts[name]:
                _sync(device)
                start = time.perf_counter()
                call()
                _sync(device)
                times[name].append(time.perf_counter() - start)
    return {name: {**summarize(t), "warmup": settings.warmup} for name, t in times.items()}


def _ms(stats: dict[str, Any]) -> str:
    return f"{stats['median_s'] * 1e3:.1f} ms [IQR {stats['q1_s'] * 1e3:.1f}-{stats['q3_s'] * 1e3:.1f}, n={stats['n']}]"


def say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------------------- insertion


def insertion_case(B: int, L: int, T: int, H: int, device: torch.device, dtype: torch.dtype, seed: int) -> dict:
    """Random ``x [B, T, H]``, shared ``prompt [1, L, H]``, one-hot ``weights [B, L+1]``, lengths, upstream grad."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(T // 2, 2), T + 1, (B,), generator=g)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device, dtype).requires_grad_()

    weights = F.one_hot(torch.randint(0, L + 1, (B,), generator=g), L + 1).to(device, dtype).requires_grad_()
    return {
        "x": leaf(B, T, H), "prompt": leaf(1, L, H), "weights": weights, "lengths": lengths.to(device),
        "upstream": torch.randn(B, T + L, H, generator=g).to(device, dtype),
    }


def insertion_calls(case: dict, head: int = 1, tail: int = 1) -> dict[str, Callable[[], Any]]:
    """Forward + backward of each insertion method on one case ([CLS] ... [SEP]: head = tail = 1)."""
    from dp_bench.bench_baselines import loop_arrange_with_choice
    from dp_bench.prompts.assemble import arrange, arrange_with_choice, arrangement_index

    x, prompt, weights, lengths, upstream = (case[k] for k in ("x", "prompt", "weights", "lengths", "upstream"))
    T, L = x.shape[1], prompt.shape[1]

    def with_position_gradient(fn: Callable) -> Callable[[], Any]:
        def call():
            out = fn(x, prompt, weights, lengths, head, tail)  # (B, T+L, H)
            return torch.autograd.grad(out, (x, prompt, weights), upstream)
        return call

    def gather():
        index = arrangement_index(lengths, weights.detach().argmax(-1), T, L, head, tail)
        return torch.autograd.grad(arrange(x, prompt, index), (x, prompt), upstream)

    return {
        "ours": with_position_gradient(arrange_with_choice),
        "gather": gather,
        "loop": with_position_gradient(loop_arrange_with_choice),
    }


def bench_insertion(settings: BenchSettings, sizes: Sizes, device: torch.device, dtype: torch.dtype = torch.float32) -> list[dict]:
    """Every (B, L, T) of the grid: ours, bare gather, per-example loop; fwd + bwd."""
    rows = []
    cases = [(B, L, T) for B in sizes.insertion_batch for L in sizes.insertion_prompt for T in sizes.insertion_seq]
    for i, (B, L, T) in enumerate(cases):
        case = insertion_case(B, L, T, HIDDEN, device, dtype, settings.seed + i)
        stats = time_round_robin(insertion_calls(case), settings, device)
        for method, s in stats.items():
            say(f"[insertion {str(dtype).removeprefix('torch.')}] B={B:<3} L={L:<3} T={T:<3} {method:<7} {_ms(s)}")
        rows.append({"B": B, "L": L, "T": T, "H": HIDDEN, "dtype": str(dtype), **{m: stats[m] for m in INSERTION_METHODS}})
        del case
    return rows


# ---------------------------------------------------------------------------- train steps


def make_batch(B: int, T: int, vocab_size: int, seed: int, device: torch.device) -> dict:
    """A right-padded MiniLM-like batch: [CLS] tokens [SEP] pad; lengths in T/2..T."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(T // 2, 3), T + 1, (B,), generator=g)
    slots = torch.arange(T).unsqueeze(0)  # (1, T)
    mask = (slots < lengths.unsqueeze(1)).long()  # (B, T)
    ids = torch.randint(1000, vocab_size, (B, T), generator=g)
    ids[:, 0] = 101  # [CLS]
    ids = torch.where(slots == (lengths - 1).unsqueeze(1), 102, ids)  # [SEP]
    batch = {
        "input_ids": ids * mask, "attention_mask": mask, "labels": torch.randint(0, 3, (B,), generator=g),
        "example_idx": torch.arange(B), "group_idx": torch.arange(B), "task_idx": torch.zeros(B, dtype=torch.long),
    }
    return {k: v.to(device) for k, v in batch.items()}


@dataclass
class Method:
    """A model to time: scores from a batch, in train or eval mode."""

    name: str
    model: torch.nn.Module
    scores: Callable[[dict, str], torch.Tensor]  # (batch, cache_key) -> [B, C]
    note: str = ""

    @property
    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)


def build_method(name: str, backbone_name: str, device: torch.device, shared_backbone=None) -> Method:
    """One train-step method by name: a preset of ours, ``+cache`` / ``+nocache`` setting its feature cache, or a PEFT baseline."""
    from dp_bench.backbones import load_backbone

    if name.startswith("peft_"):
        from dp_bench.bench_baselines import PeftClassifier
        from dp_bench.prompts import PRESETS

        hf_model = load_backbone(backbone_name).model  # PEFT wraps a model of its own
        model = PeftClassifier(hf_model, name.removeprefix("peft_"), PRESETS["prompt_tuning"].length, 3).to(device)
        return Method(name, model, lambda batch, key: model(batch), "PEFT, FEATURE_EXTRACTION + Linear on [CLS]")
    from dp_bench.prompted import PromptedModel
    from dp_bench.prompts import get_preset

    preset, _, option = name.partition("+")
    config = get_preset(preset)
    if option in ("cache", "nocache"):
        config = dataclasses.replace(config, cache_features=option == "cache")
    elif option:
        raise ValueError(f"method {name!r}: unknown option {option!r} (only '+cache' or '+nocache')")
    backbone = shared_backbone if shared_backbone is not None else load_backbone(backbone_name)
    model = PromptedModel(backbone, config, [3]).to(device)
    return Method(name, model, lambda batch, key: model(batch, cache_key=key)[0])


def step_calls(method: Method, batch: dict) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(train step: forward, cross-entropy, backward, AdamW step; eval: forward without grad)."""
    params = [p for p in method.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)

    def train():
        loss = F.cross_entropy(method.scores(batch, "train"), batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def evaluate():
        with torch.no_grad():
            return method.scores(batch, "eval")

    return train, evaluate


def _with_autocast(call: Callable[[], Any], dtype: torch.dtype | None) -> Callable[[], Any]:
    if dtype is None:
        return call

    def wrapped():
        with torch.autocast("cuda", dtype=dtype):
            return call()
    return wrapped


def bench_steps(
    names: list[str], settings: BenchSettings, sizes: Sizes, device: torch.device, autocast: torch.dtype | None = None,
) -> dict[str, dict]:
    """Train-step time and eval throughput of each method on one shared batch."""
    from dp_bench.backbones import load_backbone

    shared = load_backbone(settings.backbone).to(device)
    batch = make_batch(sizes.batch_size, sizes.seq_len, shared.config.vocab_size, settings.seed, device)
    tag = f"[steps {'bf16 autocast' if autocast else 'fp32'}]"
    results: dict[str, dict] = {}
    trains, evals = {}, {}
    for name in names:
        try:
            method = build_method(name, settings.backbone, device, shared)
            train, evaluate = step_calls(method, batch)
            method.model.train()
            _with_autocast(train, autocast)()  # fails here rather than mid-timing
        except Exception as err:  # noqa: BLE001 - a baseline that breaks is a result, not a crash
            message = f"fails: {type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
            say(f"{tag} {name:<20} {message}")
            results[name] = {"status": message}
            continue
        results[name] = {"status": "ok", "trainable_params": method.trainable_params, "note": method.note, "model": method.model}
        trains[name], evals[name] = _with_autocast(train, autocast), _with_autocast(evaluate, autocast)
    for name, stats in time_round_robin(trains, settings, device).items():
        results[name]["train_step"] = stats
        say(f"{tag} {name:<20} train step {_ms(stats)}")
    for name in evals:
        results[name]["model"].eval()
    for name, stats in time_round_robin(evals, settings, device).items():
        stats["examples_per_s"] = sizes.batch_size / stats["median_s"]
        results[name]["eval"] = stats
        say(f"{tag} {name:<20} eval {stats['examples_per_s']:.1f} examples/s ({_ms(stats)})")
    if device.type == "cuda" and settings.memory:
        for name in trains:
            results[name]["memory"] = cuda_memory(results[name]["model"], trains[name], evals[name], device)
            say(f"{tag} {name:<20} peak CUDA memory {results[name]['memory']['peak_allocated_mb']:.0f} MB")
    for entry in results.values():
        entry.pop("model", None)
    return results


# ---------------------------------------------------------------------------- memory


def cuda_memory(model: torch.nn.Module, train: Callable, evaluate: Callable, device: torch.device) -> dict:
    """Peak allocated CUDA memory over one train step and one eval pass (same process)."""
    model.train()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    train()
    model.eval()
    evaluate()
    _sync(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {"peak_allocated_mb": peak / 2**20, "before_mb": before / 2**20, "step_mb": (peak - before) / 2**20,
            "how": "torch.cuda.max_memory_allocated over 1 train step + 1 eval pass, in the timing process"}


def _proc_status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0; False elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_probe(spec: dict) -> dict:
    """Run in a fresh process: build one method, then peak RSS over 2 train steps + 1 eval pass.

    The peak-RSS mark is reset after the model is built, so ``step_mb`` is what the steps
    add on top of the loaded model; without that reset (non-Linux) only the process-lifetime
    ``ru_maxrss`` is known and ``how`` says so.
    """
    import resource

    from dp_bench.backbones import load_backbone

    device = torch.device("cpu")
    shared = load_backbone(spec["backbone"])
    method = build_method(spec["method"], spec["backbone"], device, shared)
    batch = make_batch(spec["batch_size"], spec["seq_len"], shared.config.vocab_size, spec["seed"], device)
    train, evaluate = step_calls(method, batch)
    gc.collect()
    before_kb = _proc_status_kb("VmRSS")
    reset = _reset_peak_rss()
    method.model.train()
    train()
    train()
    method.model.eval()
    evaluate()
    peak_kb = _proc_status_kb("VmHWM") if reset else None
    lifetime_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out = {"rss_before_mb": before_kb / 1024 if before_kb else None, "lifetime_peak_rss_mb": lifetime_kb / 1024}
    if peak_kb is not None and before_kb is not None:
        out.update(peak_rss_mb=peak_kb / 1024, step_mb=(peak_kb - before_kb) / 1024,
                   how="fresh process; peak RSS over 2 train steps + 1 eval pass, mark reset after loading")
    else:
        out.update(peak_rss_mb=lifetime_kb / 1024, step_mb=None, how="fresh process; ru_maxrss over its lifetime (loading included)")
    return out


def cpu_memory(name: str, settings: BenchSettings, sizes: Sizes) -> dict:
    """``memory_probe`` for one method in a fresh interpreter (ru_maxrss never goes down in-process)."""
    spec = {"method": name, "backbone": settings.backbone, "batch_size": sizes.batch_size,
            "seq_len": sizes.seq_len, "seed": settings.seed}
    code = "import json, sys; from dp_bench.bench import memory_probe; print(json.dumps(memory_probe(json.loads(sys.argv[1]))))"
    try:
        done = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return {"error": "memory probe timed out after 900 s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- GPU


def count_flops(call: Callable[[], Any]) -> int:
    """FLOPs of one call (matmuls, attention, convolutions), from ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        call()
    return int(counter.get_total_flops())


def peak_tflops_for(device_name: str, override: float | None) -> float | None:
    if override is not None:
        return override
    return next((v for k, v in PEAK_TFLOPS.items() if k in device_name.upper()), None)


def bench_gpu(names: list[str], settings: BenchSettings, sizes: Sizes) -> dict:
    """bf16 autocast train steps with achieved TFLOP/s, and the target insertion case in bf16."""
    device = torch.device("cuda")
    device_name = torch.cuda.get_device_name(device)
    peak = peak_tflops_for(device_name, settings.peak_tflops)
    steps = bench_steps(names, settings, sizes, device, autocast=torch.bfloat16)
    from dp_bench.backbones import load_backbone

    shared = load_backbone(settings.backbone).to(device)
    batch = make_batch(sizes.batch_size, sizes.seq_len, shared.config.vocab_size, settings.seed, device)
    for name, entry in steps.items():
        if entry["status"] != "ok":
            continue
        method = build_method(name, settings.backbone, device, shared)
        train, _ = step_calls(method, batch)
        method.model.train()
        flops = count_flops(_with_autocast(train, torch.bfloat16))
        achieved = flops / entry["train_step"]["median_s"] / 1e12
        entry["flops_per_step"] = flops
        entry["achieved_tflops"] = achieved
        entry["fraction_of_peak"] = achieved / peak if peak else None
        say(f"[gpu] {name:<20} {flops / 1e9:.1f} GFLOP/step, {achieved:.2f} TFLOP/s"
            + (f" = {100 * achieved / peak:.2f}% of {peak:g}" if peak else " (peak unknown: pass --peak-tflops)"))
    B, L, T = sizes.target_case
    bf16_sizes = dataclasses.replace(sizes, insertion_batch=(B,), insertion_prompt=(L,), insertion_seq=(T,))
    insertion = bench_insertion(settings, bf16_sizes, device, torch.bfloat16)
    return {"device": device_name, "peak_tflops": peak, "peak_source": "--peak-tflops" if settings.peak_tflops else "PEAK_TFLOPS table (dense bf16)",
            "steps": steps, "insertion": insertion}


# ---------------------------------------------------------------------------- targets


def ratio(a: dict | None, b: dict | None, key: str = "train_step") -> float | None:
    """``median(a) / median(b)`` of two methods' timings, None when either is missing."""
    if not a or not b or key not in a or key not in b:
        return None
    return a[key]["median_s"] / b[key]["median_s"]


def verdict(value: float | None, target: float, comparison: Comparison) -> dict:
    """met/missed, and by how much: for ``>=`` as a fraction of the target, for ``<=`` as the excess or headroom."""
    if value is None:
        return {"value": None, "target": target, "comparison": comparison, "met": None, "by": "not measured"}
    met = value >= target if comparison == ">=" else value <= target
    if comparison == ">=":
        by = f"met ({value / target:.1f}x the target)" if met else f"missed (reached {value / target:.0%} of the target)"
    else:
        by = f"met ({(target - value) / target:.0%} headroom)" if met else f"missed by {(value - target) / target:.0%}"
    return {"value": value, "target": target, "comparison": comparison, "met": met, "by": by}


def targets(record: dict, sizes: Sizes) -> list[dict]:
    """The issue's targets, each as a ratio measured within one run."""
    out = []
    B, L, T = sizes.target_case
    case = next((r for r in record.get("insertion", []) if (r["B"], r["L"], r["T"]) == (B, L, T)), None)
    cuda = record["device"] == "cuda"
    speedup = case["loop"]["median_s"] / case["ours"]["median_s"] if case else None
    out.append({"name": "insertion_speedup_vs_loop",
                "what": f"insertion fwd+bwd with ST position gradient, loop / ours (B={B}, L={L}, T={T}, H={HIDDEN})",
                **verdict(speedup, 100.0 if cuda else 15.0, ">=")})
    steps = record.get("steps", {})
    base = steps.get("prompt_tuning")
    for name, what, target in (
        ("adap_ins_pos+cache", "adap_ins_pos step with the feature cache / prompt_tuning step", 1.15),
        ("adap_ins_pos+nocache", "adap_ins_pos step without the cache / prompt_tuning step", 2.1),
    ):
        out.append({"name": f"{name}_vs_prompt_tuning", "what": what, **verdict(ratio(steps.get(name), base), target, "<=")})
    out.append({"name": "prompt_tuning_vs_peft", "what": "our prompt_tuning step / PEFT prompt tuning step",
                **verdict(ratio(base, steps.get("peft_prompt_tuning")), 1.05, "<=")})
    return out


# ---------------------------------------------------------------------------- report


def default_name(device: torch.device) -> str:
    """``cpu-2c-x86_64`` or the GPU's name in lowercase with dashes."""
    if device.type == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return f"cpu-{os.cpu_count()}c-{platform.machine().lower()}"


def _fmt_ms(stats: dict | None) -> str:
    if not stats:
        return "-"
    return f"{stats['median_s'] * 1e3:.1f} ({stats['q1_s'] * 1e3:.1f}-{stats['q3_s'] * 1e3:.1f}, n={stats['n']})"


def _fmt_ratio(value: float | None, places: int = 2) -> str:
    return "-" if value is None else f"{value:.{places}f}x"


def markdown(record: dict) -> str:
    """The tables of one record (``dp-bench table`` can include the file as is)."""
    v, m = record["versions"], record["machine"]
    cfg = record["config"]
    pinned = pinned_env(m)  # kernel pins change the arithmetic and the speed
    pins = f" with {', '.join(f'{k}={val}' for k, val in sorted(pinned.items()))}" if pinned else ""
    lines = [
        f"# Cost benchmark: {record['name']}",
        "",
        f"`{record['command']}` on {record['device_name']} ({m.get('cpus')} CPUs, {record['torch_threads']} torch threads){pins}, "
        f"torch {v.get('torch')}, transformers {v.get('transformers')}, peft {v.get('peft')}; "
        f"git {str(record['git'].get('git_sha'))[:10]}{' (dirty)' if record['git'].get('git_dirty') else ''}; "
        f"{record['created']}; {record['wall_time_s']:.0f} s; load average {record['load_average']['start']} -> {record['load_average']['end']}."
        + (" **Quick mode: tiny sizes, timings are meaningless.**" if cfg["quick"] else ""),
        "",
        "Times are medians with the interquartile range and the number of timed calls (after warm-up); "
        "methods in one table were timed round-robin in one process, so their ratios are comparable.",
        "",
    ]
    if record.get("targets"):
        lines += ["## Targets", "", "| measure | ratio | target | verdict |", "| --- | --- | --- | --- |"]
        for t in record["targets"]:
            lines.append(f"| {t['what']} | {_fmt_ratio(t['value'])} | {t['comparison']} {t['target']:g}x | {t['by']} |")
        lines.append("")
    if record.get("insertion"):
        lines += [
            f"## Prompt insertion, forward + backward (H={HIDDEN}, {record['insertion'][0]['dtype'].removeprefix('torch.')}, ms)",
            "",
            "ours: `arrange_with_choice` with the full straight-through position gradient; loop: per-example "
            "loop over rows and all L+1 candidates (the paper's code); gather: bare gather, no position gradient.",
            "",
            "| B | L | T | ours | loop | loop / ours | gather (reference) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in record["insertion"]:
            speed = r["loop"]["median_s"] / r["ours"]["median_s"]
            lines.append(f"| {r['B']} | {r['L']} | {r['T']} | {_fmt_ms(r['ours'])} | {_fmt_ms(r['loop'])} | {speed:.1f}x | {_fmt_ms(r['gather'])} |")
        lines.append("")
    if record.get("steps"):
        lines += _steps_table(record["steps"], f"## Train step and evaluation ({record['device']} fp32; "
                              f"{cfg['backbone']}, B={cfg['batch_size']}, T={cfg['seq_len']}, L=20)", record["device"])
    gpu = record.get("gpu")
    if gpu and "skipped" not in gpu:
        lines += _steps_table(gpu["steps"], f"## GPU, bf16 autocast: {gpu['device']} (peak {gpu['peak_tflops']} TFLOP/s dense bf16)",
                              "cuda", flops=True)
        lines += ["FLOPs: `torch.utils.flop_counter.FlopCounterMode` over one whole train step (the backbone's forward + "
                  "backward is nearly all of it); TFLOP/s = FLOPs / median bf16 step time.", ""]
        for r in gpu["insertion"]:
            lines += [f"bf16 insertion B={r['B']} L={r['L']} T={r['T']}: ours {_fmt_ms(r['ours'])} ms, loop {_fmt_ms(r['loop'])} ms "
                      f"({r['loop']['median_s'] / r['ours']['median_s']:.1f}x), gather {_fmt_ms(r['gather'])} ms.", ""]
    elif gpu:
        lines += [f"GPU section: {gpu['skipped']}.", ""]
    if record.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in record["notes"]], ""]
    if record.get("errors"):
        lines += ["## Failed sections", "", *[f"- {k}: `{v.strip().splitlines()[-1]}`" for k, v in record["errors"].items()], ""]
    return "\n".join(lines)


def _steps_table(steps: dict, title: str, device: str, flops: bool = False) -> list[str]:
    base = steps.get("prompt_tuning")
    memory_col = "peak CUDA alloc (MB)" if device == "cuda" else "peak RSS in steps (MB, +over loaded model)"
    head = ["method", "trainable params", "train step (ms)", "vs prompt_tuning", "eval (examples/s)", memory_col]
    if flops:
        head += ["GFLOP/step", "TFLOP/s", "of peak"]
    lines = [title, "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, e in steps.items():
        if e["status"] != "ok":
            lines.append(f"| {name} | {e['status']} |" + " |" * (len(head) - 2))
            continue
        mem = e.get("memory") or {}
        if "peak_allocated_mb" in mem:
            mem_cell = f"{mem['peak_allocated_mb']:.0f}"
        elif mem.get("peak_rss_mb") is not None:
            mem_cell = f"{mem['peak_rss_mb']:.0f}" + (f" (+{mem['step_mb']:.0f})" if mem.get("step_mb") is not None else "")
        else:
            mem_cell = mem.get("error", "-")
        row = [name, f"{e['trainable_params']:,}", _fmt_ms(e["train_step"]), _fmt_ratio(ratio(e, base)),
               f"{e['eval']['examples_per_s']:.1f}", mem_cell]
        if flops:
            frac = e.get("fraction_of_peak")
            row += [f"{e['flops_per_step'] / 1e9:.1f}", f"{e['achieved_tflops']:.2f}", "-" if frac is None else f"{100 * frac:.2f}%"]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def print_summary(record: dict) -> None:
    say("")
    say(markdown(record))


# ---------------------------------------------------------------------------- command


@contextlib.contextmanager
def quiet_loading():
    """No weight-loading progress bars or deprecation warnings between the progress lines."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def run(settings: BenchSettings, quick: bool = False, command: str = "dp-bench bench") -> dict:
    """Measure the selected sections and write ``<out>/<name>.json`` and ``.md``; returns the record."""
    with quiet_loading():
        return _run(settings, quick, command)


def _run(settings: BenchSettings, quick: bool, command: str) -> dict:
    from dp_bench.machine import machine_info
    from dp_bench.results import SCHEMA_VERSION, git_state, package_versions, write_json_atomic

    started = time.time()
    load_start = [round(x, 2) for x in os.getloadavg()]
    device = torch.device(settings.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sizes = dataclasses.replace(QUICK_SIZES) if quick else Sizes()
    if device.type == "cuda" and not quick:
        sizes = dataclasses.replace(sizes, batch_size=32, seq_len=256)
    sizes = dataclasses.replace(sizes, batch_size=settings.batch_size or sizes.batch_size, seq_len=settings.seq_len or sizes.seq_len)
    sections = settings.section_list
    # A partial or quick run never overwrites the full run's files.
    partial = "" if set(sections) == set(SECTIONS) else "-" + "+".join(sections)
    name = settings.name or default_name(device) + partial + ("-quick" if quick else "")
    versions = package_versions()
    for extra in ("peft", "psutil"):
        try:
            from importlib import metadata

            versions[extra] = metadata.version(extra)
        except Exception:  # noqa: BLE001
            versions[extra] = None
    machine = machine_info()
    record: dict[str, Any] = {
        "kind": "bench", "schema_version": SCHEMA_VERSION, "name": name, "command": command,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else (machine["cpu"]["model_name"] or "CPU"),
        "torch_threads": torch.get_num_threads(),
        "machine": machine, "versions": versions, "git": git_state(),
        "config": {**dataclasses.asdict(settings), "quick": quick, "sections": sections, "device": device.type,
                   "sizes": dataclasses.asdict(sizes), "batch_size": sizes.batch_size, "seq_len": sizes.seq_len,
                   "prompt_length": 20, "hidden_insertion": HIDDEN},
        "notes": [], "errors": {},
    }
    say(f"dp-bench bench {name}: {device.type} ({record['device_name']}), {torch.get_num_threads()} threads, "
        f"sections {','.join(sections)}{', quick' if quick else ''}")

    def guarded(section: str, measure: Callable[[], Any]) -> Any:
        """A section that crashes is recorded (traceback in ``errors``) and the others still run."""
        try:
            return measure()
        except Exception as err:  # noqa: BLE001
            say(f"[{section}] FAILED: {type(err).__name__}: {err}")
            record["errors"][section] = traceback.format_exc()
            return None

    if "insertion" in sections:
        rows = guarded("insertion", lambda: bench_insertion(settings, sizes, device))
        if rows:
            record["insertion"] = rows
            reduced = [f"B={r['B']} L={r['L']} T={r['T']}: n={r['loop']['n']}" for r in rows if r["loop"]["n"] < settings.repeats]
            if reduced:
                record["notes"].append(f"The per-example loop is slow; it got fewer timed calls (budget {settings.budget_s:g} s "
                                       f"per measurement, at least {settings.min_repeats}): {'; '.join(reduced)}.")
    names = list(dict.fromkeys(n for s in ("features", "peft") if s in sections for n in SECTION_METHODS[s]))
    steps = guarded("steps", lambda: bench_steps(names, settings, sizes, device)) if names else None
    if steps:
        record["steps"] = steps
        if device.type == "cpu" and settings.memory:
            # A fresh interpreter per method costs seconds; --quick only checks that the probe works.
            probed = [n for n in names if steps[n]["status"] == "ok"][: 1 if quick else None]
            if quick:
                record["notes"].append(f"--quick: peak memory probed for {probed[0]} only.")
            for n in probed:
                steps[n]["memory"] = mem = cpu_memory(n, settings, sizes)
                say(f"[memory] {n:<20} " + (f"peak RSS {mem['peak_rss_mb']:.0f} MB (+{mem['step_mb']:.0f} MB over the loaded model)"
                                             if mem.get("step_mb") is not None else str(mem)))
        record["notes"].append("Train step = forward, cross-entropy, backward, AdamW step on one fixed batch; eval = forward "
                               "without grad. The frozen backbone runs without dropout for every method (PEFT's included).")
        if "adap_ins_pos+cache" in steps:
            record["notes"].append("adap_ins_pos+cache: the batch's pooled features are cached by the warm-up call, as from "
                                   "the second epoch on; its eval throughput is with the eval cache filled too.")
        if "peft_prefix_tuning" in steps:
            prefix = steps["peft_prefix_tuning"]["status"]
            record["notes"].append(f"PEFT prefix tuning on this BERT encoder under transformers {versions.get('transformers')} / "
                                   f"peft {versions.get('peft')}: {'runs' if prefix == 'ok' else prefix}.")
    if "gpu" in sections:
        if torch.cuda.is_available():
            gpu = guarded("gpu", lambda: bench_gpu(names or list(SECTION_METHODS["features"]), settings, sizes))
            if gpu:
                record["gpu"] = gpu
        else:
            record["gpu"] = {"skipped": "no CUDA device (torch.cuda.is_available() is False)"}
    record["targets"] = targets(record, sizes)
    if quick:
        record["notes"].append("--quick: tiny sizes and 1-2 repeats; it only checks that the benchmark runs.")
    record["load_average"] = {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]}
    record["wall_time_s"] = time.time() - started
    out = Path(settings.out)
    write_json_atomic(out / f"{name}.json", record)
    (out / f"{name}.md").write_text(markdown(record) + "\n")
    print_summary(record)
    say(f"wrote {out / (name + '.json')} and {out / (name + '.md')} in {record['wall_time_s']:.0f} s")
    return record


def build_parser():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(
        prog="dp-bench bench", exit_on_error=False,
        description="Time every method side by side: prompt insertion (ours vs the per-example loop), "
        "the feature cache, ours vs PEFT, and bf16 on a GPU. Writes <out>/<name>.json and .md.",
    )
    parser.add_class_arguments(BenchSettings)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1-2 repeats: checks that it runs (CI); never judge timings by it")
    return parser


def _underscored(arg: str) -> str:
    """``--peak-tflops=1`` -> ``--peak_tflops=1`` for our fields, so both spellings work."""
    name, sep, value = arg.partition("=")
    fields = {f.name for f in dataclasses.fields(BenchSettings)}
    if name.startswith("--") and name[2:].replace("-", "_") in fields:
        return "--" + name[2:].replace("-", "_") + sep + value
    return arg


def main(argv: list[str] | None = None) -> int:
    """``dp-bench bench``: exit status 0 when every section ran, 1 when one failed (the record is written either way)."""
    from jsonargparse import ArgumentError

    given = list(sys.argv[1:] if argv is None else argv)
    argv = [_underscored(a) for a in given]
    parser = build_parser()
    if any(a in ("-h", "--help") for a in argv):
        parser.print_help()
        return 0
    try:
        cfg = parser.parse_args(argv)
        settings = BenchSettings(**{f.name: cfg[f.name] for f in dataclasses.fields(BenchSettings)})
    except (ArgumentError, ValueError) as err:
        print(f"dp-bench bench: error: {err}", file=sys.stderr)
        return 2
    if cfg.quick:
        # Explicit flags still win; the defaults shrink to one warm-up and one timed call.
        defaults = BenchSettings()
        settings = dataclasses.replace(
            settings,
            repeats=settings.repeats if settings.repeats != defaults.repeats else 2,
            min_repeats=1, budget_s=0.0,
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    record = run(settings, quick=cfg.quick, command=shlex.join(["dp-bench", "bench", *given]))
    if record["errors"]:
        print(f"dp-bench bench: sections failed: {', '.join(record['errors'])} (tracebacks in the record)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
