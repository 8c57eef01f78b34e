"""Evaluation: metrics (F1, accuracy), protocols (linear probe, finetune), k-fold driver, paired t-test, cost,
feature spectra."""

from aulib.eval.cost import cost_table, count_parameters, model_cost
from aulib.eval.crossval import run_folds, summarize
from aulib.eval.metrics import (
    accuracy_per_au,
    balanced_accuracy_per_au,
    balanced_batch_accuracy,
    confusion_per_au,
    f1_per_au,
    mean_f1,
    per_au_table,
)
from aulib.eval.protocols import (
    ProbeConfig,
    ProbeResult,
    SupervisedBCE,
    extract_features,
    finetune,
    linear_probe,
    masked_bce,
    predict,
    train_head,
)
from aulib.eval.representation import spectra, spectrum_summary, spectrum_table
from aulib.eval.stats import paired_ttest

__all__ = [
    "ProbeConfig", "ProbeResult", "SupervisedBCE", "accuracy_per_au", "balanced_accuracy_per_au",
    "balanced_batch_accuracy", "confusion_per_au", "cost_table", "count_parameters", "extract_features",
    "f1_per_au", "finetune", "linear_probe", "masked_bce", "mean_f1", "model_cost", "paired_ttest",
    "per_au_table", "predict", "run_folds", "spectra", "spectrum_summary", "spectrum_table", "summarize",
    "train_head",
]
