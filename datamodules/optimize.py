"""`python -m pipeline data optimize`: an image folder into LitData chunks, for streaming at scale.

The folder is read exactly as :class:`~datamodules.folder.ImageFolderDataModule` reads it (its layouts,
split, class order and rules for empty folders), every file is checked like ``verify`` does, and each
split becomes one LitData dataset (``OUT/train``, ``OUT/val``) written by ``litdata.optimize``: the
file's encoded bytes as they are (no re-encode), its label, its position and its name, in a seeded
random order.
``OUT/dataset.json`` beside them holds what the streaming module needs before reading a chunk: the
class names, the survey (the data table) and a fingerprint of the source.

Running it again continues an interrupted run (LitData's checkpoints) when the folder is unchanged,
does nothing when the output is complete, and refuses an output that holds another dataset.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .survey import Survey

MANIFEST = "dataset.json"
FORMAT = 1  # of dataset.json; a reader refuses other versions
SPLITS = ("train", "val")
# LitData's own default is 64 MB; smaller chunks start the first batch sooner and bound the cache
# that one worker's pre-download fills
CHUNK_BYTES = "64MB"


def _check(item: tuple[str, int]) -> tuple[str | None, str]:
    """(reason or None, content hash) for one file: the check ``verify`` makes, in a worker process."""
    from .folder import check_file

    path, channels = Path(item[0]), item[1]
    reason = check_file(path, channels)
    digest = "" if reason else hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    return reason, digest


def _sample(item: tuple[str, int, int, str]) -> dict[str, Any]:
    """One chunk sample (LitData calls this in its workers): the file's bytes untouched."""
    path, label, index, name = item
    return {"image": Path(path).read_bytes(), "label": label, "index": index, "name": name}


def survey_to_json(survey: Survey) -> dict[str, Any]:
    data = asdict(survey)
    data["modes"] = dict(survey.modes)
    return data


def survey_from_json(data: dict[str, Any]) -> Survey:
    from collections import Counter

    return Survey(list(data["classes"]), {k: list(v) for k, v in data["counts"].items()},
                  [tuple(hw) for hw in data["sizes"]], Counter(data["modes"]), int(data["unreadable"]),
                  bool(data["sampled"]), list(data.get("notes", [])))


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable ({type(err).__name__}); delete the folder and optimize again") from None


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)  # whole or not at all: a reader never sees half a manifest


def _checked(items: dict[str, list[tuple[Path, int]]], workers: int) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Content hashes of the good files and (path, reason) of the bad ones, checked in ``workers`` processes."""
    paths = [str(p) for split in SPLITS for p, _ in items.get(split, [])]
    jobs = [(p, 3) for p in paths]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_check, jobs, chunksize=64))
    else:
        results = [_check(job) for job in jobs]
    hashes = {p: digest for p, (reason, digest) in zip(paths, results) if reason is None}
    bad = [(p, reason) for p, (reason, _) in zip(paths, results) if reason is not None]
    return hashes, bad


def optimize_folder(root: str, out: str, workers: int = 1, val_fraction: float = 0.1, seed: int = 0,
                    skip_bad: bool = False, chunk_bytes: str = CHUNK_BYTES) -> Path:
    """Write ``root`` (an image folder) as LitData chunks in ``out``; returns ``out``. Raises DataError
    for a bad folder, a bad file (unless ``skip_bad``) or an ``out`` that holds something else, before
    anything is written."""
    from .folder import ImageFolderDataModule

    if "://" in out:
        raise DataError(f"--out {out}: write to a local or shared-file-system folder, then copy it to the bucket "
                        "(e.g. `aws s3 sync OUT s3://...`); StreamingDataModule reads it from there")
    if workers < 1:
        raise DataError(f"--workers must be at least 1, got {workers}")
    # the folder module's own listing: the same layouts, split, class order and empty-folder rules
    folder = ImageFolderDataModule(root, val_fraction=val_fraction, seed=seed, skip_bad=skip_bad, cache_bytes=0,
                                   show_table=False)
    folder.setup("fit")
    classes, root_path = folder.class_names, Path(root).resolve()
    print(f"checking {sum(len(v) for v in folder.items.values())} files in {root} ...", file=sys.stderr)
    hashes, bad = _checked(folder.items, workers)
    if bad and not skip_bad:
        lines = "\n".join(f"{path}: {reason}" for path, reason in bad)
        raise DataError(f"{len(bad)} bad file(s) in {root}; nothing written (--skip-bad leaves them out):\n{lines}")
    items = {split: [(p, label) for p, label in folder.items.get(split, []) if str(p) in hashes] for split in SPLITS}
    # written in a seeded random order: the folder lists class after class, and LitData shuffles
    # chunks and blocks within a chunk, so chunks in folder order would give batches of one class
    for number, split in enumerate(SPLITS):
        order = np.random.default_rng((seed, number)).permutation(len(items[split]))
        items[split] = [items[split][i] for i in order]
    names = {split: [_name(p, root_path) for p, _ in items[split]] for split in SPLITS}
    # what the chunks hold: a rerun on an unchanged folder continues, any change is another dataset
    fingerprint = hashlib.sha256(json.dumps(
        [classes, val_fraction, seed, [[split, name, label, hashes[str(p)]] for split in SPLITS
                                       for name, (p, label) in zip(names[split], items[split])]]).encode()).hexdigest()

    out_path = Path(out)
    manifest_path = out_path / MANIFEST
    existing = read_manifest(manifest_path)
    if existing is None and out_path.is_dir() and any(out_path.iterdir()):
        raise DataError(f"--out {out}: folder is not empty and holds no {MANIFEST} (not written by `pipeline data "
                        "optimize`); nothing written: choose an empty or new folder")
    if existing is not None and existing.get("fingerprint") != fingerprint:
        counts = ", ".join(f"{n} {s}" for s, n in existing.get("splits", {}).items())
        raise DataError(f"--out {out}: holds another dataset (optimized from {existing.get('source')}: {counts}); "
                        "nothing written: choose another --out, or delete it to replace it")
    if existing is not None and existing.get("complete"):
        print(f"{out}: already optimized from {existing.get('source')}, nothing to do", file=sys.stderr)
        return out_path

    manifest = {"format": FORMAT, "source": str(root_path), "fingerprint": fingerprint, "classes": classes,
                "splits": {split: len(items[split]) for split in SPLITS}, "val_fraction": val_fraction,
                "seed": seed, "survey": survey_to_json(folder.survey),
                "skipped": [list(b) for b in bad], "val_names": names["val"], "complete": False}
    out_path.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest_path, manifest)  # first: a rerun knows what this folder is meant to hold
    for path, reason in bad:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    for split in SPLITS:
        _write_split(out_path / split, items[split], names[split], workers, chunk_bytes)
    manifest["complete"] = True
    write_manifest(manifest_path, manifest)
    print(f"wrote {out}: " + ", ".join(f"{n} {s}" for s, n in manifest["splits"].items()) +
          f" samples, {len(classes)} classes" + (f", {len(bad)} bad file(s) skipped" if bad else ""), file=sys.stderr)
    return out_path


def _name(path: Path, resolved_root: Path) -> str:
    """A sample's name: its path relative to the folder (what errors and predictions show)."""
    try:
        return str(path.resolve().relative_to(resolved_root))
    except ValueError:  # a link out of the folder
        return str(path)


def _write_split(folder: Path, items: list[tuple[Path, int]], names: list[str], workers: int, chunk_bytes: str) -> None:
    import litdata

    if (folder / "index.json").is_file():
        return  # finished by an earlier run
    if not items:
        return  # no validation split (val_fraction 0): nothing to stream
    inputs = [(str(p), label, index, name) for index, ((p, label), name) in enumerate(zip(items, names))]
    print(f"writing {folder} ({len(inputs)} samples) ...", file=sys.stderr)
    # keep_data_ordered: each worker writes a contiguous slice, so the dataset's order is the split's
    # order (evaluation reports and predictions name samples by position); use_checkpoint: a rerun
    # after an interruption continues from the chunks already written
    litdata.optimize(fn=_sample, inputs=inputs, output_dir=str(folder), chunk_bytes=chunk_bytes,
                     num_workers=min(workers, len(inputs)), reorder_files=False, keep_data_ordered=True,
                     use_checkpoint=True, verbose=True, start_method="fork")
