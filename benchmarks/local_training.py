"""The local LoRA trainer on this machine: seconds per training step and peak memory for the
tiny test model, and, on paper, what a real 0.5B-parameter model would need.

Runs one real job through the ``local`` backend (a detached worker, as users get it) on the
tiny random model of :mod:`modelport_local.testing`, then reads the job directory: the time
between step events, the worker's peak RSS (``status.json``), and the start-up time (importing
torch and the training stack, loading the model). Also times a float32 matrix product, the
rate the paper estimate for the real model is based on. Needs the ``local`` extra.

    python benchmarks/local_training.py [--steps 20] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from modelport import JobSpec, Message, TrainingDataset, TrainingExample
from modelport_local import LocalSettings, LocalTrainer
from modelport_local.testing import tiny_model

#: Qwen2.5-0.5B-Instruct's shape (its config.json): the "real small model" of the estimate.
REAL = {
    "name": "Qwen2.5-0.5B-Instruct",
    "params": 494_032_768,
    "layers": 24,
    "hidden": 896,
    "intermediate": 4864,
    "kv_hidden": 128,
    "heads": 14,
    "vocab": 151_936,
}


def _dataset(count: int = 16) -> TrainingDataset:
    return TrainingDataset(
        [
            TrainingExample(
                [
                    Message("system", "Answer in one word."),
                    Message("user", f"What is {n} plus one?"),
                    Message("assistant", f"{n + 1}."),
                ]
            )
            for n in range(count)
        ]
    )


def measure_tiny(steps: int, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(Path(tmp) / "model")
        trainer = LocalTrainer(
            LocalSettings(
                jobs_dir=str(Path(tmp) / "jobs"),
                max_steps=steps,
                batch_size=4,
                threads=threads,
                lora_r=8,
                lora_alpha=16,
            )
        )
        started = time.monotonic()
        job = trainer.start(JobSpec(str(model), trainer.upload(_dataset())))
        while not trainer.get_job(job.id).status.is_terminal:
            time.sleep(0.1)
        wall = time.monotonic() - started
        job = trainer.get_job(job.id)
        jobdir = trainer.root / job.id
        if job.status != "succeeded":
            raise SystemExit(
                f"the job {job.status}: {job.error}\n{(jobdir / 'log.txt').read_text()}"
            )
        status = json.loads((jobdir / "status.json").read_text())
        events = [json.loads(line) for line in (jobdir / "events.jsonl").read_text().splitlines()]
        times = {e["message"]: datetime.fromisoformat(e["at"]) for e in events}
        step_times = [
            datetime.fromisoformat(e["at"]) for e in events if e["message"].startswith("step ")
        ]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(step_times)]
        first = next(t for m, t in times.items() if m.startswith("the trainer started"))
        training = next(t for m, t in times.items() if m.startswith("training:"))
        return {
            "steps": steps,
            "threads": threads,
            "seconds_per_step_median": statistics.median(gaps),
            "seconds_per_step_max": max(gaps),
            "startup_s": (training - first).total_seconds(),
            "job_wall_s": wall,
            "peak_rss_mb": status.get("peak_rss_mb"),
        }


def matmul_gflops(threads: int, size: int = 1024, repeat: int = 20) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm up
    started = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * size**3 * repeat / (time.perf_counter() - started) / 1e9


def paper_estimate(gflops: float, batch: int = 4, seq: int = 512, rank: int = 16) -> dict[str, Any]:
    """What LoRA on the real model needs, from its shape (standard rules of thumb)."""
    r = REAL
    h, i, kv = r["hidden"], r["intermediate"], r["kv_hidden"]
    per_layer = rank * ((h + h) * 2 + (h + kv) * 2 + (h + i) * 3)  # q,o; k,v; gate,up,down
    lora = per_layer * r["layers"]
    tokens = batch * seq
    # Frozen weights still pass gradients to the activations: ~2N forward + ~2N backward.
    flops = 4 * r["params"] * tokens
    # Activations kept for the backward pass, float32: 2 x s*b*h*(34 + 5*a*s/h) bytes a layer
    # (Korthikanti et al., 16-bit figure doubled), plus the logits and their gradient.
    activations = 2 * seq * batch * h * (34 + 5 * r["heads"] * seq / h) * r["layers"]
    logits = 3 * tokens * r["vocab"] * 4
    return {
        "model": r["name"],
        "lora_params": lora,
        "weights_fp32_gb": r["params"] * 4 / 1e9,
        "weights_bf16_gb": r["params"] * 2 / 1e9,
        "optimizer_gb": lora * 16 / 1e9,
        "activations_fp32_gb": (activations + logits) / 1e9,
        "flops_per_step": flops,
        "batch_x_seq": f"{batch} x {seq}",
        # A training step reaches about half the rate of a plain large matmul.
        "cpu_seconds_per_step": flops / (gflops * 1e9 * 0.5),
        "gpu_seconds_per_step_at_40_tflops": flops / 40e12,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tiny = measure_tiny(args.steps, args.threads)
    gflops = matmul_gflops(args.threads)
    paper = paper_estimate(gflops)
    if args.json:
        print(json.dumps({"tiny": tiny, "matmul_gflops": gflops, "paper": paper}, indent=2))
        return
    print(
        f"tiny model (hidden 32, 2 layers), {tiny['steps']} steps, batch 4, "
        f"{tiny['threads']} CPU thread(s):"
    )
    print(
        f"  seconds per step: {tiny['seconds_per_step_median']:.4f} median, "
        f"{tiny['seconds_per_step_max']:.4f} max"
    )
    print(f"  worker start-up (import torch + stack, load model): {tiny['startup_s']:.1f} s")
    print(f"  whole job, start to succeeded: {tiny['job_wall_s']:.1f} s")
    print(f"  worker peak RSS: {tiny['peak_rss_mb']} MiB")
    print(f"float32 matmul on {args.threads} thread(s): {gflops:.1f} GFLOP/s")
    print(
        f"on paper, LoRA r=16 (all linear layers) on {paper['model']}, "
        f"batch x seq {paper['batch_x_seq']}:"
    )
    print(
        f"  LoRA parameters: {paper['lora_params'] / 1e6:.1f} M "
        f"(optimizer state {paper['optimizer_gb']:.2f} GB)"
    )
    print(
        f"  weights: {paper['weights_fp32_gb']:.2f} GB float32 (CPU), "
        f"{paper['weights_bf16_gb']:.2f} GB bf16 (GPU)"
    )
    print(
        f"  activations + logits, float32: ~{paper['activations_fp32_gb']:.1f} GB "
        "(about half in bf16; a quarter at batch 1)"
    )
    print(
        f"  compute: {paper['flops_per_step'] / 1e12:.1f} TFLOP per step -> "
        f"~{paper['cpu_seconds_per_step']:.0f} s per step on this CPU, "
        f"~{paper['gpu_seconds_per_step_at_40_tflops']:.2f} s on a GPU sustaining 40 TFLOP/s"
    )


if __name__ == "__main__":
    main()
