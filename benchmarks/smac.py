"""Benchmark of inspo_smac.py against the paper's Tables 4-7.

Table 4: the four maps x the four datasets, InSPO and BC (µ, evaluated by the same run), seeds
0-4. Table 5's α column (6h_vs_8z mixed: α = 0.1, 1, 10 and auto) and Table 6 (update order random,
fixed, semi-greedy on 5m_vs_6m and 6h_vs_8z mixed). Table 7: wall time per run. Beyond the paper's
tables, a few cells rerun with one setting changed (TUNING, below).

Every run is one call of inspo_smac.main through benchmarks/sweep.py; its summary.json (a few kB)
is committed under benchmarks/results/smac/ and a run whose summary is there is skipped, so the
grid (hours of CPU) can be completed in parts and the tables are rebuilt from whatever summaries
exist. Runs are ordered seed by seed, so a partial grid covers every cell first.

    python benchmarks/smac.py [--seeds 0 1 2] [--workers 2] [--ray-address ADDRESS] [--report-only]
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import tyro

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import sweep  # noqa: E402  (after the sys.path line)
from benchmarks.stats import fmt_interval, iqm_interval, mean_interval, probability_of_improvement  # noqa: E402
from envs import InputError  # noqa: E402

MAPS = ("2s3z", "3s_vs_5z", "5m_vs_6m", "6h_vs_8z")
DATASETS = ("medium", "medium_replay", "expert", "mixed")
# The paper (StarCraft II, CFCQL's datasets), Table 4: win rate mean ± std over seeds 0-4.
PAPER_INSPO = {
    "2s3z": ("0.23 ± 0.06", "0.58 ± 0.09", "0.99 ± 0.01", "0.85 ± 0.04"),
    "3s_vs_5z": ("0.17 ± 0.05", "0.10 ± 0.05", "0.99 ± 0.01", "0.78 ± 0.09"),
    "5m_vs_6m": ("0.28 ± 0.06", "0.24 ± 0.07", "0.79 ± 0.12", "0.78 ± 0.06"),
    "6h_vs_8z": ("0.43 ± 0.06", "0.23 ± 0.02", "0.74 ± 0.11", "0.60 ± 0.12"),
}
PAPER_BC = {
    "2s3z": ("0.16 ± 0.07", "0.33 ± 0.04", "0.97 ± 0.02", "0.44 ± 0.06"),
    "3s_vs_5z": ("0.08 ± 0.02", "0.01 ± 0.01", "0.98 ± 0.02", "0.21 ± 0.04"),
    "5m_vs_6m": ("0.28 ± 0.37", "0.18 ± 0.06", "0.82 ± 0.04", "0.21 ± 0.12"),
    "6h_vs_8z": ("0.40 ± 0.03", "0.11 ± 0.04", "0.60 ± 0.04", "0.27 ± 0.06"),
}
PAPER_ALPHA = {"0.1": "0.17 ± 0.07", "1 (default)": "–", "10": "0.53 ± 0.12", "auto": "0.60"}  # Table 5, 6h mixed
PAPER_ORDER = {  # Table 6, mixed datasets
    ("5m_vs_6m", "random"): "0.78 ± 0.06",
    ("5m_vs_6m", "fixed"): "0.78 ± 0.05",
    ("5m_vs_6m", "semi-greedy"): "0.78 ± 0.08",
    ("6h_vs_8z", "random"): "0.60 ± 0.12",
    ("6h_vs_8z", "fixed"): "0.62 ± 0.10",
    ("6h_vs_8z", "semi-greedy"): "0.65 ± 0.11",
}
PAPER_HOURS = {"2s3z": 1.75, "3s_vs_5z": 1.2, "5m_vs_6m": 1.25, "6h_vs_8z": 2.25}  # Table 7, one seed on a GPU
# Settings beyond the grid's defaults, not in the paper's tables: (map, dataset, name, flags beyond the defaults).
# The paper's auto-α (Eq. 25, from α = 0.1) on the 5m_vs_6m datasets, where it stays near its start within 500
# iterations and Eq. 20's weights then follow the critics' errors (the defaults fix α at 1 instead).
AUTO_ALPHA = {"autotune_alpha": True, "alpha": 0.1}
TUNING = [("5m_vs_6m", d, "alpha-auto", AUTO_ALPHA) for d in DATASETS]
# The variants of the ablations: (map, dataset, name, flags beyond the defaults)
ABLATIONS = [
    ("6h_vs_8z", "mixed", "alpha-0.1", {"autotune_alpha": False, "alpha": 0.1}),
    ("6h_vs_8z", "mixed", "alpha-10", {"autotune_alpha": False, "alpha": 10.0}),
    ("6h_vs_8z", "mixed", "alpha-auto", AUTO_ALPHA),
    *[
        (m, "mixed", f"order-{order}", {"update_order": order})
        for m in ("5m_vs_6m", "6h_vs_8z")
        for order in ("fixed", "semi-greedy")
    ],
    *TUNING,
]


@dataclass
class Options:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """training seeds (the paper: 0-4)"""
    maps: list[str] = field(default_factory=lambda: list(MAPS))
    """maps of Table 4"""
    datasets: list[str] = field(default_factory=lambda: list(DATASETS))
    """datasets of Table 4"""
    cells: list[str] = field(default_factory=list)
    """only these cells, as map/dataset (e.g. 3s_vs_5z/mixed 5m_vs_6m/expert), instead of --maps x --datasets"""
    ablations: bool = True
    """also run Table 5's α column, Table 6's update orders and the settings beyond the defaults (TUNING)"""
    num_updates: int | None = None
    """training iterations of every run (default: inspo_smac.py's, its PRESETS included)"""
    bc_updates: int | None = None
    """behaviour-cloning updates of every run (default: inspo_smac.py's, its PRESETS included)"""
    eval_interval: int = 100
    """32-battle evaluations for the learning curves (inspo_smac.py's default)"""
    workers: int = 2
    """runs in parallel on this machine, one thread each"""
    ray_address: str | None = None
    """run on a Ray cluster (`ray start --head` prints the address), or `local`"""
    cuda: bool = False
    """one GPU per run"""
    report_only: bool = False
    """rebuild smac.md and the PNG from the summaries already there; run nothing"""
    results_dir: str = os.path.join(ROOT, "benchmarks", "results", "smac")
    """where the runs' summaries (committed) go"""
    out_dir: str = os.path.join(ROOT, "benchmarks", "results")
    """where smac.md and smac_curves.png go"""
    gpu_results_dir: str = os.path.join(ROOT, "benchmarks", "results", "smac_gpu")
    """summaries of runs made with `--cuda` on another machine: reported apart from Tables 4-6, with its
    machine.json (their datasets were regenerated there)"""


def grid(options: Options) -> list[sweep.Run]:
    # a killed run resumes
    budget = {
        "eval_interval": options.eval_interval,
        "checkpoint_interval": options.eval_interval,
    }
    budget.update(
        {key: getattr(options, key) for key in ("num_updates", "bc_updates") if getattr(options, key) is not None}
    )
    runs = []
    cells = [tuple(cell.split("/")) for cell in options.cells] or [
        (m, d) for m in options.maps for d in options.datasets
    ]
    for seed in options.seeds:  # seed by seed: a partial grid covers every cell first
        for m, d in cells:
            runs.append(
                sweep.Run(f"{m}/{d}/inspo/seed{seed}", "inspo_smac", {"map": m, "dataset": d, "seed": seed, **budget})
            )
        if options.ablations:
            for m, d, name, flags in ABLATIONS:
                runs.append(
                    sweep.Run(
                        f"{m}/{d}/{name}/seed{seed}",
                        "inspo_smac",
                        {"map": m, "dataset": d, "seed": seed, **budget, **flags},
                    )
                )
    return runs


def wall_time_exclusions(results_dir: str) -> dict[str, str]:
    """{run name: why} for runs whose wall time includes something else (e.g. the run was paused)."""
    path = os.path.join(results_dir, "wall_time_excluded.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def fmt(values) -> str:
    if not values:
        return "–"
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def collect(summaries: dict[str, dict]) -> dict[tuple[str, str, str], list[dict]]:
    """{(map, dataset, variant): [summary per seed, in seed order]}"""
    groups: dict[tuple[str, str, str], list[tuple[int, dict]]] = {}
    for name, summary in summaries.items():
        m, d, variant, seed = name.split("/")
        groups.setdefault((m, d, variant), []).append((int(seed.removeprefix("seed")), summary))
    return {key: [s for _, s in sorted(items, key=lambda x: x[0])] for key, items in groups.items()}


def seeds_of(runs: list[dict]) -> str:
    return ",".join(str(s["args"]["seed"]) for s in runs)


def read_summaries(results_dir: str) -> dict[str, dict]:
    """{run name: summary} of every summary under results_dir."""
    summaries = {}
    for dirpath, _, filenames in os.walk(results_dir):
        if "summary.json" in filenames:
            name = os.path.relpath(dirpath, results_dir)
            summaries[name] = sweep.read_summary(results_dir, sweep.Run(name, "inspo_smac"))
    return summaries


CARD_STATISTICS = (
    "transitions",
    "return_mean",
    "return_std",
    "return_min",
    "return_max",
    "win_rate",
    "mean_episode_length",
)


def gpu_report(options: Options, groups: dict, gpu_groups: dict) -> list[str]:
    """The runs made on a GPU elsewhere, beside this machine's runs of the same cells."""
    with open(os.path.join(options.gpu_results_dir, "machine.json")) as f:
        machine = json.load(f)
    lines = [
        "",
        "## On a GPU (not in Tables 4-6)",
        "",
        f"{sum(len(v) for v in gpu_groups.values())} runs under `benchmarks/results/smac_gpu/`: {machine['how']} "
        "The datasets were generated there (on its CPU) by the same code and seed. *Same data* compares every "
        "statistic of the two cards exactly (transitions, return mean, std, min and max, win rate, episode length); "
        "the files' sha256 differed nonetheless for 12 of the 16, by a few bytes in size; with every statistic equal "
        "to the "
        "last bit we read that as the compressed encoding differing, not the arrays (the files did not come back to "
        "compare). "
        "A run's seed on a GPU draws other random streams than the same seed on a CPU, so these runs are kept out "
        "of Tables 4-6.",
        "",
        "| map | dataset | InSPO (GPU) | BC (GPU) | seeds | same data as ours | data return, GPU / ours | "
        "ours InSPO (CPU, all seeds) | wall time (GPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (m, d, variant), runs in sorted(gpu_groups.items()):
        ours = groups.get((m, d, variant), [])
        same = (
            "–"
            if not ours
            else ("yes" if all(runs[0]["card"][k] == ours[0]["card"][k] for k in CARD_STATISTICS) else "no")
        )
        data_return = f"{runs[0]['card']['return_mean']:.2f} / " + (
            f"{ours[0]['card']['return_mean']:.2f}" if ours else "–"
        )
        lines.append(
            f"| {m} | {d}{'' if variant == 'inspo' else ' ' + variant} | {fmt([s['final_win_rate'] for s in runs])} | "
            f"{fmt([s['bc_win_rate'] for s in runs])} | {seeds_of(runs)} | {same} | {data_return} | "
            f"{fmt([s['final_win_rate'] for s in ours])} | {np.mean([s['wall_time_s'] for s in runs]):.0f} s |"
        )
    return lines


def ordering_line(map_name: str, win: dict[str, float], gain: dict[str, float]) -> str:
    """Whether the paper's ordering of the datasets holds on one map, judged on the win rates as printed (two
    decimals: 0.001 against 0.000 is no order), and the dataset of InSPO's largest gain over BC."""
    shown = {d: round(float(w), 2) for d, w in win.items()}
    holds = [
        shown["expert"] >= shown["mixed"],
        shown["mixed"] > shown["medium_replay"],
        shown["mixed"] > shown["medium"],
    ]
    return (
        f"- {map_name}: expert {shown['expert']:.2f}, mixed {shown['mixed']:.2f}, medium-replay "
        f"{shown['medium_replay']:.2f}, "
        f"medium {shown['medium']:.2f}: "
        + (
            "the ordering holds"
            if all(holds)
            else "the ordering does not hold ("
            + ", ".join(
                text for ok, text in zip(holds, ("expert < mixed", "mixed ≤ medium-replay", "mixed ≤ medium")) if not ok
            )
            + ")"
        )
        + (
            f"; largest gain over BC on {max(gain, key=gain.get)} ({max(gain.values()):+.2f})"
            if max(gain.values()) > 0.005
            else "; no gain over BC in win rate on any dataset"
        )
        + "."
    )


def aggregate_report(groups: dict, options: Options) -> list[str]:
    """Per map and over every measured cell: the IQM of InSPO's and BC's win rates with stratified bootstrap
    intervals and P(InSPO > BC); and the same as a point-and-interval figure (smac_intervals.png)."""
    rows = []
    for label, maps in [(m, [m]) for m in MAPS] + [("all maps", list(MAPS))]:
        cells = [groups[key] for key in sorted(groups) if key[0] in maps and key[2] == "inspo"]
        if not cells:
            continue
        inspo = [[s["final_win_rate"] for s in runs] for runs in cells]
        bc = [[s["bc_win_rate"] for s in runs] for runs in cells]
        rows.append((label, len(cells), iqm_interval(inspo), iqm_interval(bc), probability_of_improvement(inspo, bc)))
    if not rows:
        return []
    lines = [
        "## Aggregates",
        "",
        "Interquartile mean (IQM) of the final win rates over every run of the measured cells, with a stratified "
        "bootstrap interval (each cell's seeds resampled on their own), and the probability of improvement "
        "averaged over cells (Agarwal et al. 2021; benchmarks/stats.py).",
        "",
        "| maps | cells | InSPO IQM [95 % CI] | BC IQM [95 % CI] | P(InSPO > BC) [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for label, n, inspo, bc, improvement in rows:
        lines.append(f"| {label} | {n} | {fmt_interval(*inspo)} | {fmt_interval(*bc)} | {fmt_interval(*improvement)} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 0.45 * len(rows) + 1.2), sharey=True)
    y = np.arange(len(rows))[::-1]
    for offset, (column, name, colour) in enumerate(((2, "InSPO", "tab:blue"), (3, "BC", "tab:grey"))):
        points = np.array([row[column] for row in rows])
        errors = [points[:, 0] - points[:, 1], points[:, 2] - points[:, 0]]
        axes[0].errorbar(points[:, 0], y + 0.15 - 0.3 * offset, xerr=errors, fmt="o", color=colour, label=name)
    improvement = np.array([row[4] for row in rows])
    errors = [improvement[:, 0] - improvement[:, 1], improvement[:, 2] - improvement[:, 0]]
    axes[1].errorbar(improvement[:, 0], y, xerr=errors, fmt="o", color="tab:green")
    axes[1].axvline(0.5, color="black", linewidth=0.8, linestyle=":")
    axes[0].set_yticks(y, [f"{row[0]} ({row[1]})" for row in rows])
    axes[0].set_xlabel("IQM of the final win rate")
    axes[1].set_xlabel("P(InSPO > BC)")
    axes[0].set_xlim(-0.05, 1.05)
    axes[1].set_xlim(-0.05, 1.05)
    axes[0].legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(options.out_dir, "smac_intervals.png"), dpi=120)
    plt.close(figure)
    return lines + ["", "![InSPO against BC, with intervals](smac_intervals.png)", ""]


def report(options: Options, groups: dict, total_runs: int, gpu_groups: dict | None = None) -> list[str]:
    done = sum(len(v) for v in groups.values())
    lines = [
        "# InSPO on SMAC (Tables 4-7)",
        "",
        f"Generated by `python benchmarks/smac.py` on {time.strftime('%Y-%m-%d')} from the {done} run summaries under "
        f"`benchmarks/results/smac/` ({total_runs} runs in the grid of this invocation). Runs: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, {options.workers} runs side by side with one thread each."
        " Every run: `inspo_smac.py` with its defaults (the budget and α_CQL of its `PRESETS`, else 500 BC updates, "
        f"500 iterations and α_CQL = 0.1) and `{budget_flags(options)}`. "
        "To continue the grid: `python benchmarks/smac.py` (runs whose summary is here are skipped; "
        "`--ray-address` spreads the rest over a cluster).",
        "",
        "**Ours** is the built-in simulator (`envs/smac.py`) on our generated datasets (`envs/smac_data.py`, behaviour "
        "policies in `envs/smac_policies/`); **the paper** is StarCraft II on CFCQL's datasets. The two are not the "
        "same "
        "task: our behaviour policies, simulator and data differ (docs/smac_datasets.md), so the comparison is of "
        "orderings and of InSPO against BC, not of digits. Win rate: greedy final evaluation over 320 battles "
        "(CFCQL's protocol), mean over the seeds listed with its 95 % bootstrap interval (benchmarks/stats.py: "
        "scipy.stats.bootstrap, percentile, 10,000 resamples); BC is the run's own behaviour-cloned µ evaluated the "
        "same way. P(InSPO > BC) is the probability that a run of InSPO beats a run of BC on the cell (ties half), "
        "with its bootstrap interval: InSPO is called better or worse only where that interval excludes 0.5.",
        "",
        "## Table 4",
        "",
        "| map | dataset | data win rate | ours InSPO [95 % CI] | ours BC [95 % CI] | P(InSPO > BC) | "
        "return InSPO / BC (data) | paper InSPO | paper BC | seeds | time/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    excluded = wall_time_exclusions(options.results_dir)
    verdicts, better = [], []

    def per_seed(runs: list[dict], what: str) -> str:
        return seed_differences(
            [s[f"final_{what}"] - s[f"bc_{what}"] for s in sorted(runs, key=lambda s: s["args"]["seed"])]
        )

    for m in MAPS:
        for k, d in enumerate(DATASETS):
            runs = groups.get((m, d, "inspo"), [])
            if not runs:
                lines.append(
                    f"| {m} | {d} | – | – | – | – | – | {PAPER_INSPO[m][k]} | {PAPER_BC[m][k]} | none yet | – |"
                )
                continue
            inspo = [s["final_win_rate"] for s in runs]
            bc = [s["bc_win_rate"] for s in runs]
            gain = np.mean(inspo) - np.mean(bc)
            improvement = probability_of_improvement([inspo], [bc])
            times = own_wall_times((m, d, "inspo"), runs, excluded)
            marks = ("" if all(map(lambda_critic, runs)) else " †") + data_mark(runs)
            lines.append(
                f"| {m} | {d}{marks} | {runs[0]['card']['win_rate']:.2f} | "
                f"{fmt_interval(*mean_interval(inspo))} | {fmt_interval(*mean_interval(bc))} | "
                f"{fmt_interval(*improvement)} | "
                f"{np.mean([s['final_return'] for s in runs]):.2f} / {np.mean([s['bc_return'] for s in runs]):.2f} "
                f"({runs[0]['card']['return_mean']:.2f}) | {PAPER_INSPO[m][k]} | {PAPER_BC[m][k]} | {seeds_of(runs)} | "
                + (f"{np.mean(times) / 60:.1f} min |" if times else "– |")
            )
            if improvement[2] < 0.5:
                verdicts.append(f"- {m} {d}: InSPO below BC in win rate by {-gain:.2f}{per_seed(runs, 'win_rate')}.")
            elif improvement[1] > 0.5:
                better.append(f"{m} {d}")
    lines += [
        "",
        "† made with one-step critic targets (`inspo_smac.py` before `--td-lambda`); these cells are rerun "
        "with the grid. The section *Critics* below covers the cells made with λ-return targets.",
    ]
    if any(data_mark(runs) for runs in groups.values()):
        lines += [
            "",
            "‡ (here and in the tables below) measured on the datasets made before the simulator's variety rules "
            "(docs/smac_simulator.md), with the defaults of then (auto-α from 0.1; 500 BC updates on 5m_vs_6m); "
            "these are rerun with the grid.",
        ]
    lines += [
        "",
        f"InSPO is better than BC (P(InSPO > BC)'s interval above 0.5) on {', '.join(better) or 'no cell'}, "
        f"worse (the interval below 0.5) on {len(verdicts) or 'no'} cell{'' if len(verdicts) == 1 else 's'}"
        + (" (below)" if verdicts else "")
        + "; the other cells cannot be told apart with these seeds.",
        *verdicts,
        "",
        *aggregate_report(groups, options),
    ]

    lines += [
        "",
        "The paper's ordering (expert ≥ mixed > medium-replay and medium, win rate of InSPO) and the dataset of "
        "the largest gain over BC, per map (only where all four datasets are measured):",
    ]
    for m in MAPS:
        cells = {d: groups.get((m, d, "inspo"), []) for d in DATASETS}
        if not all(cells.values()):
            continue
        win = {d: np.mean([s["final_win_rate"] for s in runs]) for d, runs in cells.items()}
        gain = {d: win[d] - np.mean([s["bc_win_rate"] for s in runs]) for d, runs in cells.items()}
        lines.append(ordering_line(m, win, gain))

    lines += ["", "## Table 5: α on 6h_vs_8z mixed", "", "| α | ours InSPO | paper | seeds |", "|---|---|---|---|"]
    for label, variant in (("0.1", "alpha-0.1"), ("1 (default)", "inspo"), ("10", "alpha-10"), ("auto", "alpha-auto")):
        runs = groups.get(("6h_vs_8z", "mixed", variant), [])
        lines.append(
            f"| {label}{data_mark(runs)} | {fmt([s['final_win_rate'] for s in runs])} | {PAPER_ALPHA[label]} | "
            f"{seeds_of(runs) or 'none yet'} |"
        )

    lines += [
        "",
        "## Table 6: update order on the mixed datasets",
        "",
        "| map | order | ours InSPO | paper | seeds |",
        "|---|---|---|---|---|",
    ]
    for m in ("5m_vs_6m", "6h_vs_8z"):
        for order in ("random", "fixed", "semi-greedy"):
            runs = groups.get((m, "mixed", "inspo" if order == "random" else f"order-{order}"), [])
            lines.append(
                f"| {m} | {order}{data_mark(runs)} | {fmt([s['final_win_rate'] for s in runs])} | "
                f"{PAPER_ORDER[(m, order)]} | "
                f"{seeds_of(runs) or 'none yet'} |"
            )

    lines += critic_report(groups)
    lines += tuning_report(groups, options, excluded)
    tuned = {name for _, _, name, _ in TUNING}

    lines += [
        "",
        "## Table 7: wall time per run",
        "",
        "Ours: one CPU thread per run (two runs side by side on 2 cores), from the dataset load to the final "
        "320-battle evaluation, BC and its evaluation included; the runs with the grid's settings (not those "
        "beyond the defaults above). The paper: InSPO on a GPU, one seed."
        + (
            f" {len(excluded)} runs whose wall time is not their own are left out "
            "(`benchmarks/results/smac/wall_time_excluded.json` names them and why)."
            if excluded
            else ""
        ),
        "",
        "| map | ours, mean over its runs | max | peak memory (worker process) | ours on a GPU (below) | paper (GPU) |",
        "|---|---|---|---|---|---|",
    ]
    for m in MAPS:
        times = [
            t
            for key, runs in groups.items()
            if key[0] == m and key[2] not in tuned  # the grid's settings only
            for t in own_wall_times(key, runs, excluded)
        ]
        memory = [
            s["peak_rss_mb"] for (mm, _, _), runs in groups.items() if mm == m for s in runs if "peak_rss_mb" in s
        ]
        memory_text = f"{max(memory) / 1024:.1f} GB" if memory else "–"
        gpu_times = [s["wall_time_s"] for (mm, _, _), runs in (gpu_groups or {}).items() if mm == m for s in runs]
        gpu_text = f"{np.mean(gpu_times) / 60:.1f} min" if gpu_times else "–"
        if times:
            lines.append(
                f"| {m} | {np.mean(times) / 60:.1f} min | {np.max(times) / 60:.1f} min | {memory_text} | {gpu_text} | "
                f"{PAPER_HOURS[m]} h |"
            )
        else:
            lines.append(f"| {m} | – | – | {memory_text} | {gpu_text} | {PAPER_HOURS[m]} h |")
    if gpu_groups:
        lines += gpu_report(options, groups, gpu_groups)

    lines += [
        "",
        "## Per seed",
        "",
        "InSPO / BC final win rates, and the best 32-battle evaluation during training.",
        "",
    ]
    for key in sorted(groups):
        runs = groups[key]
        cells = ", ".join(
            f"s{s['args']['seed']}: {s['final_win_rate']:.3f} / {s['bc_win_rate']:.3f} (best {s['best_win_rate']:.2f})"
            for s in runs
        )
        lines.append(f"- {' '.join(key)}: {cells}")
    return lines


def own_wall_times(key: tuple[str, str, str], runs: list[dict], excluded: dict[str, str]) -> list[float]:
    """wall_time_s of a cell's runs, less those whose time is not the run's own (wall_time_excluded.json)."""
    return [s["wall_time_s"] for s in runs if f"{'/'.join(key)}/seed{s['args']['seed']}" not in excluded]


def seed_differences(deltas: list[float]) -> str:
    """InSPO − BC seed by seed, and on how many seeds InSPO is below (as printed, two decimals)."""
    below, n = sum(round(x, 2) < 0 for x in deltas), len(deltas)
    return (
        f" (per seed {', '.join(f'{x:+.2f}' for x in deltas)}: "
        + (
            "below on every seed"
            if below == n
            else f"below on {below} of {n} seeds"
            + (", a difference within the seeds' spread rather than a systematic loss" if 2 * below <= n else "")
        )
        + ")"
    )


def cli_flags(flags: dict) -> str:
    """inspo_smac.py's command-line spelling of a run's flags (tyro: --no-x for a False boolean)."""
    return " ".join(
        (
            f"--{'' if value else 'no-'}{key.replace('_', '-')}"
            if isinstance(value, bool)
            else f"--{key.replace('_', '-')} {value}"
        )
        for key, value in flags.items()
    )


def lambda_critic(summary: dict) -> bool:
    """Whether a run's critics regressed λ-returns (its summary measures them against the return-to-go)."""
    return "td_lambda" in summary["args"] and "critic" in summary


def data_mark(runs: list[dict]) -> str:
    """' ‡' where a run's dataset was made before the simulator's variety rules (its card does not say variety)."""
    return "" if all(s.get("card", {}).get("variety") for s in runs) else " ‡"


def critic_report(groups: dict) -> list[str]:
    """The critics at the end of each run against the data's discounted return-to-go (inspo_smac.critic_report)."""
    lines = [
        "",
        "## Critics",
        "",
        "At the end of each run, the target critics' Q^i(s_t, a^i_t) against the data's discounted return-to-go G_t on "
        "64 fixed dataset episodes, pooled over agents and the steps t ≥ 5 (correlation; bias as a share of the mean "
        "G_t), and at t = 0 (mean Q against mean G). Mean over the cell's seeds, the worst seed in brackets; the "
        "target is a correlation ≥ 0.7 and |bias| ≤ 15 %.",
        "",
        "| map | dataset | λ | τ | correlation (t ≥ 5) | bias (t ≥ 5) | Q / G at t = 0 | InSPO − BC (win rate, "
        "return) | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (m, d, variant), runs in sorted(groups.items()):
        runs = [s for s in runs if lambda_critic(s)]
        if variant != "inspo" or not runs:
            continue
        corr = [s["critic"]["corr"] for s in runs]
        bias = [s["critic"]["relative_bias"] for s in runs]
        first = [s["critic"]["buckets"]["t0-1"] for s in runs]
        lines.append(
            f"| {m} | {d} | {runs[0]['args']['td_lambda']} | {runs[0]['args']['tau']} | {np.mean(corr):.2f} "
            f"({min(corr):.2f}) | {100 * np.mean(bias):+.0f} % ({100 * max(bias, key=abs):+.0f} %) | "
            f"{np.mean([b['q'] for b in first]):.2f} / {np.mean([b['return'] for b in first]):.2f} | "
            f"{np.mean([s['final_win_rate'] - s['bc_win_rate'] for s in runs]):+.2f}, "
            f"{np.mean([s['final_return'] - s['bc_return'] for s in runs]):+.2f} | {seeds_of(runs)} |"
        )
    return lines


def budget_flags(options: Options) -> str:
    """The flags every run of this invocation adds to inspo_smac.py's defaults."""
    return cli_flags(
        {
            key: value
            for key, value in (
                ("num_updates", options.num_updates),
                ("bc_updates", options.bc_updates),
                ("eval_interval", options.eval_interval),
            )
            if value is not None
        }
    )


def tuning_report(groups: dict, options: Options, excluded: dict[str, str]) -> list[str]:
    """The settings of TUNING beside the grid's defaults, cell by cell."""
    lines = [
        "",
        "## Settings beyond the defaults (not in the paper's tables)",
        "",
        "The grid's cells rerun with one setting changed (`TUNING` in benchmarks/smac.py says why for each); the "
        f"rest as the grid (`{budget_flags(options)}`). The paper "
        "tunes α and D̄_KL per task from its grid (α ∈ {0.1, 0.5, 1, 3, 5}, D̄_KL ∈ {0.08, 0.18, 0.3}). Time per "
        "run leaves out the runs listed under Table 7.",
        "",
        "| map | dataset | setting | ours InSPO | ours BC | InSPO − BC | paper InSPO | paper BC | seeds | time/run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, d in dict.fromkeys((m, d) for m, d, _, _ in TUNING):
        k = DATASETS.index(d)
        settings = [("defaults", "inspo")] + [
            (cli_flags(flags), name) for mm, dd, name, flags in TUNING if (mm, dd) == (m, d)
        ]
        for setting, variant in settings:
            runs = groups.get((m, d, variant), [])
            inspo, bc = [s["final_win_rate"] for s in runs], [s["bc_win_rate"] for s in runs]
            times = own_wall_times((m, d, variant), runs, excluded)
            lines.append(
                f"| {m} | {d} | {setting}{data_mark(runs)} | {fmt(inspo)} | {fmt(bc)} | "
                + (f"{np.mean(inspo) - np.mean(bc):+.2f}" if runs else "–")
                + f" | {PAPER_INSPO[m][k]} | {PAPER_BC[m][k]} | {seeds_of(runs) or 'none yet'} | "
                + (f"{np.mean(times) / 60:.1f} min |" if times else "– |")
            )
    return lines


def plot(groups: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(MAPS), figsize=(4 * len(MAPS), 6.4), sharex=True)
    for column, m in enumerate(MAPS):
        for row, (index, bc_key, label) in enumerate(((1, "bc_win_rate", "win rate"), (2, "bc_return", "return"))):
            ax = axes[row, column]
            for k, d in enumerate(DATASETS):
                runs = groups.get((m, d, "inspo"), [])
                if not runs:
                    continue
                n = min(len(s["history"]) for s in runs)
                x = [h[0] for h in runs[0]["history"][:n]]
                curves = np.array([[h[index] for h in s["history"][:n]] for s in runs])
                ax.plot(x, curves.mean(0), color=f"C{k}", label=f"{d} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
                ax.fill_between(x, curves.min(0), curves.max(0), color=f"C{k}", alpha=0.15)
                ax.axhline(np.mean([s[bc_key] for s in runs]), color=f"C{k}", ls=":", lw=1)
            if row == 0:
                ax.set_title(m)
                ax.set_ylim(-0.02, 1.02)
            else:
                ax.set_xlabel("training iterations")
            if column == 0:
                ax.set_ylabel(f"{label} (32 battles, greedy)")
            if row == 0 and ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="center right")
    fig.suptitle("InSPO on the built-in SMAC simulator: mean over seeds, band min-max; dotted: BC (320 battles)")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=100)
    os.replace(path + ".tmp.png", path)


def main(options: Options) -> None:
    for m in options.maps:
        if m not in MAPS:
            raise InputError(f"unknown map {m!r}; accepted: {', '.join(MAPS)}")
    for d in options.datasets:
        if d not in DATASETS:
            raise InputError(f"unknown dataset {d!r}; accepted: {', '.join(DATASETS)}")
    for cell in options.cells:
        m, _, d = cell.partition("/")
        if m not in MAPS or d not in DATASETS:
            raise InputError(
                f"--cells {cell!r} is not accepted; accepted: map/dataset with a map of {', '.join(MAPS)} "
                f"and a dataset of {', '.join(DATASETS)}"
            )
    runs = grid(options)
    if not options.report_only:
        # build the datasets once, before the workers race for them
        from envs.smac_data import load_or_make

        for m, d in sorted(
            {
                (r.flags["map"], r.flags["dataset"])
                for r in runs
                if not os.path.isfile(sweep.summary_path(options.results_dir, r))
            }
        ):
            load_or_make(m, d, 0, None)
        sweep.run_grid(runs, options.results_dir, options.workers, options.ray_address, options.cuda)
    # the tables use every summary there, including seeds or cells outside this invocation's grid
    groups = collect(read_summaries(options.results_dir))
    gpu_groups = (
        collect(read_summaries(options.gpu_results_dir)) if options.gpu_results_dir != options.results_dir else {}
    )
    lines = report(options, groups, len(runs), gpu_groups)
    os.makedirs(options.out_dir, exist_ok=True)
    md = os.path.join(options.out_dir, "smac.md")
    with open(md + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(md + ".tmp", md)
    if groups:
        plot(groups, os.path.join(options.out_dir, "smac_curves.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    try:
        main(tyro.cli(Options))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
