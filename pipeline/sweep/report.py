"""Inside a trial's fit: report the monitored metric to the study each epoch and stop when pruned.

Added to the trial's fit config by the sweep (never to best.yaml); the LightningModule knows nothing
of it. It is optuna-integration's Lightning pruning callback, given the trial from the storage, except
that a pruned trial ends its fit as a normal stop (last checkpoint written, exit status 0) and says
why in the trial's ``pruned`` attribute, which the worker that launched the fit reads.
"""
from __future__ import annotations

import optuna
from optuna_integration import PyTorchLightningPruningCallback


class SweepPruning(PyTorchLightningPruningCallback):
    """Report ``monitor`` after each validation to trial ``trial_id`` of ``study`` in ``storage``.

    Args:
        storage: the study's storage URL (as given to ``sweep --storage``).
        study: the study's name.
        trial_id: Optuna's id of the running trial.
        monitor: the logged metric to report, e.g. ``val/acc``.
        pruner: the study's pruner (median, hyperband): it decides from the reports.
    """

    def __init__(self, storage: str, study: str, trial_id: int, monitor: str, pruner: str = "median"):
        from .engine import open_storage
        from .spec import make_pruner

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        loaded = optuna.load_study(study_name=study, storage=open_storage(storage), pruner=make_pruner(pruner),
                                   sampler=optuna.samplers.RandomSampler())  # samples nothing here
        super().__init__(optuna.trial.Trial(loaded, trial_id), monitor)
        # a trial's config run again by hand (its trial is over): train, report nothing
        self.active = loaded._storage.get_trial(trial_id).state == optuna.trial.TrialState.RUNNING
        if not self.active:
            print(f"note: trial {trial_id} of study '{study}' is over; this fit reports nothing to it")

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self.active:
            return
        try:
            super().on_validation_end(trainer, pl_module)
        except optuna.TrialPruned:
            value = trainer.callback_metrics[self.monitor].item()
            self._trial.set_user_attr("pruned", f"pruned by the {self._trial.study.pruner.__class__.__name__} at "
                                                f"epoch {pl_module.current_epoch} ({self.monitor} {value:.4g})")
            trainer.should_stop = True
