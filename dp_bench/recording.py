"""Writes the run record (``results.py``) from inside a Lightning fit: a callback.

It follows the validation epochs, keeps the best value of every metric with its
epoch/step, snapshots the per-example predictions of the epoch that model selection
picks (``monitor``), and writes the record at the end of fit. Each validation epoch also
records a digest of the trained weights (``trainable_sha256``), so that a rerun can say
whether it reproduced the weights bit for bit, not only the metrics and predictions, which
are discrete and hide last-bit differences; a crashed or interrupted
fit leaves a record with ``status`` "failed" or "interrupted" and the error. When a test on
val.jsonl follows the fit (selection on a train holdout), the record says "interrupted" until
that test is in it: a process killed during the test must not leave holdout numbers standing
as a finished run (the grid then resumes it, and the resumed fit only tests).
"""

from __future__ import annotations

import hashlib
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch

from dp_bench.machine import machine_info
from dp_bench.results import (
    SCHEMA_VERSION,
    TEST_PENDING,
    git_state,
    package_versions,
    write_json_atomic,
)


@dataclass
class RecordSettings:
    """Where the run record goes.

    Args:
        dir: folder for records whose path is not given.
        path: exact record file (grids set it); None names it from task, method, seed and time.
        grid: name of the grid this run belongs to (the W&B group).
        setting: the grid's search setting this run tries (``lr_scale3.0``); None: the grid as
            configured. Runs that differ only in it are candidates of one hyperparameter search.
        monitor: validation metric that selects the reported epoch (higher is better).
    """

    dir: str = "results/runs"
    path: str | None = None
    grid: str | None = None
    setting: str | None = None
    monitor: str = "val/score"


class RunRecorder(L.Callback):
    """Accumulates validation results and writes one JSON record per fit."""

    def __init__(self, settings: RecordSettings, identity: dict[str, Any], config: dict[str, Any],
                 test_follows: bool = False) -> None:
        self.settings, self.identity, self.config = settings, identity, config
        self.test_follows = test_follows  # the CLI's after_fit tests the selected checkpoint
        self.path = Path(settings.path) if settings.path else Path(settings.dir) / default_record_name(identity)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, dict[str, Any]] = {}
        self.selected: dict[str, Any] | None = None
        self.started = time.time()
        self.started_at = datetime.now(UTC).isoformat()
        self.resumed_elapsed = 0.0  # wall time spent before a resume
        # The code the fit runs: read when it starts, not when the record is written (a commit
        # made during a long fit is not the code that ran). A resumed fit keeps the first
        # start's too, when they differ.
        self.git: dict[str, Any] | None = None
        self.git_before_resume: dict[str, Any] | None = None
        # A terminal shows Lightning's progress bar; a log file (a grid's child, nohup) gets
        # nothing from it until the fit ends, so it gets one line per validation instead.
        self.epoch_lines = not sys.stdout.isatty()

    # ---------------------------------------------------------------- following the fit

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.time() - self.resumed_elapsed
        self.git = git_state()
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.experiment.config.update({"resolved": self.config, **self.identity}, allow_val_change=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        results = getattr(pl_module, "last_eval", {}).get("val")
        if not results:
            return
        flat = {f"val/{task}/{name}": value for task, r in results.items() for name, value in r["metrics"].items()}
        flat["val/score"] = sum(r["metrics"]["score"] for r in results.values()) / len(results)
        where = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        self.history.append({**where, "metrics": flat, "trainable_sha256": trainable_digest(pl_module)})
        for name, value in flat.items():
            if name not in self.best or value > self.best[name]["value"]:
                self.best[name] = {"value": value, **where}
        monitored = flat.get(self.settings.monitor)
        if monitored is not None and (self.selected is None or monitored > self.selected["metrics"][self.settings.monitor]):
            self.selected = {**where, "monitor": self.settings.monitor, "metrics": flat, "predictions": results}
        if self.epoch_lines and trainer.is_global_zero:
            print(self.epoch_line(trainer, monitored), flush=True)

    def epoch_line(self, trainer: L.Trainer, monitored: float | None) -> str:
        """``[dp-bench] epoch 3/9 (step 92, 41 s): val/score 0.6120; selected epoch 1 (0.6250)``.

        Epochs count from 0, as in the record, the summary and Lightning's bar (``3/9``: the
        fourth of ten)."""
        last = f"/{trainer.max_epochs - 1}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        line = f"[dp-bench] epoch {trainer.current_epoch}{last} (step {trainer.global_step}, {time.time() - self.started:.0f} s)"
        if monitored is not None and self.selected is not None:
            line += (f": {self.settings.monitor} {monitored:.4f}; selected epoch {self.selected['epoch']} "
                     f"({self.selected['metrics'][self.settings.monitor]:.4f})")
        return line

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.test_follows:
            path = self.write(trainer, pl_module, status="interrupted", error=TEST_PENDING)
        else:
            path = self.write(trainer, pl_module, status="finished")
        if trainer.is_global_zero:
            print(self.summary(path), flush=True)

    def summary(self, path: Path) -> str:
        """What the user reads at the end of a fit: the selected epoch, best values, the record."""
        lines = [f"[dp-bench] {self.identity['task']} / {self.identity['method']} / seed {self.identity['seed']}"]
        if self.selected:
            chosen = ", ".join(f"{k}={v:.4f}" for k, v in self.selected["metrics"].items())
            lines.append(f"  selected epoch {self.selected['epoch']} by {self.selected['monitor']}: {chosen}")
        for name, best in self.best.items():
            lines.append(f"  best {name} = {best['value']:.4f} (epoch {best['epoch']}, step {best['step']})")
        lines.append(f"  record: {path}")
        return "\n".join(lines)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = getattr(pl_module, "last_eval", {}).get("test")
        if results and self.path.exists():
            from dp_bench.results import read_record

            record = read_record(self.path)
            record["test"] = {task: r["metrics"] for task, r in results.items()}
            # Per-example test predictions, for bootstrap intervals over examples.
            record["test_predictions"] = {task: {k: v for k, v in r.items() if k != "metrics"} for task, r in results.items()}
            record["status"], record["error"] = "finished", None
            write_json_atomic(self.path, record)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        interrupted = isinstance(exception, KeyboardInterrupt) or type(exception).__name__ == "SIGTERMException"
        error = "".join(traceback.format_exception_only(type(exception), exception)).strip()
        self.write(trainer, pl_module, status="interrupted" if interrupted else "failed", error=error)

    # ---------------------------------------------------------------- resuming

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint, so a resumed fit keeps the epochs it ran before."""
        return {"history": self.history, "best": self.best, "selected": self.selected,
                "started_at": self.started_at, "elapsed": time.time() - self.started,
                "git": self.git_before_resume or self.git}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history, self.best, self.selected = state["history"], state["best"], state["selected"]
        self.started_at = state["started_at"]
        self.resumed_elapsed = state["elapsed"]
        self.git_before_resume = state.get("git")  # absent in checkpoints older than it

    # ---------------------------------------------------------------- the record

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule, status: str, error: str | None = None) -> Path:
        datamodule = trainer.datamodule
        record = {
            "schema": SCHEMA_VERSION,
            "status": status,
            "error": error,
            **self.identity,
            "metrics": self.best,
            "selected": self.selected,
            "history": self.history,
            "trainable_parameters": sum(p.numel() for p in pl_module.parameters() if p.requires_grad),
            "data": getattr(datamodule, "data_info", None),
            "config": self.config,
            **(self.git or git_state()),  # git_state(): the fit failed before it started
            **({"git_before_resume": self.git_before_resume}
               if self.git_before_resume not in (None, self.git) else {}),
            "versions": package_versions(),
            "machine": machine_info(),
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "wall_time_s": round(time.time() - self.started, 3),
            "started_at": self.started_at,
            "finished_at": datetime.now(UTC).isoformat(),
            "wandb": wandb_info(trainer),
        }
        return write_json_atomic(self.path, record)


def trainable_digest(module: torch.nn.Module) -> str:
    """SHA-256 of the trainable parameters' names, dtypes, shapes and bytes, in module order.

    The weights themselves would be megabytes a record (gigabytes over a grid); their digest
    says as much about whether two fits trained the same bits."""
    digest = hashlib.sha256()
    for name, parameter in module.named_parameters():
        if parameter.requires_grad:
            values = parameter.detach().to("cpu").contiguous().reshape(-1)
            digest.update(f"{name} {values.dtype} {tuple(parameter.shape)}\n".encode())
            digest.update(values.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def default_record_name(identity: dict[str, Any]) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    backbone = str(identity["backbone"]).rstrip("/").split("/")[-1]
    return f"{identity['task']}__{identity['method']}__{identity['regime']}__{backbone}__s{identity['seed']}__{stamp}.json"


def wandb_info(trainer: L.Trainer) -> dict[str, Any] | None:
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            run = logger.experiment
            return {"project": getattr(run, "project", None), "id": getattr(run, "id", None), "dir": getattr(run, "dir", None)}
    return None
