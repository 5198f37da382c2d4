"""Long QMIX runs on the built-in simulator, shipped or not: their training curves, side by side.

The runs behind the shipped policies are in each map's manifest (benchmarks/smac_datasets.py plots
them). This benchmark records the other long runs, above all those that tried to learn a QMIX expert
where none shipped (3s_vs_5z, 5m_vs_6m: issue 9), so that what they reached, in how many env steps
and how much time, is kept after their directories are gone. Each run given is summarised into
benchmarks/results/qmix_runs/<run>.json (its arguments and greedy test curve); then every recorded
run is drawn into benchmarks/results/qmix_runs.png and tabled in benchmarks/results/qmix_runs.md.

    python benchmarks/qmix_runs.py runs/qmix/5m_vs_6m_seed2 runs/qmix/3s_vs_5z_seed3 [--note "..."]
"""

from __future__ import annotations

import glob
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from envs import InputError, run_cli  # noqa: E402
from tools.ship_policies import snapshots  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results")
RECORDS = os.path.join(RESULTS, "qmix_runs")
KEYS = ("t_env", "episodes", "updates", "epsilon", "test_win_rate", "test_return", "test_episode_length", "wall_time_s")
RECIPE = ("batch_episodes", "td_lambda", "epsilon_anneal_steps", "n_envs", "updates_per_rollout", "learning_rate")


@dataclass
class Args:
    runs: list[str] = field(default_factory=list)
    """tools/qmix_smac.py run directories (or runs carried by tools/carry_run.py) to record"""
    note: str = ""
    """how the recorded runs were run (machine, sharing), written into their records"""


def record(run_dir: str, note: str) -> dict:
    rows = snapshots(run_dir)
    return {"run": os.path.basename(os.path.normpath(run_dir)), "map": rows[0]["map"], "args": rows[-1]["args"], "note": note,
            "curve": [{k: r[k] for k in KEYS} for r in rows]}


def table_row(rec: dict) -> str:
    curve, args = rec["curve"], rec["args"]
    last = curve[-1]
    best = max(curve, key=lambda r: (r["test_win_rate"], r["test_return"]))
    first_win = next((r["t_env"] for r in curve if r["test_win_rate"] > 0), None)
    tail = [r for r in curve if r["t_env"] >= last["t_env"] - 1_000_000]  # the last million env steps
    recipe = ", ".join(f"{k} {args[k]}" for k in RECIPE if k in args)
    return (f"| {rec['run']} | {last['t_env'] / 1e6:.2f}M | {last['wall_time_s'] / 3600:.2f} | {last['t_env'] / last['wall_time_s']:,.0f} | "
            f"{best['test_win_rate']:.2f} / {best['test_return']:.1f} at {best['t_env'] / 1e6:.2f}M | {'never' if first_win is None else f'{first_win / 1e6:.2f}M'} | "
            f"{np.mean([r['test_win_rate'] for r in tail]):.3f} | {np.mean([r['test_return'] for r in tail]):.2f} | "
            f"{np.mean([r['test_episode_length'] for r in tail]):.1f} | {recipe} |")


def plot(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = sorted({r["map"] for r in records})
    fig, axes = plt.subplots(2, len(maps), figsize=(4.5 * len(maps), 5.5), squeeze=False, sharex="col")
    for col, map_name in enumerate(maps):
        for rec in (r for r in records if r["map"] == map_name):
            steps = np.array([r["t_env"] for r in rec["curve"]]) / 1e6
            axes[0][col].plot(steps, [r["test_win_rate"] for r in rec["curve"]], lw=1, label=rec["run"])
            axes[1][col].plot(steps, [r["test_return"] for r in rec["curve"]], lw=1, label=rec["run"])
        axes[0][col].set_title(map_name)
        axes[0][col].set_ylim(-0.03, 1.03)
        axes[1][col].set_xlabel("env steps (millions)")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
        axes[0][col].legend(fontsize=7)
    axes[0][0].set_ylabel("greedy test win rate (32 battles)")
    axes[1][0].set_ylabel("greedy test return")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(args: Args) -> None:
    os.makedirs(RECORDS, exist_ok=True)
    for run_dir in args.runs:
        rec = record(run_dir, args.note)
        path = os.path.join(RECORDS, rec["run"] + ".json")
        with open(path + ".tmp", "w") as f:
            json.dump(rec, f, indent=1)
        os.replace(path + ".tmp", path)
    records = []
    for path in sorted(glob.glob(os.path.join(RECORDS, "*.json"))):
        with open(path) as f:
            records.append(json.load(f))
    if not records:
        raise InputError(f"no runs recorded in {RECORDS}; give run directories")
    lines = ["# Long QMIX runs on the built-in simulator", "",
             "Made by `python benchmarks/qmix_runs.py` from the runs' snapshots (a greedy test of 32 battles every 20k env "
             "steps); each run's record is under `benchmarks/results/qmix_runs/`. Wall time and env steps/s include the "
             "tests and updates, as the runs were run (see each note). *Last 1M*: means over the snapshots of the last "
             "million env steps.", "",
             "| run | env steps | hours | env steps/s | best test: win rate / return | first test win | last 1M: win rate | "
             "last 1M: return | last 1M: episode length | recipe |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [table_row(rec) for rec in records]
    lines += ["", "![curves](qmix_runs.png)", "", "Notes:", ""]
    lines += [f"- {rec['run']}: {rec['note']}" for rec in records if rec["note"]]
    with open(os.path.join(RESULTS, "qmix_runs.md.tmp"), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(os.path.join(RESULTS, "qmix_runs.md.tmp"), os.path.join(RESULTS, "qmix_runs.md"))
    plot(records, os.path.join(RESULTS, "qmix_runs.png"))
    print(f"{len(records)} runs -> {os.path.join(RESULTS, 'qmix_runs.md')}")


if __name__ == "__main__":
    run_cli(main, Args)
