"""Import time of modelport against the raw openai SDK, measured in one run.

Each figure is the median, over ``--runs`` fresh interpreter processes, of the cumulative
``python -X importtime`` time of the statement's top-level import. Runs alternate between the
statements so that machine noise hits every one alike. Prints a table and the ratios; exits
non-zero only if ``import modelport`` pulls in a plugin, a vendor SDK or Pillow (a fact, not a
timing), never because of a timing.

    python benchmarks/import_time.py [--runs 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

STATEMENTS = {
    "import modelport": "import modelport",
    "modelport, first use (Hub)": "import modelport; modelport.Hub",
    "modelport, CLI module": "import modelport.cli",
    "import openai": "import openai",
}
FORBIDDEN = (
    "openai",
    "httpx",
    "PIL",
    "modelport_openai",
    "modelport_jsonfile",
    "modelport_keywords",
)


def top_level_us(statement: str) -> tuple[int, set[str]]:
    """Sum of the cumulative times of the imports the statement itself triggered."""
    code = f"{statement}\nimport sys; print(','.join(sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    baseline = _baseline_modules()
    total = 0
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        depth = len(name) - len(name.lstrip(" "))
        if depth == 1 and name.strip() not in baseline:  # a top-level import
            total += int(parts[1])
    return total, set(proc.stdout.strip().split(","))


_BASELINE: set[str] | None = None


def _baseline_modules() -> set[str]:
    global _BASELINE  # noqa: PLW0603
    if _BASELINE is None:
        out = subprocess.run(
            [sys.executable, "-c", "import sys; print(','.join(sys.modules))"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        _BASELINE = set(out.stdout.strip().split(","))
    return _BASELINE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    samples: dict[str, list[int]] = {label: [] for label in STATEMENTS}
    loaded: set[str] = set()
    for _ in range(args.runs):
        for label, statement in STATEMENTS.items():
            try:
                us, modules = top_level_us(statement)
            except subprocess.CalledProcessError:
                samples.pop(label, None)
                continue
            if label in samples:
                samples[label].append(us)
            if label == "import modelport":
                loaded = modules
    medians = {label: statistics.median(v) / 1000 for label, v in samples.items() if v}
    openai_ms = medians.get("import openai")
    rows = {
        label: {
            "median_ms": round(ms, 2),
            "ratio_to_openai": round(ms / openai_ms, 3) if openai_ms else None,
        }
        for label, ms in medians.items()
    }
    heavy = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    if args.json:
        print(json.dumps({"runs": args.runs, "python": sys.version.split()[0], "results": rows,
                          "heavy_modules_imported": heavy}, indent=2))  # fmt: skip
    else:
        print(
            f"import time, median of {args.runs} fresh processes (python {sys.version.split()[0]})"
        )
        for label, row in rows.items():
            ratio = f"{row['ratio_to_openai']:.3f}x openai" if row["ratio_to_openai"] else "-"
            print(f"  {label:<30} {row['median_ms']:8.2f} ms   {ratio}")
        if openai_ms is None:
            print("  (openai is not installed: pip install -e '.[bench]' for the comparison)")
    if heavy:
        print(f"import modelport imported {heavy}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
