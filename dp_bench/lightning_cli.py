"""The LightningCLI behind ``dp-bench fit|validate|test|predict``: links, records, W&B defaults.

Kept apart from ``cli.py`` so that ``dp-bench grid|table`` start without importing torch.
"""

from __future__ import annotations

import json
import netrc
import os
import re
import warnings

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from dp_bench.data.datamodule import SuperGLUEDataModule
from dp_bench.module import PromptTuningModule
from dp_bench.random_state import RandomStateCheckpoint
from dp_bench.recording import RecordSettings, RunRecorder, default_record_name
from dp_bench.results import checkpoint_dir


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
            "grid": cfg["record"]["grid"], "setting": cfg["record"].get("setting"),
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
                setting = f"/{identity['setting']}" if identity["setting"] else ""
                init_args["name"] = f"{identity['task']}/{identity['method']}/s{identity['seed']}{setting}"
            if init_args.get("group") is None and identity["grid"]:
                init_args["group"] = identity["grid"]
            if not init_args.get("tags"):
                init_args["tags"] = [identity["regime"], identity["backbone"]]

    def tests_after_fit(self) -> bool:
        """Honest protocol: with a train holdout for selection, val.jsonl is reported once, by a test after fit."""
        return getattr(self.datamodule, "selection", "val") == "train_holdout"

    def after_fit(self) -> None:
        """The test of val.jsonl at the selected checkpoint (:meth:`tests_after_fit`)."""
        if not self.tests_after_fit():
            return
        best = self.best_checkpoint.best_model_path
        if not best and not self.trainer.fast_dev_run:  # fast_dev_run saves no checkpoint: a smoke run
            # Testing the last weights instead would report val.jsonl for a model nothing selected.
            error = (
                "no checkpoint was selected on the train holdout, so val.jsonl is not reported: "
                "validation never ran (see trainer.limit_val_batches and trainer.check_val_every_n_epoch)"
            )
            self.recorder.write(self.trainer, self.model, status="failed", error=error)
            raise ValueError(error)
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)

    def instantiate_trainer(self, **kwargs):
        cfg = self.config[self.subcommand]
        settings = RecordSettings(**cfg["record"])
        identity = self._identity()
        if settings.path is None:
            settings.path = os.path.join(settings.dir, default_record_name(identity))
        resolved = json.loads(self.parser.dump(self.config, format="json", skip_none=False, skip_check=True))
        test_follows = self.subcommand == "fit" and self.tests_after_fit()
        recorder = RunRecorder(settings, identity, resolved[self.subcommand], test_follows=test_follows)
        # Two checkpoints: the selected epoch (``after_fit`` tests it) and the latest one
        # (``last.ckpt``, what ``--ckpt_path`` resumes). Lightning 2.6 writes ``save_last`` only
        # at a step where a top-k checkpoint was saved, so with save_top_k=1 ``last.ckpt`` stayed
        # at the best epoch and a resumed run redid the epochs after it; an unmonitored
        # callback named "last" writes it at every validation instead.
        dirpath = checkpoint_dir(settings.path)
        best = ModelCheckpoint(dirpath=dirpath, monitor=settings.monitor, mode="max", save_top_k=1)
        latest = ModelCheckpoint(
            dirpath=dirpath, filename=ModelCheckpoint.CHECKPOINT_NAME_LAST, monitor=None, save_top_k=1,
            enable_version_counter=False,
        )
        if self.subcommand == "fit" and cfg.get("ckpt_path"):
            # A resumed run finds its own checkpoints in its folder, as it should (the filter names
            # that folder only: a fit in the same process that meets another one still warns).
            own = re.escape(os.path.realpath(os.path.expanduser(dirpath)))
            warnings.filterwarnings("ignore", message=rf"Checkpoint directory {own} exists and is not empty")
        extra = [recorder, best, latest, RandomStateCheckpoint()] if self.subcommand == "fit" else []
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.extend(extra)
        if self.subcommand == "fit":
            # The bare ModelCheckpoint Lightning adds by default would duplicate ours.
            ours = (best, latest)
            trainer.callbacks[:] = [c for c in trainer.callbacks if not (isinstance(c, ModelCheckpoint) and c not in ours)]
        self.recorder, self.best_checkpoint = recorder, best
        return trainer




def build_cli(args: list[str] | None, description: str) -> DPBenchCLI:
    """Parse ``args`` (None: ``sys.argv``) and run the subcommand (the LightningCLI does both on construction)."""
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
        parser_kwargs={"description": description},
        args=args,
    )
