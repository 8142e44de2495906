"""torch.compile: does every zoo net trace as one graph, and what does compiling buy?

Part 1 (``--check``): every file of ``architectures/`` is traced by dynamo with ``fullgraph=True``
(``backend="eager"``: the tracing, where graph breaks happen, without code generation) in train and
eval mode, and the compiled outputs are compared with the eager ones. A graph break is an error
under ``fullgraph=True``, so "ok" means one graph per mode. Each file is also exported to ONNX at its
own input size, as the ``export`` command writes it, and run by onnxruntime at another batch size than
the export's (the batch axis is dynamic): "ok" when its logits are the eager model's (1e-4 of their
scale).

Part 2: training-step throughput (forward + backward + SGD step) of the compiled model (inductor,
``fullgraph=True``) against the same model eager, alternating A/B rounds after compilation, and
eval-mode inference likewise. Compile time is reported separately.

    python benchmarks/bench_compile.py --check
    python benchmarks/bench_compile.py --nets lenet5 resnet20_cifar --rounds 5
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_models import ab, infer_fn, train_step_fn  # noqa: E402
from pipeline import ArchError, build_model, plan_model  # noqa: E402

SPEED_NETS = {  # name: (input shape, batch)
    "lenet5": ((1, 32, 32), 128),
    "resnet20_cifar": ((3, 32, 32), 64),
    "mobilenet_v2": ((3, 224, 224), 8),
    "resnet18": ((3, 224, 224), 8),
}


def check_shape(path: Path) -> tuple[int, ...]:
    """The file's own input, shrunk to 64x64 where the net accepts it (tracing does not depend on size)."""
    shape = plan_model(path).in_shape
    if len(shape) == 3 and shape[1] > 64:
        try:
            plan_model(path, (shape[0], 64, 64))
            return (shape[0], 64, 64)
        except ArchError:
            pass
    return tuple(shape)


def logits(out):
    return out.logits if hasattr(out, "logits") else out


def onnx_result(path: Path) -> str:
    """Export the file's net at its own input size to ONNX, as the ``export`` command does, and compare
    onnxruntime's logits (batch 2: the batch axis is dynamic) with the eager model's."""
    import onnxruntime

    from pipeline.export import export, inference_model

    model = build_model(path)
    x = torch.randn(2, *model.input_shape)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        want = logits(inference_model(model)(x))
        onnx_path = export(model, "onnx", Path(tmp) / "net.onnx")
        got = torch.from_numpy(onnxruntime.InferenceSession(str(onnx_path)).run(None, {"input": x.numpy()})[0])
    scale = want.abs().max().item()
    return "ok" if torch.allclose(got, want, rtol=1e-4, atol=1e-4 * scale) else f"differs by {(got - want).abs().max():.2g}"


def check_all(only: list[str] | None = None) -> int:
    failures = 0
    print("| architecture | input | train | eval | onnx | check s |\n|---|---|---|---|---|---:|")
    for path in sorted((ROOT / "architectures").glob("*.yaml")):
        if only and path.stem not in only:
            continue
        try:
            shape = check_shape(path)
            model = build_model(path, input_shape=shape)
        except ArchError as err:  # a file that does not build is a failure of this file, not of the run
            failures += 1
            print(f"| {path.stem} | - | FAIL: {str(err)[:80]} | | | |", flush=True)
            continue
        x = torch.randn(2, *shape)
        result = {}
        start = time.perf_counter()
        for mode in ("train", "eval"):
            torch._dynamo.reset()
            model.train(mode == "train")
            try:
                compiled = torch.compile(model, fullgraph=True, backend="eager")
                torch.manual_seed(0)
                got = logits(compiled(x))
                torch.manual_seed(0)
                want = logits(model(x))
                result[mode] = "ok" if torch.allclose(got, want, atol=1e-5) else "differs"
            except Exception as err:  # a graph break or any other failure is what this part reports
                result[mode] = f"FAIL: {str(err).splitlines()[0][:80]}"
        try:
            result["onnx"] = onnx_result(path)
        except Exception as err:
            result["onnx"] = f"FAIL: {str(err).splitlines()[0][:80]}"
        failures += sum(r != "ok" for r in result.values())
        print(f"| {path.stem} | {'x'.join(map(str, shape))} | {result['train']} | {result['eval']} | "
              f"{result['onnx']} | {time.perf_counter() - start:.1f} |", flush=True)
    print(f"\n{failures} failure(s)")
    return failures


def speed(nets: list[str], iters: int, rounds: int) -> None:
    print("| net | input | batch | mode | compile s | compiled img/s | eager img/s | ratio |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for name in nets:
        shape, batch = SPEED_NETS[name]
        torch.manual_seed(0)
        eager = build_model(ROOT / "architectures" / f"{name}.yaml", input_shape=shape)
        x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
        for mode in ("train", "eval"):
            torch._dynamo.reset()
            model = copy.deepcopy(eager).train(mode == "train")
            eager.train(mode == "train")
            compiled = torch.compile(model, fullgraph=True)
            make = (lambda m: train_step_fn(m, x, y)) if mode == "train" else (lambda m: infer_fn(m, x))
            fast, slow = make(compiled), make(eager)
            start = time.perf_counter()
            fast()  # compiles
            compile_s = time.perf_counter() - start
            a, b = ab(fast, slow, iters, rounds, batch)
            print(f"| {name} | {'x'.join(map(str, shape[1:]))} | {batch} | {mode} | {compile_s:.0f} | {a:.1f} | "
                  f"{b:.1f} | {a / b:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="trace every zoo file with fullgraph=True and export it to ONNX")
    parser.add_argument("--only", nargs="*", help="with --check: these zoo files only (names without .yaml)")
    parser.add_argument("--nets", nargs="*", default=["lenet5", "resnet20_cifar"], choices=list(SPEED_NETS))
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"# {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}")
    if args.check:
        sys.exit(1 if check_all(args.only) else 0)
    speed(args.nets, args.iters, args.rounds)


if __name__ == "__main__":
    main()
