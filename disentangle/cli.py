"""The ``disentangle`` command line.

Every error the user can fix is printed as one ``error: ...`` line with exit code 2;
tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from disentangle import __version__
from disentangle.commands import (
    cmd_bench,
    cmd_compare,
    cmd_evaluate,
    cmd_fetch,
    cmd_list,
    cmd_report,
    cmd_run,
    cmd_select,
    cmd_show,
    cmd_sync,
    cmd_ui,
)
from disentangle.errors import PluginError, UsageError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of the tool."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="disentangle",
        description="Train, score and compare disentangled representation learners.")
    parser.add_argument("--version", action="version", version=f"disentangle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="train a model on a dataset, evaluate it, log to MLflow",
                         description="Train MODEL on a dataset, score it, log it to MLflow.")
    run.add_argument("model", nargs="?", help="model plugin (see `disentangle list`)")
    run.add_argument("--dataset", "-d", help="dataset plugin (default: dsprites)")
    run.add_argument("--steps", type=int, help="training steps (default: the model's schedule)")
    run.add_argument("--batch-size", type=int, help="batch size (default: 64)")
    run.add_argument("--seed", type=int, help="random seed (default: 0)")
    run.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a model hyper-parameter (repeatable; see `disentangle show`)")
    run.add_argument("--metrics", help="comma-separated metrics (default: mig,"
                                       "categorical_accuracy)")
    run.add_argument("--eval-every", type=int, help="evaluate every N steps (default: 1000)")
    run.add_argument("--checkpoint-every", type=int,
                     help="write the checkpoint every N steps (default: 250)")
    run.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                     help="training arithmetic (default: fp32); bf16 and fp16 are mixed "
                          "precision, fp16 on CUDA only")
    run.add_argument("--compile", action="store_true",
                     help="compile the networks with torch.compile (slow start, may be faster)")
    run.add_argument("--data-dir", help="folder with dataset files (default: $DISENTANGLE_DATA)")
    run.add_argument("--data-option", dest="data_options", action="append", default=[],
                     metavar="KEY=VALUE",
                     help="how training batches are drawn (repeatable): correlate=A:B:SIGMA "
                          "draws factors A and B correlated, the smaller SIGMA the stronger "
                          "(Roth et al. 2023); holdout=A:B:FRACTION never trains on A and B "
                          "both in their top FRACTION, and scores that region too "
                          "(eval/heldout/...); evaluation still samples the uniform grid")
    run.add_argument("--experiment", help="MLflow experiment (default: the dataset name)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI "
                                            "or sqlite:///mlflow.db)")
    run.add_argument("--resume", metavar="RUN_ID", help="continue this run from its checkpoint")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run)

    lst = sub.add_parser("list", help="list models, datasets and metrics with their plugins")
    lst.set_defaults(handler=cmd_list)

    show = sub.add_parser("show", help="a model's hyper-parameters and defaults, a metric's "
                                       "definition, parameters, sample sizes and source, or a "
                                       "dataset's factors and files")
    show.add_argument("name", help="a model, a metric or a dataset (a name that is several "
                                   "shows each)")
    show.add_argument("--dataset", help="show the defaults this dataset selects (a model) or "
                                        "the sample sizes on it (a metric; default: dsprites)")
    show.set_defaults(handler=cmd_show)

    ev = sub.add_parser("evaluate", help="score a logged run's checkpoint; log to that run",
                        description="Score the checkpoint of a logged run with any metrics "
                                    "and log eval/<score> to the same run at its step.")
    ev.add_argument("run_id")
    ev.add_argument("--metrics", help="comma-separated metrics (default: the run's)")
    ev.add_argument("--param", dest="params", action="append", default=[],
                    metavar="METRIC.NAME=VALUE",
                    help="a metric's sampling parameter, e.g. dci.num_train=1000 (repeatable)")
    ev.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    ev.add_argument("--tracking-uri", help="MLflow tracking URI (as for run)")
    ev.set_defaults(handler=cmd_evaluate)

    sync = sub.add_parser("sync", help="send tracking records that waited for an unreachable "
                                       "store", description="Send the metrics, artifacts and "
                                       "status that runs on this machine kept while their "
                                       "tracking store could not be reached.")
    sync.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to sync (default: all)")
    sync.add_argument("--tracking-uri", help="send to this store instead of the one each run "
                                             "was logging to")
    sync.set_defaults(handler=cmd_sync)

    bench = sub.add_parser("bench", help="run a suite of runs; skips finished ones, resumes "
                                         "interrupted ones",
                           description="Run every run of a suite file (benchmarks/suites/"
                                       "NAME.yaml or a path). Rerunning the same suite skips "
                                       "finished runs and resumes interrupted ones.")
    bench.add_argument("suite", help="suite name or YAML file")
    bench.add_argument("--tracking-uri", help="MLflow tracking URI (as for run)")
    bench.add_argument("--retry-failed", action="store_true",
                       help="start runs that failed before again (default: leave them)")
    bench.add_argument("--dry-run", action="store_true", help="list the runs and what would "
                                                              "happen to each; train nothing")
    bench.add_argument("--no-progress", action="store_true", help="no progress bars")
    bench.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: one run after another here (default); ray: one Ray task "
                            "per run")
    bench.add_argument("--address", help="Ray cluster address (default: start Ray here)")
    bench.add_argument("--cpus-per-run", type=float, default=1, help="Ray: CPUs per run")
    bench.add_argument("--gpus-per-run", type=float, default=0, help="Ray: GPUs per run")
    bench.set_defaults(handler=cmd_bench)

    cmp = sub.add_parser("compare", help="scores of logged runs as a table and box plots",
                         description="Mean and standard deviation of each score per model "
                                     "setting, over the finished runs of an experiment or "
                                     "suite.")
    cmp.add_argument("--experiment", help="only this MLflow experiment")
    cmp.add_argument("--suite", help="only the runs of this suite")
    cmp.add_argument("--metrics", help="comma-separated scores (default: every eval score)")
    cmp.add_argument("--csv", metavar="FILE", help="also write the per-run table as CSV")
    cmp.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    cmp.add_argument("--plot", metavar="PNG", help="box plots per model (default with --suite: "
                                                   "comparison-SUITE.png)")
    cmp.add_argument("--curves", metavar="PNG", help="also plot every score and loss against "
                                                     "step, mean and std over seeds")
    cmp.add_argument("--tracking-uri", help="MLflow tracking URI (as for run)")
    cmp.set_defaults(handler=cmd_compare)

    rep = sub.add_parser("report", help="a suite's results as one static HTML page",
                         description="Write a static HTML page (no network resources) with "
                                     "the suite's comparison table, box plots, curves over "
                                     "training, and each model setting's best run's "
                                     "code-factor matrix, traversals and reconstructions.")
    rep.add_argument("--suite", required=True, help="the suite (as run by `disentangle bench`)")
    rep.add_argument("--out", metavar="DIR", help="folder of the page and its images "
                                                  "(default: report-SUITE)")
    rep.add_argument("--metrics", help="comma-separated scores (default: every eval score)")
    rep.add_argument("--tracking-uri", help="MLflow tracking URI (as for run)")
    rep.set_defaults(handler=cmd_report)

    sel = sub.add_parser("select", help="rank a suite's runs without factor labels "
                                        "(ModelCentrality, UDR or information)",
                         description="Rank the finished runs of a suite by how much the other "
                                     "runs agree with each one, or by what each one's "
                                     "categorical code tells about the data (no factor labels "
                                     "used); print "
                                     "the ranking, its rank correlation with every supervised "
                                     "score the runs logged, and the selected run against the "
                                     "median run; log them to the suite's parent run.")
    sel.add_argument("--suite", required=True, help="the suite (as run by `disentangle bench`)")
    sel.add_argument("--method", choices=("centrality", "udr", "information"),
                     help="centrality: ModelCentrality (InfoGAN-CR), for models that generate "
                          "from their codes; udr: Unsupervised Disentanglement Ranking (Duan "
                          "et al.), for any model; information: the information between a "
                          "real image and the class its categorical code reads off it, for "
                          "models like InfoGAN (default: centrality where every run's model "
                          "can, else udr)")
    sel.add_argument("--dataset", help="only the suite's runs on this dataset")
    sel.add_argument("--metrics", help="supervised scores to compare with (default: every "
                                       "eval score)")
    sel.add_argument("--votes", type=int, default=500,
                     help="centrality: groups of generated images per pair of runs "
                          "(default: 500)")
    sel.add_argument("--group-size", type=int, default=100,
                     help="centrality: images per group (default: 100)")
    sel.add_argument("--points", type=int,
                     help="udr, information: real images every run encodes (default: 1000 "
                          "for udr, 10000 for information)")
    sel.add_argument("--similarity", choices=("lasso", "spearman"), default="lasso",
                     help="udr: how two runs' codes are matched (default: lasso)")
    sel.add_argument("--seed", type=int, default=0, help="seed of the sampling (default: 0)")
    sel.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    sel.add_argument("--out", metavar="DIR", help="folder of ranking.csv, pairwise.csv "
                                                  "(centrality, udr) and selection.png "
                                                  "(default: selection-SUITE)")
    sel.add_argument("--no-progress", action="store_true", help="no progress bar")
    sel.add_argument("--tracking-uri", help="MLflow tracking URI (as for run)")
    sel.set_defaults(handler=cmd_select)

    ui = sub.add_parser("ui", help="open the MLflow UI on the tracking store")
    ui.add_argument("--tracking-uri", help="MLflow tracking URI (as for run)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                                                        "loopback only)")
    ui.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    ui.set_defaults(handler=cmd_ui)

    data = sub.add_parser("data", help="dataset files")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    fetch = data_sub.add_parser("fetch", help="download a dataset's files (checksummed)")
    fetch.add_argument("dataset")
    fetch.add_argument("--data-dir", help="destination (default: $DISENTANGLE_DATA or "
                                          "~/.cache/disentangle/data)")
    fetch.set_defaults(handler=cmd_fetch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``disentangle`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except PluginError as exc:  # a plugin's own bug, named: not the user's to fix
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (| head)
        sys.stdout = None  # nothing more can be written, not even at exit
        return 0
    except OSError as exc:  # a path the user gave: too long, not a folder, not permitted
        if exc.filename is None:
            raise
        name = str(exc.filename)
        shown = name if len(name) <= 120 else f"{name[:60]}...{name[-40:]}"
        print(f"error: {shown}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
