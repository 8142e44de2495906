#!/bin/bash
# A sweep on a SLURM cluster: a job array of workers, one GPU each, all on one Optuna study in a
# shared storage. Submit from the repository root, with the spec as the argument:
#
#   sbatch --array=0-7 scripts/slurm_sweep.sh experiments/sweeps/digits_width.yaml
#   SWEEP_STORAGE=postgresql://user:pass@db/sweeps sbatch --array=0-31 scripts/slurm_sweep.sh SPEC.yaml
#
# Each array task runs `sweep --workers 1`: it takes trials from the study until it has its `trials:`
# (Optuna assigns each grid point to one trial number, so no two tasks train the same point), and every
# trial is a fit run in its own folder under SWEEP_OUT. Tasks may start in any order: the first creates
# the study, the others load it; each writes trials.csv, sweep.md, best.yaml and the plots at its end.
#
# Storage: a journal file under SWEEP_OUT by default (it needs only the shared file system; Optuna's
# journal storage has no heartbeat, so a trial whose task was killed stays "running"). With a database
# URL (PostgreSQL, MySQL) the trials have heartbeats: a task killed or preempted mid-trial leaves a trial
# that the next worker marks failed and retries, resuming from its last.ckpt. --requeue lets SLURM
# restart a preempted task, which continues the study. SQLite on a network file system is unsafe.
#SBATCH --job-name=yamlcnn-sweep
#SBATCH --ntasks=1
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%A_%a.out

set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
# . .venv/bin/activate      # the environment the project is installed in

SPEC="${1:?usage: sbatch --array=0-N scripts/slurm_sweep.sh SPEC.yaml [fit options ...]}"
shift
NAME="$(basename "${SPEC%.*}")"
OUT="${SWEEP_OUT:-runs/sweeps/$NAME}"
STORAGE="${SWEEP_STORAGE:-journal:$OUT/journal.log}"

python -m pipeline sweep "$SPEC" --out "$OUT" --storage "$STORAGE" --workers 1 \
    --trainer.accelerator gpu --trainer.devices 1 "$@"
