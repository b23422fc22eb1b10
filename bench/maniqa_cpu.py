"""MANIQA on the CPU: pyiqa's own model against the scorer's, and both against this CPU's floor.

    .venv/bin/python bench/maniqa_cpu.py [--images 2] [--json-out FILE]

In one process, on real validation inputs and the generated test weights (the real
architecture, random init, so the compute is the real one), pyiqa's 20-crop default:

* **pyiqa**: ``pyiqa.create_metric("maniqa")`` as eval.py builds it (the whole ViT, TABlocks
  as written);
* **scorer**: ``scoring.iqa.create_iqa_metric("maniqa")`` (``scoring/maniqa.py``: the ViT stops
  after the last block MANIQA reads, the token attention is one fused kernel);
* **compiled**: the scorer's with its repeated blocks (ViT blocks, TABlocks, Swin stages) handed
  to ``torch.compile``, which fuses the work around the products; measured, not used by the
  scorer (docs/performance.md, section 10). The first call's compile time is printed apart.

The three run alternately, image by image, so that whatever else loads the machine loads all three.
The floor is each model's FLOPs (torch's FlopCounterMode: matrix products, convolutions,
attention) divided by the float32 matrix-product rate measured in the same run, between the
images, on the shapes that carry most of MANIQA's FLOPs. Printed: seconds per image (wall and
CPU), the speed-up, each path's ratio to its floor, and the largest score difference.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from bench._common import load_average, machine  # noqa: E402
from scoring.iqa import create_iqa_metric  # noqa: E402
from scoring.maniqa import streamline  # noqa: E402
from scoring.scorer import read_rgb, to_unit_tensor  # noqa: E402
from scoring.weights import WeightStore  # noqa: E402

# (batch, m, k, n): the ViT's MLP and qkv products over 20 crops x 785 tokens, and the
# TABlocks' attention products (20 crops, 3072 channels, 784 tokens).
GEMM_SHAPES = [(1, 20 * 785, 768, 3072), (1, 20 * 785, 3072, 768), (20, 3072, 784, 3072)]


def matmul_rate(repeats: int = 3) -> float:
    """Best float32 GFLOP/s over the shapes above (the best of ``repeats`` per shape)."""
    best = 0.0
    for batch, m, k, n in GEMM_SHAPES:
        a, b = torch.rand(batch, m, k), torch.rand(batch, k, n)
        torch.bmm(a, b)
        for _ in range(repeats):
            start = time.perf_counter()
            torch.bmm(a, b)
            best = max(best, 2 * batch * m * k * n / (time.perf_counter() - start) / 1e9)
    return best


def flops_of(metric: torch.nn.Module, image: torch.Tensor) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        metric(image)
    return counter.get_total_flops()


def compile_repeated_blocks(net) -> None:
    """Each repeated block compiled on its own: their inputs are the crops' features, the same shapes whatever
    the image's size, so each compiles once, and the glue between them (cropping, feature hooks) stays eager."""
    for block in [*net.vit.blocks, *net.tablock1, *net.tablock2, net.swintransformer1, net.swintransformer2]:
        block.forward = torch.compile(block.forward, dynamic=False)


def pyiqa_maniqa(weights_dir: Path) -> torch.nn.Module:
    """pyiqa's whole MANIQA, as eval.py builds it."""
    return create_iqa_metric("maniqa", WeightStore(weights_dir), "cpu", streamlined=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    from tests.support.env import shared_dir, test_weights_dir

    weights = test_weights_dir()
    val = shared_dir() / "ntire2025" / "val"
    paths = [sorted(d.glob("*.png"))[0] for d in sorted(p for p in val.iterdir() if p.is_dir())][: args.images]
    print(machine())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {load_average()}")

    paths_by_name = {"pyiqa": pyiqa_maniqa(weights),
                     "scorer": create_iqa_metric("maniqa", WeightStore(weights), "cpu"),
                     "compiled": create_iqa_metric("maniqa", WeightStore(weights), "cpu")}
    compile_repeated_blocks(paths_by_name["compiled"].net)
    first = to_unit_tensor(read_rgb(paths[0])).unsqueeze(0)
    # torch's FLOP counter does not see the fused attention kernel: count the scorer's work on a copy of
    # pyiqa's model with the same blocks trimmed and the attention as written (the same products).
    counted = copy.deepcopy(paths_by_name["pyiqa"])
    streamline(counted.net, fused_attention=False)
    flops = {"pyiqa": flops_of(paths_by_name["pyiqa"], first), "scorer": flops_of(counted, first)}
    flops["compiled"] = flops["scorer"]  # the same products; compiling fuses the work around them
    del counted
    compile_seconds = 0.0
    for name, metric in paths_by_name.items():  # warm-up (the compiled path compiles here)
        started = time.perf_counter()
        with torch.inference_mode():
            metric(first)
        if name == "compiled":
            compile_seconds = time.perf_counter() - started
    print(f"first call of the compiled path (compiling): {compile_seconds:.0f} s", flush=True)
    wall: dict[str, list[float]] = {name: [] for name in paths_by_name}
    cpu: dict[str, list[float]] = {name: [] for name in paths_by_name}
    scores: dict[str, list[float]] = {name: [] for name in paths_by_name}
    rates = [matmul_rate()]
    for path in paths:
        image = to_unit_tensor(read_rgb(path)).unsqueeze(0)
        for name, metric in paths_by_name.items():
            started_cpu, started = time.process_time(), time.perf_counter()
            with torch.inference_mode():
                scores[name].append(metric(image).double().item())
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
        rates.append(matmul_rate())
        print(f"  {path.parent.name}/{path.name}: " + ", ".join(
            f"{name} {wall[name][-1]:.1f} s" for name in paths_by_name) + f"; {load_average()}", flush=True)

    rate = max(rates)
    result: dict[str, object] = {"machine": machine(), "images": len(paths), "matmul_gflops": rates,
                                 "compile_s": compile_seconds}
    print(f"\nfloat32 matrix-product rate: best {rate:.0f} GFLOP/s (per check: "
          + ", ".join(f"{r:.0f}" for r in rates) + ")")
    print(f"{'path':8} {'TFLOP/img':>9} {'wall s/img':>10} {'CPU s/img':>9} {'floor s':>7} {'x floor':>7}")
    for name in paths_by_name:
        per_image = statistics.median(wall[name])
        floor = flops[name] / (rate * 1e9)
        print(f"{name:8} {flops[name] / 1e12:9.2f} {per_image:10.1f} {statistics.median(cpu[name]):9.1f} "
              f"{floor:7.1f} {per_image / floor:7.2f}")
        result[name] = {"tflop": flops[name] / 1e12, "wall_s": wall[name], "cpu_s": cpu[name],
                        "floor_s": floor, "ratio_to_floor": per_image / floor, "scores": scores[name]}
    speedup = statistics.median(wall["pyiqa"]) / statistics.median(wall["scorer"])
    cpu_speedup = statistics.median(cpu["pyiqa"]) / statistics.median(cpu["scorer"])
    difference = max(abs(a - b) for a, b in zip(scores["pyiqa"], scores["scorer"], strict=True))
    print(f"scorer over pyiqa: {speedup:.2f}x wall, {cpu_speedup:.2f}x CPU; largest score difference {difference:.2e}")
    compiled_speedup = statistics.median(wall["pyiqa"]) / statistics.median(wall["compiled"])
    compiled_cpu = statistics.median(cpu["pyiqa"]) / statistics.median(cpu["compiled"])
    compiled_difference = max(abs(a - b) for a, b in zip(scores["pyiqa"], scores["compiled"], strict=True))
    print(f"compiled over pyiqa: {compiled_speedup:.2f}x wall, {compiled_cpu:.2f}x CPU; largest score difference "
          f"{compiled_difference:.2e}")
    result.update(speedup_wall=speedup, speedup_cpu=cpu_speedup, max_difference=difference,
                  compiled_speedup_wall=compiled_speedup, compiled_speedup_cpu=compiled_cpu,
                  compiled_max_difference=compiled_difference)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
