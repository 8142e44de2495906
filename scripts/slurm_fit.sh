#!/bin/bash
# Train on a SLURM cluster: one task per GPU, started by srun; Lightning's SLURM environment reads the
# ranks and the main node from SLURM's variables. Submit from the repository root:
#
#   sbatch scripts/slurm_fit.sh                 # 2 nodes x 4 GPUs, as below
#   sbatch --nodes 4 scripts/slurm_fit.sh       # the trainer's num_nodes follows SLURM_NNODES
#
# Preemption and time limits: 90 s before the limit SLURM sends SIGUSR1 (--signal); Lightning saves
# hpc_ckpt_N.ckpt under the run folder and requeues the job (--requeue allows it); the SIGTERM that then
# ends the job makes the run save checkpoints/last.ckpt at the next batch boundary. The requeued job
# runs this script again and --ckpt_path last continues from there (on the first run there is no
# last.ckpt yet: Lightning warns and starts from scratch). Checkpoints every 500 steps bound what a
# node failure can lose.
#SBATCH --job-name=yamlcnn-fit
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=SIGUSR1@90
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out

set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
# . .venv/bin/activate      # the environment the project is installed in

srun python -m pipeline fit --config lightning_config.yaml \
    --trainer.strategy ddp --trainer.devices "${SLURM_NTASKS_PER_NODE}" --trainer.num_nodes "${SLURM_NNODES}" \
    --trainer.sync_batchnorm true --fault_tolerance.every_n_steps 500 --ckpt_path last
