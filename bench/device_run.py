"""The GPU run: the scorer on a CUDA device, cold, warm and the eval.py way, in one command.

    python3 bench/device_run.py [--device cuda] [--out DIR] [--fast]

Made for a lent GPU machine with a few minutes of time (see docs/performance.md): it needs
nothing but this checkout, the shared data (``FR_SHARED_DIR`` or ``../shared``, or
``shared/`` inside the checkout) and the Python packages of requirements.lock. It

1. writes test weights (the real architectures, random init, fixed seed; NIQE's real
   parameters when the shared data has them) into the output folder, unless ``--weights``;
2. scores every validation input as its own restoration with profile ``ntire2025-no-qalign``:
   cold (``load_models`` included), then warm (a second submission on the same models);
3. scores them the eval.py way on the same device: models built once, then one image at a
   time, the landmarks CSV read again for each image, FID over the folder at the end;
4. times each model's pure forward pass on the same batches (data already on the device,
   synchronised), with its peak GPU memory, so that the pipeline's overhead is a ratio;
   then sweeps each metric's images per forward call (1 to 32, until the memory runs out) on
   the first ``--sweep-images`` inputs, and scores warm again with each metric's best size
   (printed as the worker's ``FR_IMAGES_PER_CALL``), beside its pure forward at those sizes;
5. scores a subset on the CPU too and prints the largest CUDA-CPU difference per metric;
6. writes everything to ``OUT/device_run.json`` (``$OUT`` when set, else ``--out``).

Q-Align is left out: its configuration lives on the Hugging Face hub, which these machines
cannot reach, so not even a randomly initialised copy can be built; the JSON says so.
``--fast`` (a test runs it on the CPU) takes one input per dataset and MANIQA at 2 crops.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import torch  # noqa: E402

from scoring.profile import get_profile  # noqa: E402

QALIGN_NOTE = "left out: its configuration is on the Hugging Face hub, unreachable from these machines"


def shared_dir() -> Path:
    for candidate in (os.environ.get("FR_SHARED_DIR"), ROOT / "shared", ROOT.parent / "shared"):
        if candidate and (Path(candidate) / "ntire2025" / "val").is_dir():
            return Path(candidate)
    raise SystemExit("no shared data: set FR_SHARED_DIR to the folder holding ntire2025/val")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, action: Callable[[], Any]) -> tuple[Any, float]:
    sync(device)
    started = time.perf_counter()
    value = action()
    sync(device)
    return value, time.perf_counter() - started


def peak_memory(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def pick_inputs(val: Path, per_dataset: int | None):
    from scoring.inputs import scan_inputs

    chosen, seen = [], {}
    for image in scan_inputs(val):
        if per_dataset is None or seen.get(image.dataset, 0) < per_dataset:
            chosen.append(image)
            seen[image.dataset] = seen.get(image.dataset, 0) + 1
    return chosen


def eval_py_way(inputs, landmarks_csv: Path, profile, weights: Path, device: torch.device) -> dict[str, Any]:
    """The organizers' loop: models built once (pyiqa's own, MANIQA unstreamlined), one image per call, the CSV
    read per image."""
    from scoring.fid import FIDScorer
    from scoring.identity import IdentityScorer
    from scoring.inputs import read_landmarks
    from scoring.iqa import create_iqa_metric, score_batch
    from scoring.nets.adaface import load_adaface
    from scoring.scorer import fid_cache_dir, read_rgb, to_unit_tensor
    from scoring.weights import MODEL_FILES, WeightStore

    started = time.perf_counter()
    store = WeightStore(weights)
    metrics = {name: create_iqa_metric(name, store, device, profile.metric_options.get(name), streamlined=False)
               for name in profile.iqa_metrics}  # MANIQA as eval.py builds it: pyiqa's whole model
    identity = IdentityScorer(load_adaface(store.path(MODEL_FILES["adaface"][0]), device), device)
    sync(device)
    load_s = time.perf_counter() - started
    per_image: dict[str, dict[str, float]] = {}
    for image in inputs:
        points = read_landmarks(landmarks_csv)[image.stem].points  # eval.py reads the CSV per image
        rgb = read_rgb(image.path)
        (sim,) = identity.similarities([(rgb, rgb, points)], batch_size=1)
        batch = to_unit_tensor(rgb).unsqueeze(0).to(device)
        values = {name: score_batch(metric, batch)[0] for name, metric in metrics.items()}
        per_image[f"{image.dataset}/{image.stem}"] = {**values, "id_similarity": sim}
    sync(device)
    network, reference = MODEL_FILES["fid"]
    fid_scorer = FIDScorer.from_files(store.path(network), store.path(reference), device, cache_dir=fid_cache_dir())
    features = fid_scorer.features(to_unit_tensor(read_rgb(image.path)).to(device) for image in inputs)
    fid = fid_scorer.fid(features)
    sync(device)
    return {"wall_s": time.perf_counter() - started, "load_s": load_s, "images": per_image, "fid": fid}


def pure_forward(models, inputs, landmarks, device: torch.device, batch_size: int,
                 images_per_call: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """Each model alone on batches already on the device: seconds, images/s, peak memory; each metric
    ``images_per_call[name]`` images a forward call (score_batch's default where absent)."""
    from scoring.identity import align_face, to_adaface_input
    from scoring.iqa import score_batch
    from scoring.scorer import read_rgb, to_unit_tensor

    per_call = images_per_call or {}
    batch_size = max([batch_size, *per_call.values()])
    batches = [torch.stack([to_unit_tensor(read_rgb(i.path)) for i in inputs[s:s + batch_size]]).to(device)
               for s in range(0, len(inputs), batch_size)]
    crops = [torch.cat([to_adaface_input(align_face(read_rgb(i.path), landmarks[i.stem].points))
                        for i in inputs[s:s + batch_size]] * 2).to(device)
             for s in range(0, len(inputs), batch_size)]
    out: dict[str, dict[str, Any]] = {}

    def measure(name: str, run: Callable[[], None]) -> None:
        reset_peak(device)
        _, seconds = timed(device, run)
        out[name] = {"seconds": seconds, "images_per_s": len(inputs) / seconds, "peak_gpu_bytes": peak_memory(device)}

    for name, metric in models.iqa.items():
        measure(name, lambda metric=metric, name=name: [score_batch(metric, b, per_call.get(name)) for b in batches])
    measure("adaface", lambda: [models.identity.embed(c) for c in crops])
    if models.fid is not None:
        measure("fid_features", lambda: [models.fid.features(list(b)) for b in batches])
    return out


def out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def sweep_images_per_call(models, inputs, device: torch.device, sizes: list[int]) -> dict[str, Any]:
    """Each metric's pure forward rate at each images-per-call size, on the same images, and the best size.
    A size the device has no memory for ends that metric's sweep."""
    from scoring.iqa import score_batch
    from scoring.scorer import read_rgb, to_unit_tensor

    images = torch.stack([to_unit_tensor(read_rgb(i.path)) for i in inputs]).to(device)
    sweep: dict[str, Any] = {}
    for name, metric in models.iqa.items():
        rates: dict[str, Any] = {}
        score_batch(metric, images[:1], 1)  # a first call pays for lazy set-up, at no size's expense
        for size in sizes:
            reset_peak(device)
            try:
                _, seconds = timed(device, lambda metric=metric, size=size: score_batch(metric, images, size))
            except RuntimeError as error:
                if not out_of_memory(error):
                    raise
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                rates[str(size)] = {"error": "out of memory"}
                break
            rates[str(size)] = {"seconds": seconds, "images_per_s": len(inputs) / seconds,
                                "peak_gpu_bytes": peak_memory(device)}
        measured = {int(size): entry["images_per_s"] for size, entry in rates.items() if "images_per_s" in entry}
        # No size fitting at all leaves the metric at one image a call rather than losing the whole run's report.
        sweep[name] = {"sizes": rates, "best": max(measured, key=measured.__getitem__) if measured else 1}
    return sweep


def rows(report) -> dict[str, dict[str, float]]:
    return {f"{i.dataset}/{i.stem}": {**i.metrics, "id_similarity": i.id_similarity} for i in report.images}


def compare(first: dict[str, dict[str, float]], second: dict[str, dict[str, float]]) -> dict[str, float]:
    keys = next(iter(first.values())).keys()
    return {key: max(abs(first[image][key] - second[image][key]) for image in first) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "device-out"))
    parser.add_argument("--weights", type=Path, help="an existing weights folder (default: make test weights)")
    parser.add_argument("--fast", action="store_true", help="one input per dataset, MANIQA at 2 crops")
    parser.add_argument("--check-images", type=int, default=10, help="images scored on the CPU too")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sweep-images", type=int, default=64, help="images of the images-per-call sweep")
    args = parser.parse_args()

    from scoring.inputs import read_landmarks
    from scoring.provenance import provenance
    from scoring.scorer import load_models, score_restored
    from scoring.testweights import make_test_weights

    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FR_FID_CACHE", str(args.out / "fid-cache"))
    shared = shared_dir() / "ntire2025"
    profile = get_profile("ntire2025-no-qalign")
    if args.fast:
        profile = dataclasses.replace(profile, metric_options={"maniqa": {"test_sample": 2}})
    inputs = pick_inputs(shared / "val", 1 if args.fast else None)
    landmarks_csv = shared / "val_face.csv"
    landmarks = read_landmarks(landmarks_csv)
    report: dict[str, Any] = {"device": str(device), "provenance": provenance(device), "profile": profile.name,
                              "fast": args.fast, "images": len(inputs), "qalign": QALIGN_NOTE}
    print(f"device {device}: {report['provenance'].get('gpu', report['provenance']['cpu'])}; {len(inputs)} images",
          flush=True)

    weights = args.weights
    if weights is None:
        weights = args.out / "weights"
        niqe = shared / "weights" / "niqe_pris_params.npz"
        _, report["make_weights_s"] = timed(device, lambda: make_test_weights(
            weights, niqe_params=niqe if niqe.is_file() else None))

    def score(models, images_per_call=None):
        return score_restored(inputs, landmarks, shared / "val", profile, models, batch_size=args.batch_size,
                              images_per_call=images_per_call)

    reset_peak(device)
    models, load_s = timed(device, lambda: load_models(weights, profile, args.device))
    cold, cold_s = timed(device, lambda: score(models))
    report["cold"] = {"wall_s": load_s + cold_s, "load_s": load_s, "timings": cold.timings,
                      "peak_gpu_bytes": peak_memory(device)}
    warm, warm_s = timed(device, lambda: score(models))
    report["warm"] = {"wall_s": warm_s, "images_per_s": len(inputs) / warm_s, "timings": warm.timings}
    print(f"cold {load_s + cold_s:.1f} s (loading {load_s:.1f} s), warm {warm_s:.1f} s", flush=True)

    forward = pure_forward(models, inputs, landmarks, device, args.batch_size)
    forward_total = sum(entry["seconds"] for entry in forward.values())
    report["pure_forward"] = forward
    report["warm_over_pure_forward"] = warm_s / forward_total
    print(f"pure forward {forward_total:.1f} s; warm / pure forward = {warm_s / forward_total:.2f}", flush=True)

    # Each metric's best images per forward call on this device, then the warm run again with them.
    sizes = [1, 2] if args.fast else [1, 2, 4, 8, 16, 32]
    sweep = sweep_images_per_call(models, inputs[: args.sweep_images], device, sizes)
    best = {name: entry["best"] for name, entry in sweep.items()}
    report["images_per_call_sweep"] = sweep
    report["best_images_per_call"] = best
    report["FR_IMAGES_PER_CALL"] = ",".join(f"{name}={size}" for name, size in best.items())
    tuned, tuned_s = timed(device, lambda: score(models, best))
    tuned_forward = pure_forward(models, inputs, landmarks, device, args.batch_size, best)
    tuned_forward_total = sum(entry["seconds"] for entry in tuned_forward.values())
    report["warm_tuned"] = {"wall_s": tuned_s, "images_per_s": len(inputs) / tuned_s, "timings": tuned.timings}
    report["pure_forward_tuned"] = tuned_forward
    report["warm_tuned_over_pure_forward"] = tuned_s / tuned_forward_total
    print(f"best images per call {report['FR_IMAGES_PER_CALL']}: warm {tuned_s:.1f} s, pure forward "
          f"{tuned_forward_total:.1f} s, ratio {tuned_s / tuned_forward_total:.2f}", flush=True)

    organizers = eval_py_way(inputs, landmarks_csv, profile, weights, device)
    report["eval_py_way"] = {k: v for k, v in organizers.items() if k != "images"}
    report["speedup_warm_vs_eval_py"] = organizers["wall_s"] / warm_s
    report["speedup_cold_vs_eval_py"] = organizers["wall_s"] / (load_s + cold_s)
    report["speedup_tuned_vs_eval_py"] = organizers["wall_s"] / tuned_s
    ours = rows(warm)
    report["max_diff_platform_vs_eval_py"] = {**compare(ours, organizers["images"]),
                                              "fid": abs(warm.overall["fid"] - organizers["fid"])}
    report["max_diff_tuned_vs_eval_py"] = {**compare(rows(tuned), organizers["images"]),
                                           "fid": abs(tuned.overall["fid"] - organizers["fid"])}
    print(f"eval.py way {organizers['wall_s']:.1f} s: warm is {report['speedup_warm_vs_eval_py']:.2f}x, "
          f"cold {report['speedup_cold_vs_eval_py']:.2f}x", flush=True)

    subset = inputs[:: max(1, len(inputs) // max(1, args.check_images))][: args.check_images]
    on_device = score_restored(subset, landmarks, shared / "val", profile, models, batch_size=args.batch_size)
    cpu_models = load_models(weights, profile, "cpu")  # the same models as above when the device is the CPU
    on_cpu = score_restored(subset, landmarks, shared / "val", profile, cpu_models, batch_size=args.batch_size)
    report["max_diff_device_vs_cpu"] = {**compare(rows(on_device), rows(on_cpu)),
                                        "fid": abs(on_device.overall["fid"] - on_cpu.overall["fid"])}
    report["check_images"] = len(subset)
    print("largest device-CPU difference: " + ", ".join(
        f"{k} {v:.2e}" for k, v in report["max_diff_device_vs_cpu"].items()), flush=True)

    with open(args.out / "per_image.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        keys = sorted(next(iter(ours.values())))
        writer.writerow(["image", *keys])
        for image, values in ours.items():
            writer.writerow([image, *(repr(values[k]) for k in keys)])
    (args.out / "device_run.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print(f"wrote {args.out / 'device_run.json'}")


if __name__ == "__main__":
    main()
