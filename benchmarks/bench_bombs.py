"""Peak memory of fit / verify / predict on an image folder holding decompression bombs, next to the
same folder without them.

The bombs are a valid 30000x30000 grey PNG (0.9 MB on disk, 0.9 GB decoded, 2.7 GB as RGB) and a
JPEG whose header declares 60000x60000. Each command runs in its own process (the pipeline's CLI, in
process, so that ``ru_maxrss`` is that command's peak); the figures go to docs/BENCHMARKS.md.

    python benchmarks/bench_bombs.py            # about 2 minutes on 2 CPU cores
"""
from __future__ import annotations

import json
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCH = "input: [3, 32, 32]\nvars: {classes: 2}\nnodes:\n  c: {block: conv, out: 8}\n  p: global_pool\n" \
       "  fc: {block: linear, out: classes}\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, side: int = 30000) -> None:
    """A complete, valid grey PNG of side x side zeros, compressed as it is written."""
    packer, row = zlib.compressobj(9), b"\0" * (side + 1)  # filter byte + pixels
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def jpeg_bomb(path: Path, side: int = 60000) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8), (90, 20, 200)).save(path, "JPEG", quality=90)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))


def folders(tmp: Path) -> tuple[Path, Path]:
    from PIL import Image

    clean, bombs = tmp / "clean", tmp / "bombs"
    for root in (clean, bombs):
        for c, name in enumerate(("a", "b")):
            (root / name).mkdir(parents=True)
            for i in range(24):
                Image.new("RGB", (48, 40), (40 + 150 * c, i * 8, 100)).save(root / name / f"{i}.png")
    png_bomb(bombs / "a" / "bomb.png")
    jpeg_bomb(bombs / "b" / "bomb.jpg")
    return clean, bombs


def child(args: list[str], out: str) -> None:
    """Run one CLI command in this process and record its exit status and peak RSS."""
    sys.path.insert(0, str(ROOT))
    from pipeline.cli import main

    start = time.perf_counter()
    rc = main(args)
    Path(out).write_text(json.dumps({"rc": rc, "seconds": time.perf_counter() - start,
                                     "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(args: list[str], tmp: Path) -> dict:
    out = tmp / "result.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, __file__, "--child", str(out), *args], cwd=ROOT, capture_output=True,
                          text=True)
    if not out.exists():
        return {"rc": proc.returncode, "peak_mb": float("nan"), "seconds": float("nan"),
                "stderr": proc.stderr.strip().splitlines()[-1:]}
    result = json.loads(out.read_text())
    result["last_line"] = (proc.stderr.strip().splitlines() or [""])[-1][:160]
    return result


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        clean, bombs = folders(tmp)
        (tmp / "net.yaml").write_text(ARCH)
        base = ["--config", "lightning_config.yaml", "--data", "datamodules.ImageFolderDataModule",
                "--data.image_size", "32", "--data.batch_size", "8", "--data.train_transforms", "none",
                "--model.arch", str(tmp / "net.yaml"), "--trainer.max_epochs", "1",
                "--trainer.enable_progress_bar", "false", "--fault_tolerance.every_n_steps", "0"]
        cases = []
        for label, folder in (("without bombs", clean), ("with bombs", bombs)):
            root = ["--trainer.default_root_dir", str(tmp / f"run_{folder.name}")]
            cases += [
                (f"fit, no flags, {label}", ["fit", *base, "--data.root", str(folder), *root]),
                (f"fit --data.skip_bad true, {label}",
                 ["fit", *base, "--data.root", str(folder), "--data.skip_bad", "true", *root]),
                (f"fit --data.verify true, {label}",
                 ["fit", *base, "--data.root", str(folder), "--data.verify", "true", *root]),
            ]
        ckpt = tmp / "run_clean" / "version_0" / "checkpoints" / "last.ckpt"
        for label, folder in (("without bombs", clean), ("with bombs", bombs)):
            cases.append((f"predict --data.skip_bad true, {label}",
                          ["predict", *base, "--data.root", str(clean), "--data.predict_root", str(folder),
                           "--data.skip_bad", "true", "--ckpt_path", str(ckpt),
                           "--trainer.default_root_dir", str(tmp / "predict")]))
        import torch

        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; bombs: "
              f"{(bombs / 'a' / 'bomb.png').stat().st_size / 1e6:.2f} MB PNG 30000x30000, "
              f"{(bombs / 'b' / 'bomb.jpg').stat().st_size} B JPEG header 60000x60000")
        print("| command | exit | peak RSS (MB) | seconds |\n|---|---:|---:|---:|")
        for label, args in cases:
            r = run(args, tmp)
            print(f"| {label} | {r['rc']} | {r['peak_mb']:.0f} | {r['seconds']:.1f} |", flush=True)
            if r["rc"] != 0:
                print(f"|   {r.get('last_line') or r.get('stderr')} | | | |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[3:], sys.argv[2])
    else:
        main()
