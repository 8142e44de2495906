"""Scale out and fault tolerance, on CPUs: DDP with gloo through the CLI, SyncBatchNorm equivalence,
torchrun with two "nodes" on localhost, preemption signals, exact resume after SIGKILL, atomic
checkpoints and a rank that dies.

Every subprocess runs in its own process group, with its output in a file (a pipe could fill up and
stall it), and is killed with everything it started when the test ends, whatever the outcome.
"""
from __future__ import annotations

import csv
import os
import shlex
import signal
import socket
import string
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# the README's commands, run verbatim (with the run folder and a short schedule added)
DDP = "python -m pipeline fit --config lightning_config.yaml --trainer.strategy ddp --trainer.devices 2 --trainer.sync_batchnorm true"  # noqa: E501
SCALED_LR = "python -m pipeline fit --config lightning_config.yaml --trainer.strategy ddp --trainer.devices 2 --model.optimizer.scale_lr linear --model.optimizer.reference_batch 64"  # noqa: E501
EVERY_N = "python -m pipeline fit --config lightning_config.yaml --fault_tolerance.every_n_steps 5"
RESUME = "python -m pipeline fit --config lightning_config.yaml --ckpt_path last"
SINGLE = "python -m pipeline fit --config lightning_config.yaml"


def readme_line(start: str) -> str:
    lines = [line.strip() for line in README.splitlines() if line.strip().startswith(start)]
    assert len(lines) == 1, f"expected one README line starting with {start!r}, found {len(lines)}"
    return lines[0]


def write_arch(folder: Path, dropout: float = 0.0) -> str:
    """A small net for the digits' 1x16x16 images, with batch norm (and dropout, to exercise the RNG)."""
    path = folder / "small.yaml"
    drop = f"  drop: {{block: dropout, p: {dropout}}}\n" if dropout else ""
    path.write_text("input: [1, 16, 16]\nvars: {classes: 10}\nnodes:\n  stem: {block: conv, out: 8}\n"
                    "  pool: {block: maxpool, kernel: 2}\n  body: {block: conv, out: 8}\n  gap: global_pool\n"
                    f"{drop}  fc: {{block: linear, out: classes}}\n")
    return str(path)


def callbacks_config(folder: Path, *extra: dict) -> str:
    """A second --config: last.ckpt at every epoch's end, plus the test's own callbacks."""
    path = folder / f"callbacks{len(list(folder.glob('callbacks*.yaml')))}.yaml"
    last = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"filename": "last", "enable_version_counter": False}}
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": [last, *extra]}}))
    return str(path)


def pipeline_args(command: str, root: Path, *extra: str) -> list[str]:
    """A README command as an argument list, with its run folder moved to ``root``, on CPUs, quiet."""
    return [sys.executable, *shlex.split(command)[1:], *extra, "--trainer.default_root_dir", str(root),
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]


class Job:
    """A subprocess in its own process group, logging to a file."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None):
        self.log = log
        self._out = open(log, "w")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.log.name}: still running after {timeout} s:\n{self.text()[-3000:]}")

    def text(self) -> str:
        self._out.flush()
        return self.log.read_text()

    def stop(self) -> None:
        """SIGTERM to the group (torchrun passes it on to its workers), then SIGKILL to what is left."""
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        self.proc.poll()
        self._out.close()


@pytest.fixture
def jobs():
    started: list[Job] = []

    def start(args: list[str], log: Path, env: dict | None = None) -> Job:
        started.append(Job(args, log, env))
        return started[-1]

    yield start
    for job in started:
        job.stop()


def run(args: list[str], log: Path, jobs, timeout: float = 120) -> str:
    job = jobs(args, log)
    status = job.wait(timeout)
    assert status == 0, f"exit status {status}:\n{job.text()[-3000:]}"
    return job.text()


def wait_for(path: Path, job: Job, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if job.proc.poll() is not None:
            pytest.fail(f"the run ended (status {job.proc.returncode}) before {path.name}:\n{job.text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {path.name} after {timeout} s:\n{job.text()[-3000:]}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def checkpoint(root: Path, name: str = "last.ckpt") -> dict:
    return torch.load(root / "version_0" / "checkpoints" / name, weights_only=True)  # the run's folder


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    worst = 0.0
    for key in a:
        if a[key].is_floating_point():
            worst = max(worst, (a[key] - b[key]).abs().max().item())
        else:
            assert torch.equal(a[key], b[key]), key
    return worst


def logged(root: Path, name: str) -> dict[int, float]:
    files = list(root.glob("version_*/metrics.csv"))
    assert len(files) == 1, f"expected one metrics.csv (rank zero only), found {files}"
    rows = list(csv.DictReader(files[0].open()))
    return {int(r["step"]): float(r[name]) for r in rows if r.get(name)}


# -- the training sampler: distributed split, mid-epoch resume, per-sample augmentation --------------

def test_two_ranks_batches_together_are_the_single_process_batches():
    from datamodules.sampling import ResumableSampler

    data = list(range(40))
    single = [i for i, _, _ in ResumableSampler(data, seed=3, num_replicas=1, rank=0)]
    ranks = [[i for i, _, _ in ResumableSampler(data, seed=3, num_replicas=2, rank=r)] for r in (0, 1)]
    b = 4  # per rank; the single process uses 2b
    for j in range(len(data) // (2 * b)):
        together = ranks[0][j * b:(j + 1) * b] + ranks[1][j * b:(j + 1) * b]
        assert sorted(together) == sorted(single[j * 2 * b:(j + 1) * 2 * b])
    assert sorted(single) == data


class Numbers(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 30

    def __getitem__(self, index) -> torch.Tensor:
        from datamodules.sampling import seed_sample

        return torch.tensor(seed_sample(index, None))


def test_loader_state_resumes_the_epoch_where_it_stopped():
    from datamodules.sampling import train_loader

    data = Numbers()

    def batches(loader):
        return [b.tolist() for b in loader]

    full = train_loader(data, batch_size=4, seed=1)
    full.sampler.set_epoch(2)
    expected = batches(full)
    interrupted = train_loader(data, batch_size=4, seed=1)
    interrupted.sampler.set_epoch(2)
    seen = []
    for batch in interrupted:
        seen.append(batch.tolist())
        if len(seen) == 3:
            break
    state = interrupted.state_dict()
    assert state["epoch"] == 2 and state["batches"] == 3
    resumed = train_loader(data, batch_size=4, seed=1)
    resumed.load_state_dict(state)
    rest = batches(resumed)
    assert seen + rest == expected and len(expected) == 7  # 30 samples, batch 4, last partial batch dropped
    resumed.sampler.set_epoch(3)  # the next epoch is whole again
    assert len(batches(resumed)) == 7


def test_augmentation_depends_on_the_sample_not_on_the_order():
    from datamodules import DigitsDataModule

    data = DigitsDataModule(batch_size=8)
    data.setup("fit")
    train = data.dataset("train")
    first = [train[(i, 0, 5)][0] for i in (3, 4, 5)]
    again = [train[(i, 0, 5)][0] for i in (5, 4, 3)][::-1]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(train[(3, 0, 6)][0], first[0])  # another epoch, another augmentation


# -- atomic checkpoints --------------------------------------------------------------------------

def test_a_failed_save_leaves_the_previous_last_ckpt_intact(tmp_path, monkeypatch):
    from pipeline.training.cli import AtomicCheckpointIO

    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def broken_save(obj, handle, *args, **kwargs):  # half a file, then the disk is full
        handle.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    state = io.load_checkpoint(path)
    assert state["global_step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


@pytest.mark.slow
def test_a_process_killed_while_saving_leaves_the_previous_last_ckpt_intact(tmp_path):
    # the checkpoint plugin (AtomicCheckpointIO, above) saves through this one writer; a process that
    # imports it alone starts without Lightning
    script = f"""
import os, signal, torch
from pipeline.checkpoints import save_atomic
path = {str(tmp_path / 'last.ckpt')!r}
save_atomic({{"global_step": 1, "w": torch.ones(1000)}}, path)
def dying_save(obj, handle, *args, **kwargs):
    handle.write(b"PK\\x03\\x04 partial")
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
save_atomic({{"global_step": 2, "w": torch.zeros(1000)}}, path)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert state["global_step"] == 1 and torch.equal(state["w"], torch.ones(1000))


# -- DDP on CPUs ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_ddp_two_processes_with_syncbn_equal_one_process_with_twice_the_batch(tmp_path, jobs):
    """2 ranks x batch 16 with SyncBatchNorm == 1 process x batch 32: same weights after 8 steps,
    same logged (synced) training loss; logs and checkpoints written once."""
    arch = write_arch(tmp_path)
    common = ["--model.arch", arch, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "4",
              "--trainer.limit_val_batches", "2", "--trainer.log_every_n_steps", "1",
              # linear scaling: 0.05 is the rate for a global batch of 32, which both runs have
              "--model.optimizer.scale_lr", "linear", "--model.optimizer.reference_batch", "32"]
    ddp_log = run(pipeline_args(DDP, tmp_path / "ddp", *common, "--data.init_args.batch_size", "16"),
                  tmp_path / "ddp.log", jobs)
    assert "Starting with 2 processes" in ddp_log and "gloo" in ddp_log
    single = run_cli(*pipeline_args(SINGLE, tmp_path / "one", *common, "--data.init_args.batch_size", "32")[3:])
    assert single.returncode == 0, single.stderr[-3000:]  # the single process: this one
    ddp, one = checkpoint(tmp_path / "ddp"), checkpoint(tmp_path / "one")
    assert ddp["global_step"] == one["global_step"] == 8
    assert any("running_var" in k for k in ddp["state_dict"])
    assert max_difference(ddp["state_dict"], one["state_dict"]) <= 1e-5
    ddp_loss, one_loss = logged(tmp_path / "ddp", "train/loss"), logged(tmp_path / "one", "train/loss")
    assert len(ddp_loss) == 8 and ddp_loss.keys() == one_loss.keys()
    assert all(abs(ddp_loss[s] - one_loss[s]) <= 1e-5 for s in ddp_loss)
    # rank zero alone wrote: one version folder, the checkpoints and nothing half-written
    assert len(list((tmp_path / "ddp").glob("version_*"))) == 1
    names = sorted(p.name for p in (tmp_path / "ddp" / "version_0" / "checkpoints").iterdir())
    assert "last.ckpt" in names and all(n.endswith(".ckpt") and not n.startswith(".") for n in names)


@pytest.mark.slow
def test_torchrun_two_nodes_on_localhost(tmp_path, jobs):
    """The README's torchrun line, run twice on this machine as two nodes of one CPU process each."""
    command = readme_line("torchrun ")
    values = {"HEAD": "127.0.0.1", "PORT": str(free_port()), "NODES": "2", "GPUS": "1", "JOB": "readme-test"}
    args = shlex.split(string.Template(command).substitute(values))
    args = [sys.executable, "-m", "torch.distributed.run", *args[1:]]  # torchrun is this module's entry point
    root = tmp_path / "run"
    args += ["--model.arch", write_arch(tmp_path), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
             "--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(root),
             "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]
    nodes = [jobs(args, tmp_path / f"node{i}.log") for i in range(2)]
    for node in nodes:
        assert node.wait(180) == 0, node.text()[-3000:]
    assert checkpoint(root)["global_step"] == 3
    assert len(list(root.glob("version_*"))) == 1


# -- preemption ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGUSR1"])  # SIGTERM: the DDP and SLURM tests below
def test_a_signal_saves_last_ckpt_at_the_next_batch_and_exits_cleanly(signame, tmp_path, jobs):
    beacon = tmp_path / "beacon"
    extra = callbacks_config(tmp_path, {"class_path": "tests.fault_injection.Beacon",
                                        "init_args": {"folder": str(beacon), "step": 3}})
    job = jobs(pipeline_args(SINGLE, tmp_path / "run", "--config", extra, "--model.arch", write_arch(tmp_path),
                             "--trainer.max_epochs", "1000", "--trainer.limit_val_batches", "1"),
               tmp_path / "fit.log")
    wait_for(beacon / "rank0", job)
    os.kill(job.proc.pid, getattr(signal, signame))
    assert job.wait(60) == 0, job.text()[-3000:]
    saved = checkpoint(tmp_path / "run")
    assert f"{signame}: stopped at step {saved['global_step']}" in job.text()
    assert saved["global_step"] > 3 and saved["epoch"] < 999


@pytest.mark.slow
def test_sigterm_to_one_ddp_rank_stops_all_ranks_at_the_same_step(tmp_path, jobs):
    """Also the README's learning-rate scaling command: lr 0.05 for a global batch of 64, here 2 x 64."""
    beacon = tmp_path / "beacon"
    extra = callbacks_config(tmp_path, {"class_path": "tests.fault_injection.Beacon",
                                        "init_args": {"folder": str(beacon), "step": 3}})
    job = jobs(pipeline_args(SCALED_LR, tmp_path / "run", "--config", extra, "--model.arch", write_arch(tmp_path),
                             "--trainer.max_epochs", "1000", "--trainer.limit_val_batches", "1"), tmp_path / "fit.log")
    wait_for(beacon / "rank1", job)
    wait_for(beacon / "rank0", job)
    rank1 = int((beacon / "rank1").read_text())
    os.kill(rank1, signal.SIGTERM)  # the launched rank, not the one that launched it
    assert job.wait(60) == 0, job.text()[-3000:]
    saved = checkpoint(tmp_path / "run")
    assert job.text().count("SIGTERM: stopped at step") == 1  # printed by rank zero
    assert f"SIGTERM: stopped at step {saved['global_step']}" in job.text()
    deadline = time.monotonic() + 30
    while alive(rank1) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(rank1)
    assert "learning rate 0.1: 0.05 for a batch of 64, scaled (linear) to the global batch 128" in job.text()
    assert saved["optimizer_states"][0]["param_groups"][0]["initial_lr"] == pytest.approx(0.1)  # before the schedule


@pytest.mark.slow
def test_slurm_sigusr1_goes_to_lightnings_requeue_and_sigterm_then_saves(tmp_path, jobs):
    """Under SLURM (its environment faked here, one task) SIGUSR1 is Lightning's: hpc checkpoint and
    `scontrol requeue`; the SIGTERM that follows a requeue saves last.ckpt and ends the run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
           "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "fit",
           "SLURM_NODELIST": "127.0.0.1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1"}
    beacon = tmp_path / "beacon"
    extra = callbacks_config(tmp_path, {"class_path": "tests.fault_injection.Beacon",
                                        "init_args": {"folder": str(beacon), "step": 3}})
    root = tmp_path / "run"
    job = jobs(pipeline_args(SINGLE, root, "--config", extra, "--model.arch", write_arch(tmp_path),
                             "--trainer.max_epochs", "1000", "--trainer.limit_val_batches", "1"),
               tmp_path / "fit.log", env)
    wait_for(beacon / "rank0", job)
    os.kill(job.proc.pid, signal.SIGUSR1)
    wait_for(calls, job, timeout=60)
    assert calls.read_text().split() == ["requeue", "4242"]
    assert list(root.glob("hpc_ckpt_*.ckpt"))
    os.kill(job.proc.pid, signal.SIGTERM)
    assert job.wait(60) == 0, job.text()[-3000:]
    assert checkpoint(root)["global_step"] > 3


# -- exact resume after a hard kill ----------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path, jobs):
    """Dropout, Mixup, augmentation and EMA all draw random numbers or carry state; the resumed run
    must still end bit for bit where the uninterrupted one does."""
    arch = write_arch(tmp_path, dropout=0.3)
    common = ["--model.arch", arch, "--model.ema_decay", "0.9", "--data.init_args.mixup", "0.2",
              "--data.init_args.batch_size", "32", "--trainer.deterministic", "true", "--trainer.max_epochs", "2",
              "--trainer.limit_train_batches", "12", "--trainer.limit_val_batches", "2",
              "--trainer.log_every_n_steps", "1"]
    beacon = tmp_path / "beacon"
    extra = callbacks_config(tmp_path, {"class_path": "tests.fault_injection.Beacon",
                                        "init_args": {"folder": str(beacon), "step": 7, "hold": 300}})
    root = tmp_path / "killed"
    job = jobs(pipeline_args(EVERY_N, root, *common, "--config", extra), tmp_path / "killed.log")
    wait_for(beacon / "rank0", job)  # held after step 7 of epoch 0; last.ckpt is from step 5
    os.killpg(job.proc.pid, signal.SIGKILL)
    job.proc.wait(30)
    assert checkpoint(root)["global_step"] == 5  # the kill lost 2 steps

    # the uninterrupted run and the resumed one in this process (only the killed one needs its own)
    try:
        whole_run = run_cli(*pipeline_args(EVERY_N, tmp_path / "whole", *common)[3:])
        resumed_run = run_cli(*pipeline_args(RESUME, root, *common, "--fault_tolerance.every_n_steps", "5")[3:])
    finally:
        torch.use_deterministic_algorithms(False)  # --trainer.deterministic sets it for the whole process
    assert whole_run.returncode == 0, whole_run.stderr[-3000:]
    assert resumed_run.returncode == 0, resumed_run.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed_run.stderr
    whole, resumed = checkpoint(tmp_path / "whole"), checkpoint(root)
    assert resumed["global_step"] == whole["global_step"] == 24
    difference = max_difference(whole["state_dict"], resumed["state_dict"])
    assert difference <= 1e-6
    # step by step: the same batches, augmented and dropped out alike, give the same losses
    whole_loss = logged(tmp_path / "whole", "train/loss")
    # one run folder: the killed run's rows up to its checkpoint, then the resumed run's, none twice
    assert [p.name for p in root.glob("version_*")] == ["version_0"]
    rows = list(csv.DictReader((root / "version_0" / "metrics.csv").open()))
    resumed_loss = {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}
    assert sorted(int(r["step"]) for r in rows if r.get("train/loss")) == list(range(24))
    assert all(resumed_loss[step] == whole_loss[step] for step in resumed_loss), (resumed_loss, whole_loss)
    for a, b in zip(whole["optimizer_states"][0]["state"].values(), resumed["optimizer_states"][0]["state"].values()):
        assert torch.allclose(a["momentum_buffer"], b["momentum_buffer"], atol=1e-6)


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    from pipeline.training.fault import rng_state, set_rng_state

    torch.manual_seed(1), np.random.seed(2)
    state = rng_state()
    torch.save({"rng": state}, tmp_path / "s.pt")
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(5), np.random.seed(6)
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


# -- a rank that dies ------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_dying_rank_ends_the_whole_job_with_an_error(tmp_path, jobs):
    """Rank 1 exits abruptly at step 3; the job must end non-zero well within the bound the
    README documents, and leave no process behind."""
    beacon = tmp_path / "beacon"
    extra = callbacks_config(tmp_path, {"class_path": "tests.fault_injection.DieAt",
                                        "init_args": {"step": 3, "rank": 1}},
                             {"class_path": "tests.fault_injection.Beacon",
                              "init_args": {"folder": str(beacon), "step": 1}})
    job = jobs(pipeline_args(DDP, tmp_path / "run", "--config", extra, "--model.arch", write_arch(tmp_path),
                             "--trainer.max_epochs", "1000", "--trainer.limit_val_batches", "1",
                             "--data.init_args.batch_size", "16"), tmp_path / "fit.log")
    wait_for(beacon / "rank1", job)
    pids = [int((beacon / f"rank{r}").read_text()) for r in (0, 1) if (beacon / f"rank{r}").exists()]
    started = time.monotonic()
    status = job.wait(120)
    assert status != 0
    deadline = time.monotonic() + 60
    for pid in pids:  # the other rank is gone too (not an orphan waiting on a collective)
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(pid), f"rank process {pid} still alive {time.monotonic() - started:.0f} s after the failure"


@pytest.mark.slow
def test_a_hung_rank_ends_the_job_at_the_process_group_timeout(tmp_path, jobs):
    """Rank 1 stops without dying; rank 0's next collective times out (here after 30 s instead of the
    default 30 minutes), the job exits non-zero and takes the hung rank down with it. The same timeout
    bounds the ranks' rendezvous, so it must leave a loaded machine time to start the second process
    (15 s did not, with two suites on two cores)."""
    beacon = tmp_path / "beacon"
    extra = callbacks_config(tmp_path, {"class_path": "tests.fault_injection.DieAt",
                                        "init_args": {"step": 3, "rank": 1, "hang": True}},
                             {"class_path": "tests.fault_injection.Beacon",
                              "init_args": {"folder": str(beacon), "step": 1}})
    job = jobs(pipeline_args(DDP, tmp_path / "run", "--config", extra, "--model.arch", write_arch(tmp_path),
                             "--trainer.strategy", "lightning.pytorch.strategies.DDPStrategy",
                             "--trainer.strategy.timeout", "0:00:30", "--trainer.max_epochs", "1000",
                             "--trainer.limit_val_batches", "1", "--data.init_args.batch_size", "16"),
               tmp_path / "fit.log")
    wait_for(beacon / "rank1", job)
    hung = int((beacon / "rank1").read_text())
    assert job.wait(150) != 0
    # the configured timeout ended it, nothing else; gloo words it one of two ways depending on which
    # side of the connection notices first
    assert "Timed out waiting 30000ms" in job.text() or "Application timeout caused pair closure" in job.text()
    deadline = time.monotonic() + 30
    while alive(hung) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(hung)


def test_ddp_ranks_agree_on_signals_every_ten_steps_and_at_epoch_ends_not_every_step():
    """The agreement is a collective read on the host (a device sync): every step it would stall GPUs that
    run a small net. One process needs no collective and reads its flag every step."""
    from types import SimpleNamespace

    from pipeline.training.fault import FaultTolerance

    def trainer(step, world, last=False):
        progress = SimpleNamespace(is_last_batch=last)
        return SimpleNamespace(global_step=step, world_size=world,
                               fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)))

    ft = FaultTolerance(every_n_steps=25)
    assert [s for s in range(1, 51) if ft._agrees_now(trainer(s, 2))] == [10, 20, 25, 30, 40, 50]
    assert ft._agrees_now(trainer(13, 2, last=True))  # before validation and the epoch-end checkpoint
    assert all(ft._agrees_now(trainer(s, 1)) for s in range(1, 51))
