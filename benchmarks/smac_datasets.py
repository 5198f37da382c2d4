"""The sixteen SMAC datasets made on the built-in simulator, beside CFCQL's (OG-MARL's cards of CFCQL's files).

For every map with shipped behaviour policies (envs/smac_policies/<map>/) and every dataset, one
fresh process generates the dataset into an empty cache and reports its card, its wall time and
its peak memory; the results go to benchmarks/results/smac_datasets.md (with the cards as JSON
under benchmarks/results/smac_datasets/) and the QMIX training curves to
benchmarks/results/qmix_curves.png. A card already under results/smac_datasets/ is kept (delete
it to re-measure), so the benchmark can be completed in parts.

    python benchmarks/smac_datasets.py [--maps 2s3z 3s_vs_5z] [--cache-dir DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import tyro

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from envs.smac import MAPS  # noqa: E402
from envs.smac_data import CFCQL_CARDS, DATASETS, POLICY_DIR  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results")
CARDS = os.path.join(RESULTS, "smac_datasets")
CHILD = """
import json, resource, sys, time
from envs.smac_data import load_or_make
if sys.argv[2] == "mixed":  # mixed reads medium and expert: made (or found) first, outside the timing
    for part in ("medium", "expert"):
        load_or_make(sys.argv[1], part, 0, sys.argv[3])
start = time.time()
path, card = load_or_make(sys.argv[1], sys.argv[2], 0, sys.argv[3])
card["process_wall_time_s"] = time.time() - start
card["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("CARD " + json.dumps(card))
"""


@dataclass
class Args:
    maps: list[str] = field(default_factory=lambda: list(MAPS))
    """maps to generate (those without shipped policies are skipped); the report covers every map with kept cards"""
    cache_dir: str | None = None
    """the cache root the datasets are generated into (its smac/ folder, as inspo_smac.py's --cache-dir; default: a
    temporary directory, deleted afterwards)"""


def generate(map_name: str, name: str, cache_dir: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, map_name, name, cache_dir],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("CARD ")]
    if out.returncode or not lines:
        raise RuntimeError(f"{map_name} {name}: {out.stderr[-2000:]}")
    return json.loads(lines[-1][5:])


def qmix_throughput(map_name: str) -> dict:
    """tools/qmix_smac.py's speed on this machine: a short run with the default recipe, timed by part."""
    path = os.path.join(CARDS, f"qmix_throughput_{map_name}.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    with tempfile.TemporaryDirectory() as runs:
        out = subprocess.run(
            [
                sys.executable,
                "tools/qmix_smac.py",
                "--map",
                map_name,
                "--total-env-steps",
                "40000",
                "--threads",
                "2",
                "--no-progress",
                "--runs-dir",
                runs,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if out.returncode:
            raise RuntimeError(f"qmix {map_name}: {out.stderr[-2000:]}")
        with open(os.path.join(runs, f"{map_name}_seed0", "summary.json")) as f:
            summary = json.load(f)
    t = summary["timings_s"]
    result = {
        "env_steps": summary["t_env"],
        "episodes": summary["episodes"],
        "updates": summary["updates"],
        "wall_time_s": summary["wall_time_s"],
        "rollout_steps_per_s": summary["t_env"] / t["rollout"],
        "update_s": t["update"] / max(summary["updates"], 1),
        "test_s": t["test"],
    }
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return result


def manifest(map_name: str) -> dict | None:
    path = os.path.join(POLICY_DIR, map_name, "manifest.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def plot_curves(manifests: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(manifests), figsize=(4 * len(manifests), 3.2), squeeze=False)
    for ax, (map_name, m) in zip(axes[0], manifests.items()):
        steps = [r["t_env"] / 1e6 for r in m["curve"]]
        ax.plot(steps, [r["test_win_rate"] for r in m["curve"]], lw=1, label=f"{m['source_run']} (medium, replay)")
        if "expert_curve" in m:
            ax.plot(
                [r["t_env"] / 1e6 for r in m["expert_curve"]],
                [r["test_win_rate"] for r in m["expert_curve"]],
                lw=1,
                label=f"{m['expert_run']} (expert)",
            )
        for name, marker in (("medium", "o"), ("expert", "*")):
            if m[name]["t_env"] is None:  # a scripted expert: a level, not a point of the curve
                ax.axhline(
                    m[name]["eval"]["win_rate"], ls="--", c="k", lw=1, label=f"{name}: scripted {m[name]['scripted']}"
                )
            else:
                ax.plot(
                    m[name]["t_env"] / 1e6, m[name]["eval"]["win_rate"], marker, ms=9, label=f"{name} (320 battles)"
                )
        ax.set_title(map_name)
        ax.set_xlabel("env steps (millions)")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("greedy test win rate (32 battles)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(args: Args) -> None:
    os.makedirs(CARDS, exist_ok=True)
    # --maps are generated (where their cards are missing); the report covers every map with kept cards
    manifests = {m: manifest(m) for m in MAPS}
    manifests = {k: v for k, v in manifests.items() if v is not None}
    cache = args.cache_dir or tempfile.mkdtemp(prefix="inspo_smac_bench_")
    cards = {}
    for map_name in manifests:
        for name in DATASETS:
            path = os.path.join(CARDS, f"{map_name}_{name}.json")
            if os.path.isfile(path):
                with open(path) as f:
                    cards[map_name, name] = json.load(f)
                continue
            if map_name not in args.maps:
                continue
            card = generate(map_name, name, cache)
            with open(path, "w") as f:
                json.dump(card, f, indent=1)
            cards[map_name, name] = card
            print(
                f"{map_name} {name}: {card['episodes']} episodes, return {card['return_mean']:.2f}, "
                f"{card['process_wall_time_s']:.0f} s, {card['peak_rss_mb']:.0f} MB",
                flush=True,
            )

    lines = [
        "# SMAC datasets on the built-in simulator, beside CFCQL's",
        "",
        "Made by `python benchmarks/smac_datasets.py` (one fresh process per dataset, 2 threads, nothing else running; "
        "`mixed` reads the cached medium and expert files, so its time is the mixing alone, while its peak memory "
        "includes making them). CFCQL: OG-MARL's cards of CFCQL's "
        "StarCraft II files. Ours: rollouts of the QMIX agents in "
        "envs/smac_policies/ on `envs.smac.SMACBatch` (docs/smac_datasets.md). Δ: ours relative to CFCQL.",
        "",
        "| map | dataset | episodes | transitions | return (ours) | return (CFCQL) | Δ return | mean length (ours / "
        "CFCQL) "
        "| Δ length | win rate (ours) | time (s) | peak memory (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (map_name, name), c in cards.items():
        mean, std, length = CFCQL_CARDS[map_name, name]
        lines.append(
            f"| {map_name} | {name} | {c['episodes']} | {c['transitions']:,} | {c['return_mean']:.2f} ± "
            f"{c['return_std']:.2f} "
            f"| {mean:.2f} ± {std:.2f} | {100 * (c['return_mean'] / mean - 1):+.0f} % | "
            f"{c['mean_episode_length']:.1f} / {length} "
            f"| {100 * (c['mean_episode_length'] / length - 1):+.0f} % | {c['win_rate']:.3f} | "
            f"{c['process_wall_time_s']:.0f} "
            f"| {c['peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        "## Behaviour policies (greedy unless an ε is given, on fresh battles never used in training)",
        "",
        "| map | policy | run | env steps | battles | win rate | return | mean length |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for map_name, m in manifests.items():
        for name in ("medium", "expert"):
            e = m[name]["eval"]
            run = m["expert_run"] if name == "expert" else m["source_run"]
            if m[name].get("rollout_epsilon"):  # a scripted expert plays (and makes its dataset) ε-greedily
                run += f" (ε = {m[name]['rollout_epsilon']})"
            steps = "—" if m[name]["t_env"] is None else f"{m[name]['t_env']:,}"
            lines.append(
                f"| {map_name} | {name} | {run} | {steps} | {e['episodes']} | {e['win_rate']:.3f} | "
                f"{e['return']:.2f} | {e['episode_length']:.1f} |"
            )
    lines += [
        "",
        "medium_replay: ε-greedy rollouts of the checkpoints that played the last training episodes before the "
        "medium one, in proportion to the episodes each played, with its mean ε:",
        "",
    ]
    for map_name, m in manifests.items():
        spans = ", ".join(f"{e['t_env'] // 1000}k×{e['episodes']} (ε {e['epsilon']:.2f})" for e in m["replay"])
        lines.append(f"- {map_name} ({m['source_run']}): {spans}")
    lines += [
        "",
        "## QMIX trainer speed on this machine (2 CPU cores, 2 threads, nothing else running)",
        "",
        "A 40k-step run of `tools/qmix_smac.py` with the default recipe (64 battles per rollout, 8 updates of 128 "
        "episodes after each): env steps per second of the rollouts (agent forward included), seconds per gradient "
        "update, and what the two give together at the recipe's ratio of one update per 8 episodes.",
        "",
        "| map | rollout env-steps/s | s per update | mean episode length in the run | env-steps/s with updates | "
        "updates/s |",
        "|---|---|---|---|---|---|",
    ]
    for map_name in manifests:
        if map_name not in args.maps and not os.path.isfile(os.path.join(CARDS, f"qmix_throughput_{map_name}.json")):
            continue
        q = qmix_throughput(map_name)
        length = q["env_steps"] / q["episodes"]
        per_step = 1 / q["rollout_steps_per_s"] + q["update_s"] / (8 * length)
        lines.append(
            f"| {map_name} | {q['rollout_steps_per_s']:,.0f} | {q['update_s']:.2f} | {length:.0f} | "
            f"{1 / per_step:,.0f} | "
            f"{1 / (per_step * 8 * length):.2f} |"
        )
    lines += [
        "",
        "## QMIX training curves (greedy test win rate every snapshot, 32 battles)",
        "",
        "![curves](qmix_curves.png)",
        "",
    ]
    for map_name, m in manifests.items():
        for label, curve in (
            ("medium/replay run " + m["source_run"], m["curve"]),
            *((("expert run " + m["expert_run"], m["expert_curve"]),) if "expert_curve" in m else ()),
        ):
            step = max(1, len(curve) // 16)
            points = " ".join(f"{r['t_env'] // 1000}k:{r['test_win_rate']:.2f}" for r in curve[::step])
            lines.append(f"- {map_name}, {label}: {points}")
    with open(os.path.join(RESULTS, "smac_datasets.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot_curves(manifests, os.path.join(RESULTS, "qmix_curves.png"))
    print(f"results: {os.path.join(RESULTS, 'smac_datasets.md')}")


if __name__ == "__main__":
    main(tyro.cli(Args))
