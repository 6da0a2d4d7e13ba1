"""``dp-bench``: LightningCLI for fit/validate/test, plus the harness commands.

``dp-bench fit --config experiments/cb_dp.yaml`` trains; configs compose left to right
(``--config tasks/cb.yaml --config methods/adap_ins_pos.yaml``) and flags override them.
``dp-bench grid|table|bench`` run comparison grids, regenerate tables, and benchmark.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

HARNESS_COMMANDS = {
    "grid": ("dp_bench.grid", "run a comparison grid: dp-bench grid --config experiments/grids/smoke.yaml"),
    "table": ("dp_bench.tables", "regenerate results/tables from the run records"),
    "bench": ("dp_bench.bench", "time every method side by side (--quick for CI)"),
}

DESCRIPTION = """dp-bench: soft prompt tuning on a frozen backbone (Yang et al. 2023, arXiv 2303.02909).

Lightning subcommands: fit, validate, test, predict (see `dp-bench fit --help`).
Harness commands: """ + "; ".join(f"`dp-bench {k}`: {v[1]}" for k, v in HARNESS_COMMANDS.items())


def main(args: list[str] | None = None) -> int | None:
    """Console entry point: an exit code from harness commands, else None (exit 0).

    Our own validation raises ValueError with a message that names the culprit (task,
    file and line, field); the user gets that one line, not a traceback, unless
    DP_BENCH_DEBUG=1 asks for it.

    A reader that stops early (``dp-bench grid --dry-run | head``) closes our stdout;
    like other Unix tools we then stop quietly with 141 (128 + SIGPIPE). Python only
    offers this by hand: the pattern below is the one its ``signal`` docs give.
    """
    try:
        result = run(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here at the latest
    except ValueError as err:
        if os.environ.get("DP_BENCH_DEBUG"):
            raise
        print(f"dp-bench: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # SIGPIPE
    return result if isinstance(result, int) else None


def _not_an_advert(record: logging.LogRecord) -> bool:
    """Drop Lightning's "💡 Tip: try installing litlogger / litmodels" lines, printed on every
    fit; Lightning has no switch for them, and they say nothing about the run."""
    return not str(record.msg).startswith("💡 Tip:")


def run(args: list[str] | None = None):
    """Run a command in-process and return its object (the LightningCLI for fit/test/...)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in HARNESS_COMMANDS:
        import importlib

        return importlib.import_module(HARNESS_COMMANDS[argv[0]][0]).main(argv[1:])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The backbone stays in eval mode on purpose (no dropout, tuned or not): see PromptedModel.train.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    # Lightning 2.6's copy of tree_flatten builds torch's LeafSpec, which torch 2.13 deprecates:
    # a warning in every fit that is neither ours nor the user's to act on.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_an_advert)  # Lightning's info lines
    from dp_bench.lightning_cli import build_cli

    # None when the words are sys.argv's: LightningCLI then reads them itself, and does not warn
    # that it was handed both ``args`` and a command line.
    return build_cli(args, DESCRIPTION)


if __name__ == "__main__":
    sys.exit(main())
