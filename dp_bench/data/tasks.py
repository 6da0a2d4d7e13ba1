"""One ``TaskSpec`` per SuperGLUE task: fields, labels, verbalizer, metrics, and the cast
of a raw record into model inputs.

Record layouts and label values follow the official SuperGLUE jsonl release
(Wang et al. 2019, https://super.gluebenchmark.com/); the official metrics are those of the
leaderboard (acc; CB acc + macro-F1; MultiRC F1a + EM).

Every task is cast to the same shape, ``Example(text_a, text_b, label, group, uid)``:
``text_a`` is the long part that may be truncated (passage, premise, sentence), ``text_b``
the part that is never truncated (question, hypothesis, choices, span question).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Example:
    """One model input.

    Attributes:
        text_a: the part that may be truncated (passage, premise, first sentence).
        text_b: the part that is never truncated (question, hypothesis, ...), or None.
        label: index into ``TaskSpec.label_names``; None for unlabeled splits.
        group: integer id of the unit a metric regroups by: the question id for MultiRC
            (exact match needs all answer options of one question), else the record ``idx``.
        uid: readable unique id, ``<task>/<split>/<idx>`` (MultiRC ``.../<p>/<q>/<a>``).
    """

    text_a: str
    text_b: str | None
    label: int | None
    group: int
    uid: str


Builder = Callable[["TaskSpec", Mapping[str, Any], str, str], list[Example]]


@dataclass(frozen=True)
class TaskSpec:
    """Everything the data layer and the metrics need to know about one task.

    Attributes:
        name: lower-case task name (``cb``).
        dir_name: folder name in the official release (``CB``).
        hf_config: configuration name of the Hugging Face ``super_glue`` dataset.
        label_names: readable name of each class, in label-index order (the Hugging Face
            order, so hub integer labels map back by position).
        verbalizer: one short word per class, for verbalizer heads.
        metrics: the task's official metrics; their mean is the task score.
        raw_labels: the label value of each class as written in the jsonl files.
        required_fields: record fields that must be present (dotted for nested ones); the
            label is checked separately because unlabeled splits lack it.
    """

    name: str
    dir_name: str
    hf_config: str
    label_names: tuple[str, ...]
    verbalizer: tuple[str, ...]
    metrics: tuple[str, ...]
    raw_labels: tuple[Any, ...]
    required_fields: tuple[str, ...]
    build: Builder = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.label_names)
        if len(self.verbalizer) != n or len(self.raw_labels) != n:
            raise ValueError(
                f"task {self.name}: label_names, verbalizer and raw_labels must have the same "
                f"length, got {n}, {len(self.verbalizer)}, {len(self.raw_labels)}"
            )

    @property
    def num_labels(self) -> int:
        """Number of classes."""
        return len(self.label_names)

    def label_index(self, raw_value: Any, where: str) -> int:
        """Map a raw jsonl label to its class index.

        Types must match exactly (``True`` is not ``1`` here), so a copy of the data with
        string labels fails loudly instead of mapping silently.

        Raises:
            ValueError: ``"<where>: unknown label 'x' for task cb (expected one of ...)"``.
        """
        for i, raw in enumerate(self.raw_labels):
            if type(raw_value) is type(raw) and raw_value == raw:
                return i
        expected = ", ".join(str(r) for r in self.raw_labels)
        raise ValueError(
            f"{where}: unknown label {raw_value!r} for task {self.name} (expected one of {expected})"
        )

    def to_examples(self, record: Mapping[str, Any], where: str, split: str = "") -> list[Example]:
        """Cast one jsonl record into model inputs (MultiRC: one per answer option).

        Args:
            record: one parsed jsonl line in the official layout.
            where: ``file:line`` used in error messages.
            split: split name used in ``Example.uid`` (``train``, ``val``, ...).

        Raises:
            ValueError: naming ``where`` and the field when a required field is missing, or
                the label when it is unknown.
        """
        for path in self.required_fields:
            require(record, path, where)
        return self.build(self, record, where, split)

    def _label(self, obj: Mapping[str, Any], where: str) -> int | None:
        return self.label_index(obj["label"], where) if "label" in obj else None

    def _uid(self, split: str, *ids: Any) -> str:
        return "/".join([self.name, *([split] if split else []), *map(str, ids)])


def require(obj: Mapping[str, Any], path: str, where: str) -> Any:
    """Return ``obj[a][b]`` for ``path="a.b"``, or raise naming ``where`` and the field."""
    value: Any = obj
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise ValueError(f"{where}: missing field '{path}'")
        value = value[key]
    return value


# ---------------------------------------------------------------------------- casts per task


def _premise_hypothesis(spec: TaskSpec, r: Mapping[str, Any], where: str, split: str) -> list[Example]:
    """CB, RTE: the premise may be cut, the hypothesis never."""
    return [
        Example(r["premise"], r["hypothesis"], spec._label(r, where), int(r["idx"]),
                spec._uid(split, r["idx"]))
    ]


def _boolq(spec: TaskSpec, r: Mapping[str, Any], where: str, split: str) -> list[Example]:
    """BoolQ: the (long) passage may be cut, the question never."""
    return [
        Example(r["passage"], r["question"], spec._label(r, where), int(r["idx"]),
                spec._uid(split, r["idx"]))
    ]


def _copa(spec: TaskSpec, r: Mapping[str, Any], where: str, split: str) -> list[Example]:
    """COPA as one two-choice input: both alternatives are in ``text_b`` and the label is
    the index of the right one (0 = choice1, 1 = choice2).

    ``text_a`` = premise; ``text_b`` = ``"What was the cause? <choice1> or <choice2>?"``
    (``effect`` for effect questions), so a classifier or a first/second verbalizer can
    compare the two alternatives in one forward pass.
    """
    question = r["question"]
    if question not in ("cause", "effect"):
        raise ValueError(f"{where}: field 'question' must be 'cause' or 'effect', got {question!r}")
    c1, c2 = (str(r[k]).rstrip(".") for k in ("choice1", "choice2"))
    text_b = f"What was the {question}? {c1} or {c2}?"
    return [Example(r["premise"], text_b, spec._label(r, where), int(r["idx"]), spec._uid(split, r["idx"]))]


def _wic(spec: TaskSpec, r: Mapping[str, Any], where: str, split: str) -> list[Example]:
    """WiC: ``text_a`` = sentence1, ``text_b`` = ``"<word>: <sentence2>"`` so the target
    word is always visible (and never truncated)."""
    return [
        Example(r["sentence1"], f"{r['word']}: {r['sentence2']}", spec._label(r, where),
                int(r["idx"]), spec._uid(split, r["idx"]))
    ]


def _wsc(spec: TaskSpec, r: Mapping[str, Any], where: str, split: str) -> list[Example]:
    """WSC: mark the candidate ``*span1*`` and the pronoun ``#span2#`` in the text.

    Spans are located by their whitespace-token index (``span*_index``) and marked over as
    many tokens as the span text has words. Official quirks stay as released (a newline in
    ``span1_text``; test spans whose text differs from the tokens at the index): the
    marking follows the index, the question quotes the span text with whitespace collapsed.
    ``text_b`` = ``"Does #<span2># refer to *<span1>*?"``.
    """
    target = r["target"]
    tokens = r["text"].split()
    for key, mark in (("span1", "*"), ("span2", "#")):
        start = target[f"{key}_index"]
        if not isinstance(start, int) or not 0 <= start < len(tokens):
            raise ValueError(
                f"{where}: field 'target.{key}_index' = {start!r} is outside the text "
                f"({len(tokens)} whitespace tokens)"
            )
        end = min(len(tokens), start + max(1, len(str(target[f"{key}_text"]).split()))) - 1
        tokens[start] = mark + tokens[start]
        tokens[end] = tokens[end] + mark
    span1, span2 = (" ".join(str(target[f"{k}_text"]).split()) for k in ("span1", "span2"))
    return [
        Example(" ".join(tokens), f"Does #{span2}# refer to *{span1}*?", spec._label(r, where),
                int(r["idx"]), spec._uid(split, r["idx"]))
    ]


def _multirc(spec: TaskSpec, r: Mapping[str, Any], where: str, split: str) -> list[Example]:
    """MultiRC: one binary example per answer option, ``group`` = the question's ``idx``
    (unique within a file), so exact match can regroup the options of each question.

    ``text_a`` = passage; ``text_b`` = ``"<question> <answer>"``.
    """
    passage = r["passage"]
    out = []
    for qi, q in enumerate(require(passage, "questions", where)):
        q_where = f"passage.questions[{qi}]"
        question, q_idx = _nested(q, "question", where, q_where), _nested(q, "idx", where, q_where)
        for ai, a in enumerate(_nested(q, "answers", where, q_where)):
            a_where = f"{q_where}.answers[{ai}]"
            text, a_idx = _nested(a, "text", where, a_where), _nested(a, "idx", where, a_where)
            out.append(
                Example(passage["text"], f"{question} {text}", spec._label(a, where), int(q_idx),
                        spec._uid(split, r["idx"], q_idx, a_idx))
            )
    return out


def _nested(obj: Any, key: str, where: str, prefix: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise ValueError(f"{where}: missing field '{prefix}.{key}'")
    return obj[key]


# ------------------------------------------------------------------------------- registry

_PAIR_FIELDS = ("premise", "hypothesis", "idx")

_SPECS = (
    TaskSpec("boolq", "BoolQ", "boolq", ("False", "True"), ("no", "yes"), ("acc",),
             (False, True), ("question", "passage", "idx"), _boolq),
    TaskSpec("cb", "CB", "cb", ("entailment", "contradiction", "neutral"), ("yes", "no", "maybe"),
             ("acc", "f1_macro"), ("entailment", "contradiction", "neutral"), _PAIR_FIELDS,
             _premise_hypothesis),
    TaskSpec("copa", "COPA", "copa", ("choice1", "choice2"), ("first", "second"), ("acc",),
             (0, 1), ("premise", "choice1", "choice2", "question", "idx"), _copa),
    TaskSpec("rte", "RTE", "rte", ("entailment", "not_entailment"), ("yes", "no"), ("acc",),
             ("entailment", "not_entailment"), _PAIR_FIELDS, _premise_hypothesis),
    TaskSpec("wic", "WiC", "wic", ("False", "True"), ("no", "yes"), ("acc",), (False, True),
             ("word", "sentence1", "sentence2", "idx"), _wic),
    TaskSpec("multirc", "MultiRC", "multirc", ("False", "True"), ("no", "yes"), ("f1a", "em"),
             (0, 1), ("passage.text", "passage.questions", "idx"), _multirc),
    # "wsc", not "wsc.fixed": the hub's fixed config rewrites span texts, and the hub path must
    # give the same Examples as the official jsonl files.
    TaskSpec("wsc", "WSC", "wsc", ("False", "True"), ("no", "yes"), ("acc",), (False, True),
             ("text", "target.span1_index", "target.span2_index", "target.span1_text",
              "target.span2_text", "idx"), _wsc),
)


def _registry(specs: tuple[TaskSpec, ...]) -> dict[str, TaskSpec]:
    out: dict[str, TaskSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"duplicate task name '{spec.name}'")
        out[spec.name] = spec
    return out


TASKS: dict[str, TaskSpec] = _registry(_SPECS)


def get_task(name: str) -> TaskSpec:
    """The spec of a task by lower-case name.

    Raises:
        ValueError: ``"unknown task 'x'; choose from boolq, cb, ..."``.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[name]
