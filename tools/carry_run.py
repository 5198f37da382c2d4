# docs: docs/smac_datasets.md ("Continuing the QMIX runs")
"""Carry a tools/qmix_smac.py run to another session or machine: small enough to commit.

A run's directory holds its replay buffer (about 1 GB on 3s_vs_5z) and a snapshot every 20k env
steps (131 kB each, hundreds of them). This tool copies what continuing and shipping need:
  * the newest training state (networks, optimiser, counters, random streams, the test history)
    and latest.json, without the buffer: `--resume` then continues from the networks with an
    empty buffer and says so (not bit-exact, but the same run);
  * every snapshot's JSON (the training curve, and the episode counts medium_replay is rebuilt from);
  * the weights of the --keep-best snapshots with the best greedy tests (the expert candidates of
    tools/ship_policies.py), of the --keep-last newest ones, and of the snapshots that played the
    --keep-episodes training episodes before each kept one (what a medium-replay window needs).

    python tools/carry_run.py --run-dir runs/qmix/3s_vs_5z_seed3 --out-dir tools/qmix_runs/3s_vs_5z_seed3
    cp -r tools/qmix_runs/3s_vs_5z_seed3 runs/qmix/ && python tools/qmix_smac.py --map 3s_vs_5z --seed 3 \
        --total-env-steps 10000000 --resume
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from envs import InputError, run_cli  # noqa: E402
from tools.ship_policies import snapshots  # noqa: E402


@dataclass
class Args:
    run_dir: str
    """the run to carry (runs/qmix/<map>_seed<seed>)"""
    out_dir: str
    """where to write the carried run (replaced whole, atomically)"""
    keep_best: int = 8
    """keep the weights of this many snapshots with the best greedy test (win rate, then return)"""
    keep_last: int = 1
    """keep the weights of this many newest snapshots"""
    keep_episodes: int = 0
    """also keep the snapshots that played this many training episodes before each kept one (5000: a medium-replay window)"""


def kept_snapshots(rows: list[dict], keep_best: int, keep_last: int, keep_episodes: int) -> set[int]:
    """Indices (in t_env order) of the snapshots whose weights are kept; a row with "weights": False (a run
    carried before; tools/ship_policies.snapshots sets it) has none to keep."""
    have = [i for i, r in enumerate(rows) if r.get("weights", True)]
    ranked = sorted(have, key=lambda i: (rows[i]["test_win_rate"], rows[i]["test_return"]), reverse=True)
    kept = set(ranked[:keep_best]) | set(have[max(len(have) - keep_last, 0):])
    for i in sorted(kept):
        # snapshot k's weights played the episodes counted by snapshot k+1 (tools/ship_policies.py, replay_window)
        remaining, k = keep_episodes, i - 1
        while remaining > 0 and k >= 0:
            if rows[k].get("weights", True):
                kept.add(k)
            remaining -= rows[k + 1]["episodes_since_previous"]
            k -= 1
    return kept


def main(args: Args) -> dict:
    if min(args.keep_best, args.keep_last, args.keep_episodes) < 0:
        raise InputError("--keep-best, --keep-last and --keep-episodes must be >= 0")
    try:
        with open(os.path.join(args.run_dir, "latest.json")) as f:
            latest = json.load(f)
    except (OSError, ValueError) as error:
        raise InputError(f"{args.run_dir!r} holds no readable checkpoint (latest.json: {error})") from None
    # snapshots newer than the checkpoint are replayed by --resume; they are not carried
    keep = [r for r in snapshots(args.run_dir) if r["t_env"] <= latest["t_env"]]
    weights = kept_snapshots(keep, args.keep_best, args.keep_last, args.keep_episodes)
    tmp = os.path.normpath(args.out_dir) + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "snapshots"))
    shutil.copyfile(os.path.join(args.run_dir, latest["state"]), os.path.join(tmp, latest["state"]))
    with open(os.path.join(tmp, "latest.json"), "w") as f:
        json.dump(latest, f)  # its buffer is not there: --resume says so and starts with an empty one
    for i, row in enumerate(keep):
        for path in [row["path"][:-3] + ".json"] + ([row["path"]] if i in weights else []):
            shutil.copyfile(path, os.path.join(tmp, "snapshots", os.path.basename(path)))
    old = os.path.normpath(args.out_dir) + ".old"
    if os.path.exists(args.out_dir):
        os.replace(args.out_dir, old)
    os.replace(tmp, args.out_dir)
    shutil.rmtree(old, ignore_errors=True)
    summary = {"t_env": latest["t_env"], "snapshots": len(keep), "weights": len(weights)}
    print(f"carried {args.run_dir} at {latest['t_env']} env steps: {len(keep)} snapshots, {len(weights)} with weights -> {args.out_dir}")
    return summary


if __name__ == "__main__":
    run_cli(main, Args)
