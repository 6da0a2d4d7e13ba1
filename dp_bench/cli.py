"""``dp-bench``: LightningCLI for fit/validate/test, plus the harness commands.

``dp-bench fit --config experiments/cb_dp.yaml`` trains; configs compose left to right
(``--config tasks/cb.yaml --config methods/adap_ins_pos.yaml``) and flags override them.
``dp-bench grid|table|bench`` run comparison grids, regenerate tables, and benchmark.
"""

from __future__ import annotations

import json
import netrc
import os
import sys
import warnings

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from dp_bench.data.datamodule import SuperGLUEDataModule
from dp_bench.module import PromptTuningModule
from dp_bench.recording import RecordSettings, RunRecorder, default_record_name

HARNESS_COMMANDS = {
    "grid": ("dp_bench.grid", "run a comparison grid: dp-bench grid --config experiments/grids/smoke.yaml"),
    "table": ("dp_bench.tables", "regenerate results/tables from the run records"),
    "bench": ("dp_bench.bench", "time every method side by side (--quick for CI)"),
}

DESCRIPTION = """dp-bench: soft prompt tuning on a frozen backbone (Yang et al. 2023, arXiv 2303.02909).

Lightning subcommands: fit, validate, test, predict (see `dp-bench fit --help`).
Harness commands: """ + "; ".join(f"`dp-bench {k}`: {v[1]}" for k, v in HARNESS_COMMANDS.items())


def wandb_has_credentials() -> bool:
    """True when an API key is configured, so W&B may go online."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class DPBenchCLI(LightningCLI):
    """LightningCLI with run records, argument links and harness defaults."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_class_arguments(RecordSettings, "record")
        # The data is tokenised for the model's backbone; the model gets the data's tasks.
        parser.link_arguments("model.backbone", "data.backbone", apply_on="parse")
        # One seed per run: initialisation, shuffling, few-shot samples and holdouts.
        parser.link_arguments("seed_everything", "data.seed", apply_on="parse")
        parser.link_arguments("data.tasks", "model.tasks", apply_on="parse")

    def _identity(self) -> dict:
        cfg = self.config[self.subcommand]
        data, model = cfg["data"], cfg["model"]
        regime = data["regime"]
        if regime == "few_shot":
            regime = f"few_shot_{data['few_shot_source']}"
        return {
            "task": "+".join(data["tasks"]), "tasks": list(data["tasks"]), "method": model["method"],
            "backbone": model["backbone"], "regime": regime, "seed": cfg["seed_everything"],
            "grid": cfg["record"]["grid"],
        }

    def before_instantiate_classes(self) -> None:
        if self.subcommand is None:
            return
        cfg = self.config[self.subcommand]
        identity = self._identity()
        # Name, group and tags for W&B unless the config set them.
        logger = cfg["trainer"].get("logger")
        if isinstance(logger, dict) or hasattr(logger, "init_args"):
            init_args = logger["init_args"]
            if init_args.get("name") is None:
                init_args["name"] = f"{identity['task']}/{identity['method']}/s{identity['seed']}"
            if init_args.get("group") is None and identity["grid"]:
                init_args["group"] = identity["grid"]
            if not init_args.get("tags"):
                init_args["tags"] = [identity["regime"], identity["backbone"]]

    def instantiate_trainer(self, **kwargs):
        cfg = self.config[self.subcommand]
        settings = RecordSettings(**cfg["record"])
        identity = self._identity()
        if settings.path is None:
            settings.path = os.path.join(settings.dir, default_record_name(identity))
        resolved = json.loads(self.parser.dump(self.config, format="json", skip_none=False, skip_check=True))
        recorder = RunRecorder(settings, identity, resolved[self.subcommand])
        checkpoint = ModelCheckpoint(
            dirpath=os.path.join("checkpoints", os.path.splitext(os.path.basename(settings.path))[0]),
            monitor=settings.monitor, mode="max", save_last=True, save_top_k=1,
        )
        extra = [recorder, checkpoint] if self.subcommand == "fit" else []
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.extend(extra)
        if self.subcommand == "fit":
            # The bare ModelCheckpoint Lightning adds by default would duplicate ours.
            trainer.callbacks[:] = [c for c in trainer.callbacks if not (isinstance(c, ModelCheckpoint) and c is not checkpoint)]
        self.recorder = recorder
        return trainer


def main(args: list[str] | None = None) -> int | None:
    """Console entry point: an exit code from harness commands, else None (exit 0).

    Our own validation raises ValueError with a message that names the culprit (task,
    file and line, field); the user gets that one line, not a traceback, unless
    DP_BENCH_DEBUG=1 asks for it.
    """
    try:
        result = run(args)
    except ValueError as err:
        if os.environ.get("DP_BENCH_DEBUG"):
            raise
        print(f"dp-bench: error: {err}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else None


def run(args: list[str] | None = None):
    """Run a command in-process and return its object (the LightningCLI for fit/test/...)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in HARNESS_COMMANDS:
        import importlib

        return importlib.import_module(HARNESS_COMMANDS[argv[0]][0]).main(argv[1:])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The frozen backbone stays in eval mode on purpose (no dropout): see PromptedModel.train.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    if not wandb_has_credentials():
        os.environ.setdefault("WANDB_MODE", "offline")  # never block on the network
    return DPBenchCLI(
        PromptTuningModule,
        SuperGLUEDataModule,
        seed_everything_default=0,
        save_config_callback=None,  # the run record holds the resolved config
        trainer_defaults={
            "max_epochs": 10,
            "logger": {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": {"project": "dp-bench", "save_dir": "."}},
            "log_every_n_steps": 10,
        },
        parser_kwargs={"description": DESCRIPTION},
        args=args,
    )


if __name__ == "__main__":
    main()
