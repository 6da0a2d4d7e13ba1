"""The LightningModule: training and evaluation of one prompt method on one or more tasks.

The system is composed from parts passed in (Lightning style): a backbone name, a
:class:`PromptConfig` and the task names linked from the DataModule. Only the prompt,
its policy networks and the head are optimised (plus the backbone for ``fine_tuning``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F

from dp_bench.backbones import DEFAULT_BACKBONE, HeadKind, load_backbone, load_tokenizer
from dp_bench.data.tasks import get_task
from dp_bench.heads import verbalizer_token_ids
from dp_bench.prompted import PromptedModel
from dp_bench.prompts import PRESETS
from dp_bench.prompts.config import PromptConfig
from dp_bench.prompts.gumbel import annealed_temperature


class PromptTuningModule(L.LightningModule):
    """Trains a soft prompt on a frozen backbone.

    Args:
        backbone: Hugging Face id, local path, or a packaged short name
            ("all-MiniLM-L6-v2", "SmolLM2-135M-Instruct").
        method: name of the method this run reports (a preset in ``dp_bench.prompts.PRESETS``
            or a name of your own); ``prompt`` defines what it does.
        prompt: the prompt method (position, length, representation, depth).
        head_kind: "encoder", "seq2seq" or "causal"; None detects it from the backbone.
        tasks: task names, in the DataModule's order (the CLI links ``data.tasks`` here).
        optimizer: "adamw", or "adafactor" (the T5 prompt-tuning setting, lr 0.3).
        lr: learning rate of prompt vectors and head.
        policy_lr: learning rate of the policy networks (None: same as lr).
        backbone_lr: learning rate of backbone weights when they are tuned.
        lr_scale: multiplies every learning rate above: the one knob a grid's ``search``
            turns for all methods alike, though their base rates differ (equal budget).
        weight_decay: AdamW weight decay.
        warmup_ratio: fraction of steps with linear warm-up before linear decay.
    """

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        method: str = "prompt_tuning",
        prompt: PromptConfig | None = None,
        head_kind: HeadKind | None = None,
        tasks: list[str] | None = None,
        optimizer: Literal["adamw", "adafactor"] = "adamw",
        lr: float = 1e-2,
        policy_lr: float | None = None,
        backbone_lr: float = 2e-5,
        lr_scale: float = 1.0,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.06,
    ) -> None:
        super().__init__()
        if not lr_scale > 0:
            raise ValueError(f"lr_scale={lr_scale}: must be > 0 (it multiplies the learning rates)")
        self.save_hyperparameters()
        self.prompt_config = prompt or PRESETS.get(method) or PromptConfig()
        self.task_specs = [get_task(name) for name in tasks or ["cb"]]
        core = load_backbone(backbone, head_kind)
        verbalizers = None
        if core.kind != "encoder":
            tokenizer = load_tokenizer(backbone)
            verbalizers = [verbalizer_token_ids(tokenizer, list(t.verbalizer)) for t in self.task_specs]
        self.net = PromptedModel(core, self.prompt_config, [t.num_labels for t in self.task_specs], verbalizers)
        if not any(p.requires_grad for p in self.net.parameters()):
            raise ValueError(
                f"method {method!r} trains nothing on the {core.kind} backbone {backbone!r}: its verbalizer head "
                "reads the LM's own token scores and has no weights (use prompt_tuning, p_tuning_v2 or fine_tuning)"
            )
        # Checkpoints hold trainable parameters and the feature cache only (see on_save_checkpoint).
        self.strict_loading = False
        self._outputs: dict[str, list[dict]] = defaultdict(list)
        self.last_eval: dict[str, dict] = {}

    # ------------------------------------------------------------------ forward and steps

    def forward(self, batch: dict, cache_key: str | None = None):
        return self.net(batch, cache_key)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        prompt = self.net.prompt
        if prompt is not None:
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            c = self.prompt_config
            prompt.tau = annealed_temperature(self.global_step, total, c.tau_start, c.tau_end)
            self.log("train/tau", prompt.tau, on_step=True, on_epoch=False)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        scores, _ = self(batch, cache_key="train")
        loss = F.cross_entropy(scores, batch["labels"])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(scores))
        return loss

    def _eval_step(self, stage: str, batch: dict, dataloader_idx: int) -> None:
        scores, decision = self(batch, cache_key=stage)
        labelled = batch["labels"] >= 0
        if bool(labelled.any()):
            loss = F.cross_entropy(scores[labelled], batch["labels"][labelled])
            self.log(f"{stage}/loss", loss, batch_size=int(labelled.sum()), add_dataloader_idx=False)
        row = {
            "task_idx": batch["task_idx"], "example_idx": batch["example_idx"],
            "group_idx": batch["group_idx"], "label": batch["labels"], "pred": scores.argmax(-1),
        }
        if decision is not None:
            if decision.split_weights is not None:
                row["position"] = decision.split
            if decision.keep is not None:
                row["length"] = decision.keep.sum(1).long()
            if decision.pool_weights is not None:
                row["pool"] = decision.pool_weights.argmax(-1)
        self._outputs[stage].append({k: v.detach().cpu() for k, v in row.items()})

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step("val", batch, dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step("test", batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._finish_eval("val")

    def on_test_epoch_end(self) -> None:
        self._finish_eval("test")

    def _finish_eval(self, stage: str) -> None:
        """Official metrics per task, their macro average as ``{stage}/score``."""
        from dp_bench.metrics import TaskMetrics

        rows = self._outputs.pop(stage, [])
        if not rows:
            return
        cat = {k: torch.cat([r[k] for r in rows]) for k in rows[0]}
        results, scores = {}, []
        for t, spec in enumerate(self.task_specs):
            mine = (cat["task_idx"] == t) & (cat["label"] >= 0)
            if not bool(mine.any()):
                continue
            metrics = TaskMetrics(spec)
            metrics.update(cat["pred"][mine], cat["label"][mine], cat["group_idx"][mine])
            values = metrics.compute()
            for name, value in values.items():
                self.log(f"{stage}/{spec.name}/{name}", float(value), add_dataloader_idx=False)
            scores.append(float(values["score"]))
            results[spec.name] = {
                "metrics": {k: float(v) for k, v in values.items()},
                **{k: cat[k][cat["task_idx"] == t].tolist() for k in cat if k != "task_idx"},
            }
        if scores:
            self.log(f"{stage}/score", sum(scores) / len(scores), prog_bar=True, add_dataloader_idx=False)
        self.last_eval[stage] = results
        self._log_decisions(stage, results)

    def _log_decisions(self, stage: str, results: dict) -> None:
        """W&B histograms of the chosen positions, lengths and pool members per task."""
        loggers = [lg for lg in (self.loggers if self._trainer is not None else []) if type(lg).__name__ == "WandbLogger"]
        if not loggers or self.trainer.sanity_checking:
            return
        import wandb

        payload = {}
        for task, result in results.items():
            for kind, choices in (("position", self.prompt_config.length + 1), ("length", self.prompt_config.length + 1),
                                  ("pool", self.prompt_config.pool_size)):
                if kind in result:
                    # One bin per choice 0..choices-1, the same edges every epoch; wandb's own
                    # ``num_bins`` would spread the bins over this epoch's min..max instead.
                    counts = torch.bincount(torch.as_tensor(result[kind], dtype=torch.long), minlength=choices)
                    edges = torch.arange(choices + 1) - 0.5
                    payload[f"{stage}/{task}/{kind}"] = wandb.Histogram(np_histogram=(counts.tolist(), edges.tolist()))
        if payload:
            for logger in loggers:
                logger.experiment.log({**payload, "trainer/global_step": self.global_step})

    # ------------------------------------------------------------------ optimisation

    def configure_optimizers(self):
        hp = self.hparams
        groups: dict[str, list] = {"prompt": [], "policy": [], "backbone": []}
        for name, param in self.net.named_parameters():
            if not param.requires_grad:
                continue
            if name.startswith("backbone."):
                groups["backbone"].append(param)
            elif ".net." in name or name.startswith("prompt.position."):
                groups["policy"].append(param)
            else:
                groups["prompt"].append(param)
        base = {"prompt": hp.lr, "policy": hp.policy_lr or hp.lr, "backbone": hp.backbone_lr}
        lrs = {k: v * hp.lr_scale for k, v in base.items()}
        param_groups = [{"params": p, "lr": lrs[k], "name": k} for k, p in groups.items() if p]
        if hp.optimizer == "adafactor":
            from transformers.optimization import Adafactor

            optimizer = Adafactor(param_groups, scale_parameter=False, relative_step=False, warmup_init=False, lr=lrs["prompt"])
        else:
            optimizer = torch.optim.AdamW(param_groups, weight_decay=hp.weight_decay)
        from transformers import get_linear_schedule_with_warmup

        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds: what training changes (kilobytes to a few MB, never the
        frozen backbone) and the feature cache, so that a resumed fit reads the features the
        uninterrupted fit read (:class:`~dp_bench.prompted.FeatureCache`)."""
        trainable = {f"net.{n}" for n, p in self.net.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in trainable or k.startswith("net.feature_cache.")}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = self.checkpoint_state_dict()
