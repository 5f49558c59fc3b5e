"""Grids of named runs and their results table.

A :class:`Run` is a name, a run config and the fields of its results row (``dataset``,
``method``, ``setting``, and e.g. ``section``). An :class:`Experiment` trains each run into its
own folder under a runs directory (``RUNS_DIR/FOLDER``, the folder named after the run):

* a folder that holds a **finished** run (``metrics.json``) of the same config is reused;
* a folder that holds a **stopped** run of the same config (``checkpoints/last.safetensors``,
  no metrics yet) is resumed from its last finished epoch;
* a folder that holds a run of **another** config is never reused nor deleted: it is moved
  aside to ``FOLDER.replaced-N`` (one line says so) and the run trains in its place.

"The same config" compares the resolved configs as the run stores them (``config.yaml``:
every model default written out, prerequisite folders filled in), both read back through the
validator, so fields added with defaults since a run was trained do not count as changes.
A run that is not kept (``Run.keep`` false, or no runs directory) trains in a temporary folder
that is deleted once its row is read.

Rows land in a :class:`Results` file (a JSON list, written atomically after every row): a row
replaces the earlier row of the same identity (``Results.key``); with ``resume`` a run whose
row is already there under the same ``setting`` is skipped, and ``only`` selects runs by
method or name. Every ``benchmarks/*.py`` builds on this module and on its argument parser
(:func:`experiment_parser`); ``recadapt experiment GRID.yaml`` drives a :class:`Grid` read
from YAML (:func:`load_grid`, :func:`run_grid`).

The top layer beside the command line: nothing in the package imports it but ``cli``. Torch,
the training loop and the config models are imported where they are used, so that a
benchmark run from another virtualenv (``benchmarks/recbole_peer.py``, RecBole's) can still
write its rows through :class:`Results`.
"""

from recadapt.experiments.experiment import (
    COMMON_OPTIONS,
    Experiment,
    Results,
    experiment_parser,
)
from recadapt.experiments.grid import Grid, grid_columns, grid_from_mapping, load_grid, run_grid
from recadapt.experiments.runs import (
    FINISHED,
    LAST_CHECKPOINT,
    Row,
    Run,
    learning_curve,
    resolved_config,
    run_row,
    same_config,
    set_aside,
    slug,
    train_into,
)

__all__ = ["COMMON_OPTIONS", "FINISHED", "LAST_CHECKPOINT", "Experiment", "Grid", "Results", "Row",
           "Run", "experiment_parser", "grid_columns", "grid_from_mapping", "learning_curve",
           "load_grid", "resolved_config", "run_grid", "run_row", "same_config", "set_aside",
           "slug", "train_into"]
