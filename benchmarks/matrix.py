"""Benchmark of inspo_matrix.py against the paper's Tables 1-2 and Figure 5.

Seeds 0-4 of every configuration, each run with the script's defaults unless the row says
otherwise, two runs at a time (one thread each). Writes benchmarks/results/matrix.md and
benchmarks/results/matrix_policies.png.

    python benchmarks/matrix.py [--alberdice-dir DIR] [--workers 2] [--ray-address ADDRESS] [--fresh]

Runs go through benchmarks/sweep.py: their summaries land in --results-dir and a run whose
summary is there is skipped, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import tyro

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import sweep  # noqa: E402  (after the sys.path line)

# The paper's numbers: InSPO (Tables 1-2, Figure 5) and BC (Tables 1-2, stochastic by construction).
PAPER = {
    ("xor", "a"): (1.00, 0.00),
    ("xor", "b"): (1.00, 0.23),
    ("xor", "c"): (1.00, 0.00),
    ("mne", "balanced"): (20.00, -9.79),
    ("mne", "imbalanced"): (20.00, -3.47),
}


from benchmarks.stats import fmt_interval, mean_interval, probability_of_improvement  # noqa: E402
from envs.matrix import ALBERDICE_NAMES  # noqa: E402  (after the sys.path line)


@dataclass
class Options:
    alberdice_dir: str = os.environ.get("INSPO_ALBERDICE_DIR", "alberdice/buffer")
    """directory holding AlberDICE's released files (mmdp_game_1_from_start/...); rows are skipped if absent"""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """training seeds of every configuration"""
    workers: int = 2
    """runs in parallel (each uses one thread)"""
    ray_address: str | None = None
    """run on a Ray cluster (`ray start --head` prints the address), or `local`"""
    results_dir: str = os.path.join(ROOT, "runs", "benchmarks", "matrix")
    """where the runs' summaries go; a run whose summary is there is skipped (delete it, or --fresh, to run again)"""
    fresh: bool = False
    """delete --results-dir first: every run runs again"""
    compare_workers: bool = False
    """first run the whole grid with one worker (in a temporary directory) and report the speed-up of --workers"""
    out_dir: str = os.path.join(ROOT, "benchmarks", "results")
    """where matrix.md and matrix_policies.png go"""


def configurations(alberdice_dir: str) -> list[tuple[str, dict]]:
    """(group label, Args overrides) for every run of the benchmark."""
    rows = []
    for mode, exact in (("practical", False), ("exact", True)):
        for game, dataset in PAPER:
            rows.append((f"{mode} | generated | {game} {dataset}", dict(game=game, dataset=dataset, exact=exact)))
        xor_dir = os.path.join(alberdice_dir, "mmdp_game_1_from_start")
        if os.path.isdir(xor_dir):
            for dataset, name in ALBERDICE_NAMES.items():
                rows.append(
                    (
                        f"{mode} | AlberDICE {name} | xor {dataset}",
                        dict(game="xor", dataset=dataset, dataset_dir=os.path.join(xor_dir, name), exact=exact),
                    )
                )
        rows.append(
            (
                f"{mode} | ablation β_0 = 0 | mne imbalanced",
                dict(game="mne", dataset="imbalanced", beta_0=0.0, exact=exact),
            )
        )
        rows.append(
            (f"{mode} | ablation simultaneous | xor b", dict(game="xor", dataset="b", sequential=False, exact=exact))
        )
        if os.path.isdir(xor_dir) and exact:  # the sampling asymmetry that rescues exact mode (docs/algorithm.md)
            rows.append(
                (
                    f"{mode} | ablation simultaneous, AlberDICE buffer_00_02_20 | xor b",
                    dict(
                        game="xor",
                        dataset="b",
                        sequential=False,
                        exact=exact,
                        dataset_dir=os.path.join(xor_dir, "buffer_00_02_20"),
                    ),
                )
            )
        for order in ("fixed", "semi-greedy"):
            rows.append(
                (
                    f"{mode} | order {order} | mne imbalanced",
                    dict(game="mne", dataset="imbalanced", update_order=order, exact=exact),
                )
            )
    return rows


def run_name(label: str, seed: int) -> str:
    """A directory name for a configuration's label ("practical | generated | xor a" -> "practical_generated_xor_a")."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", label).strip("_") + f"/seed{seed}"


def fmt(values) -> str:
    """The mean over seeds with its 95 % bootstrap interval (benchmarks/stats.py)."""
    return fmt_interval(*mean_interval(values))


def policy_table(joint: np.ndarray, game: str) -> str:
    names = ("A", "B", "C")[: joint.shape[0]]
    return "<br>".join(" ".join(f"{p:.2f}" for p in row) for row in joint) + f" ({'/'.join(names)})"


def main(options: Options) -> None:
    rows = configurations(options.alberdice_dir)
    runs = [
        sweep.Run(run_name(label, seed), "inspo_matrix", {**overrides, "seed": seed})
        for label, overrides in rows
        for seed in options.seeds
    ]
    if options.fresh and os.path.isdir(options.results_dir):
        shutil.rmtree(options.results_dir)
    serial = None
    if options.compare_workers:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.time()
            sweep.run_grid(runs, tmp, 1, work_dir=os.path.join(tmp, "work"))
            serial = time.time() - start
    ran = sum(not os.path.isfile(sweep.summary_path(options.results_dir, run)) for run in runs)
    start = time.time()
    summaries = sweep.run_grid(runs, options.results_dir, options.workers, options.ray_address)
    total = time.time() - start
    if len(summaries) < len(runs):
        raise SystemExit(f"{len(runs) - len(summaries)} runs failed (above); run again to retry only those")
    by_label = {label: [summaries[run_name(label, seed)] for seed in options.seeds] for label, _ in rows}
    jobs = runs

    lines = [
        "# InSPO on the matrix games (Tables 1-2, Figure 5)",
        "",
        f"Generated by `python benchmarks/matrix.py` on {time.strftime('%Y-%m-%d')}: "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, {options.workers} runs in parallel with one thread each (benchmarks/sweep.py). "
        f"Whole benchmark: **{total:.0f} s** for {len(jobs)} runs ({len(jobs) - ran} of them already done before this "
        "call)"
        + (
            f"; the same grid with one worker: {serial:.0f} s, a speed-up of **{serial / total:.2f}x** with "
            f"{options.workers} workers."
            if serial
            else "."
        ),
        "",
        f"Each row: seeds {', '.join(map(str, options.seeds))}, the mean over seeds with its 95 % bootstrap "
        "interval (benchmarks/stats.py: scipy.stats.bootstrap, percentile, 10,000 resamples). *Greedy* is the "
        "return of the argmax joint action (the default evaluation); *stochastic* samples 320 final evaluation "
        "plays; *expected* is Σ π¹(a¹)π²(a²)R(a¹,a²), the limit of infinitely many stochastic plays. BC is µ evaluated "
        "the same way; the paper's BC column is a stochastic evaluation (expected value of µ). *Practical* = the "
        "networks (the script's defaults); *exact* = `--exact`, Algorithm 1 in closed form. Joint policy: mean over "
        "seeds of π¹⊗π², rows agent 1, columns agent 2. P(InSPO > BC): the probability that a run's greedy return "
        "beats BC's (ties half), with its bootstrap interval. Time: mean wall time per run (`wall_time_s`, one "
        "thread, after imports).",
        "",
        "| mode | data | game, dataset | InSPO greedy | stochastic | expected | paper InSPO | BC greedy | BC "
        "stochastic | paper BC | P(InSPO > BC) | joint policy (mean) | time/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    mean_policies = {}
    for label, _ in rows:
        summaries = by_label[label]
        mode, data, task = [part.strip() for part in label.split("|")]
        game, dataset = task.split()
        paper, paper_bc = PAPER[(game, dataset)]
        if "β_0 = 0" in data:
            paper = 5.00
        paper_text = (
            f"{paper:.2f}"
            if "simultaneous" not in data and "order" not in data
            else (
                "fails ([[0.44, 0.23], [0.21, 0.12]])"
                if "simultaneous" in data
                else "within noise of random (Table 6, SMAC)"
            )
        )
        joint = np.mean([np.array(s["joint_policy"]) for s in summaries], axis=0)
        mean_policies[label] = joint
        lines.append(
            f"| {mode} | {data} | {task} | {fmt([s['final_return_greedy'] for s in summaries])} | "
            f"{fmt([s['final_return_stochastic'] for s in summaries])} | "
            f"{fmt([s['expected_return'] for s in summaries])} | "
            f"{paper_text} | {fmt([s['bc_return_greedy'] for s in summaries])} | "
            f"{fmt([s['bc_expected_return'] for s in summaries])} | "
            f"{paper_bc:.2f} | "
            + fmt_interval(
                *probability_of_improvement(
                    [[s["final_return_greedy"] for s in summaries]], [[s["bc_return_greedy"] for s in summaries]]
                )
            )
            + f" | {policy_table(joint, game)} | {np.mean([s['wall_time_s'] for s in summaries]):.1f} s |"
        )
    per_seed = ["", "## Per-seed greedy returns", "", "| mode | data | task | seeds |", "|---|---|---|---|"]
    for label, _ in rows:
        mode, data, task = [part.strip() for part in label.split("|")]
        greedy = " ".join(f"{s['final_return_greedy']:.2f}" for s in by_label[label])
        per_seed.append(f"| {mode} | {data} | {task} | {greedy} |")
    times = [s["wall_time_s"] for label in by_label if label.startswith("practical") for s in by_label[label]]
    lines += per_seed + [
        "",
        f"Practical-mode run time: mean {np.mean(times):.1f} s, max {np.max(times):.1f} s per run "
        f"({np.mean([s['process_wall_s'] for k in by_label if k.startswith('practical') for s in by_label[k]]):.1f} s "
        "including the first run's lazy imports in each worker).",
    ]
    os.makedirs(options.out_dir, exist_ok=True)
    with open(os.path.join(options.out_dir, "matrix.md.tmp"), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(os.path.join(options.out_dir, "matrix.md.tmp"), os.path.join(options.out_dir, "matrix.md"))
    plot(mean_policies, os.path.join(options.out_dir, "matrix_policies.png"), options.seeds)
    print("\n".join(lines))


def plot(mean_policies: dict, path: str, seeds: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [
        label
        for label in mean_policies
        if label.startswith("practical")
        and ("generated" in label or "ablation β" in label or label.endswith("ablation simultaneous | xor b"))
    ]
    chosen += [label for label in mean_policies if label.startswith("exact | ablation simultaneous | xor b")]
    fig, axes = plt.subplots(1, len(chosen), figsize=(2.6 * len(chosen), 3.0))
    for ax, label in zip(axes, chosen):
        joint = mean_policies[label]
        names = ("A", "B", "C")[: joint.shape[0]]
        ax.imshow(joint, vmin=0, vmax=1, cmap="Blues")
        for (r, c), p in np.ndenumerate(joint):
            ax.text(c, r, f"{p:.2f}", ha="center", va="center", color="white" if p > 0.5 else "black", fontsize=8)
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(names)), names)
        mode, data, task = [part.strip() for part in label.split("|")]
        ax.set_title(f"{task}\n{data.replace('generated', 'InSPO')} ({mode})", fontsize=8)
        ax.set_xlabel("agent 2", fontsize=8)
        ax.set_ylabel("agent 1", fontsize=8)
    fig.suptitle(f"Final joint policies π¹⊗π², mean over seeds {', '.join(map(str, seeds))}")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)


if __name__ == "__main__":
    main(tyro.cli(Options))
