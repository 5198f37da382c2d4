# docs: docs/smac_datasets.md
"""Choose a map's behaviour policies from a QMIX run and ship them in envs/smac_policies/<map>/.

CFCQL's recipe (docs/smac_datasets.md) names three kinds of behaviour policy; from the
snapshots tools/qmix_smac.py saved, this tool picks:
  * expert: the snapshot with the best greedy win rate (ties: return) over --eval-episodes
    battles, among the --candidates snapshots with the best test win rates during training
    (or the one --expert-t-env names, or the expert already shipped, with --expert-shipped);
  * medium: the snapshot before the expert (or before --medium-before env steps) whose greedy
    return, its spread and episode length over --eval-episodes battles are closest to CFCQL's medium
    card for the map (OG-MARL's; each miss in units of the fidelity report's tolerance: 10 % of the
    return, a factor 2 of its sd, 15 % of the length; summed), with a win rate below the expert's
    (where the run never wins: a return below the expert's), or the one --medium-t-env names;
  * replay: the snapshots that played the last N training episodes before the medium one
    (N = 5000; 1976 on 2s3z, as CFCQL's files), each with the number of episodes it played and
    its mean ε, merged into at most --max-replay-checkpoints (each keeps the earliest weights of
    the episodes it stands for).
It writes the chosen weights, a JSON beside each, and manifest.json, which envs/smac_data.py reads.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from envs import InputError, run_cli  # noqa: E402
from envs.smac import MAPS, SMACBatch  # noqa: E402
from envs.smac_data import (  # noqa: E402
    CFCQL_CARDS,
    POLICY_DIR,
    card_misses,
    cfcql_episodes,
    load_agent,
    policy_manifest,
    rollout,
)

EVAL_SEED = 90_000_000  # battles never used by training, tests or datasets


@dataclass
class Args:
    run_dir: str
    """a tools/qmix_smac.py run directory (runs/qmix/<map>_seed<seed>): medium and replay come from it"""
    expert_run_dir: str | None = None
    """another run of the same map to take the expert from (default: --run-dir)"""
    expert_t_env: int | None = None
    """take the expert from the snapshot at this many env steps instead of the best candidate (e.g. one that wins
    as often as the best, within the evaluation's noise, in episodes nearer CFCQL's length); evaluated all the same"""
    expert_shipped: bool = False
    """keep the expert already shipped in --policy-dir (its weights, evaluation, training record and run) and pick a
    new medium and replay from --run-dir beside it"""
    expert_scripted: str | None = None
    """ship a scripted team of envs.smac (e.g. kite on 3s_vs_5z) as the expert, where QMIX never learned to win"""
    expert_epsilon: float = 0.0
    """ε of the scripted expert's rollouts (evaluation and dataset): a deterministic team on the simulator
    otherwise plays one and the same episode in every battle (3s_vs_5z's kite: 0.02, docs/smac_datasets.md)"""
    eval_episodes: int = 2048
    """greedy battles that rank the candidate snapshots (with a few hundred, the best of 16 is mostly the luckiest)"""
    candidates: int = 8
    """snapshots (best training test win rates) re-evaluated for the expert; also for the medium"""
    medium_before: int | None = None
    """take the medium from --run-dir's snapshots before this many env steps (default: before the expert, when it is
    of the same run; all of them with --expert-run-dir or --expert-scripted)"""
    medium_t_env: int | None = None
    """take the medium from the snapshot at this many env steps instead of the one nearest CFCQL's card among the
    --candidates (e.g. one as near the card, whose medium-replay window plays nearer the card's medium-replay
    return); evaluated all the same, and it must play below the expert"""
    max_replay_checkpoints: int = 20
    """merge the replay snapshots into at most this many"""
    policy_dir: str = POLICY_DIR
    """where to ship (envs/smac_policies)"""


def snapshots(run_dir: str) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(os.path.join(run_dir, "snapshots", "agent_*.json"))):
        with open(path) as f:  # a run may hold some snapshots' weights only
            rows.append({**json.load(f), "path": path[:-5] + ".pt", "weights": os.path.exists(path[:-5] + ".pt")})
    if not rows:
        raise InputError(f"{run_dir!r} holds no snapshots (snapshots/agent_*.json)")
    return rows


def evaluate(row: dict, map_name: str, episodes: int, variety: bool) -> dict:
    """Win rate, return and length of one snapshot (or scripted team) over `episodes` fresh battles: greedy, or with
    the row's rollout_epsilon (a scripted expert's), on the simulator's rules the policies were trained with."""
    if "eval" not in row:
        battles = SMACBatch(map_name, episodes, seed=EVAL_SEED, auto_reset=False, variety=variety)
        agent = None if "scripted" in row else load_agent(row["path"], map_name)
        out = rollout(
            battles, agent, row.get("rollout_epsilon", 0.0), np.random.default_rng(0), scripted=row.get("scripted")
        )
        row["eval"] = {
            "win_rate": float(out["won"].mean()),
            "return": float(out["reward"].sum(1).mean()),
            "return_std": float(out["reward"].sum(1).std()),
            "episode_length": float(out["length"].mean()),
            "episodes": episodes,
        }
    return row["eval"]


def replay_window(rows: list[dict], medium_index: int, n_episodes: int, max_checkpoints: int) -> list[dict]:
    """The snapshots that played the last n_episodes training episodes before snapshot medium_index.

    Snapshot k's weights played the episodes counted in snapshot k+1's `episodes_since_previous`."""
    window = []
    remaining = n_episodes
    for k in range(medium_index - 1, -1, -1):
        played = rows[k + 1]["episodes_since_previous"]
        take = min(played, remaining)
        if take > 0:
            window.append({"row": rows[k], "episodes": take, "epsilon": rows[k + 1]["mean_epsilon_since_previous"]})
            remaining -= take
        if remaining == 0:
            break
    window.reverse()
    # merge neighbours: each group keeps its earliest snapshot, the sum of the episodes, the mean ε
    groups = np.array_split(np.arange(len(window)), min(max_checkpoints, len(window)))
    merged = []
    for group in groups:
        parts = [window[i] for i in group]
        count = sum(p["episodes"] for p in parts)
        merged.append(
            {
                "row": parts[0]["row"],
                "episodes": count,
                "epsilon": sum(p["episodes"] * p["epsilon"] for p in parts) / count,
            }
        )
    return merged


def curve(rows: list[dict]) -> list[dict]:
    keys = ("t_env", "updates", "wall_time_s", "test_win_rate", "test_return", "test_episode_length", "epsilon")
    return [{k: r[k] for k in keys} for r in rows]


def describe(row: dict, file: str) -> dict:
    keys = ("t_env", "episodes", "updates", "epsilon", "test_win_rate", "test_return", "test_episode_length")
    return {"file": file, **{k: row[k] for k in keys}, "eval": row.get("eval")}


def main(args: Args) -> dict:
    if not 0.0 <= args.expert_epsilon < 1.0 or (args.expert_epsilon and not args.expert_scripted):
        raise InputError(
            f"--expert-epsilon {args.expert_epsilon} is not accepted; accepted: 0 <= ε < 1, with --expert-scripted"
        )
    ways = [
        flag
        for flag, given in (
            ("--expert-t-env", args.expert_t_env is not None),
            ("--expert-scripted", args.expert_scripted is not None),
            ("--expert-shipped", args.expert_shipped),
        )
        if given
    ]
    if len(ways) > 1 or (args.expert_run_dir and ways and ways != ["--expert-t-env"]):
        given = (["--expert-run-dir"] if args.expert_run_dir else []) + ways
        raise InputError(f"{' and '.join(given)} are not accepted together; accepted: one way to pick the expert")
    if args.medium_before is not None and args.medium_before <= 0:
        raise InputError(
            f"--medium-before {args.medium_before} is not accepted; accepted: a positive number of env steps"
        )
    if args.medium_t_env is not None and args.medium_before is not None:
        raise InputError("--medium-t-env and --medium-before are not accepted together; accepted: one of them")
    rows = snapshots(args.run_dir)
    map_name = rows[0]["map"]
    expert_rows = snapshots(args.expert_run_dir) if args.expert_run_dir else rows
    if expert_rows[0]["map"] != map_name:
        raise InputError(f"--expert-run-dir is a run on {expert_rows[0]['map']}, --run-dir on {map_name}")
    trainer_args, expert_trainer_args = rows[0]["args"], expert_rows[0]["args"]  # from each run's first snapshot

    def trained_variety(run_args: dict) -> bool:
        return MAPS[map_name].variety if run_args.get("variety") is None else run_args["variety"]

    variety = trained_variety(trainer_args)
    if trained_variety(expert_trainer_args) != variety:
        raise InputError(
            f"--expert-run-dir trained with variety={trained_variety(expert_trainer_args)}, --run-dir with "
            f"variety={variety}; accepted: two runs on the same simulator rules"
        )
    # expert: the one shipped, a scripted team, a named snapshot, or the best of the best few snapshots re-evaluated
    shipped = policy_manifest(map_name, args.policy_dir) if args.expert_shipped else None
    if shipped is not None:
        if shipped["variety"] != variety:
            raise InputError(
                f"the shipped {map_name} expert played with variety={shipped['variety']}, --run-dir with "
                f"variety={variety}; accepted: a run on the same simulator rules"
            )
        expert = {k: v for k, v in shipped["expert"].items() if k != "file"}
        if "scripted" not in expert:
            expert["path"] = os.path.join(args.policy_dir, map_name, shipped["expert"]["file"])
        expert_trainer_args = shipped.get("expert_trainer_args", shipped["trainer_args"])
    elif args.expert_scripted:
        expert = {
            "scripted": args.expert_scripted,
            "t_env": None,
            **({"rollout_epsilon": args.expert_epsilon} if args.expert_epsilon else {}),
        }
        evaluate(expert, map_name, args.eval_episodes, variety)
    elif args.expert_t_env is not None:
        pinned = [r for r in expert_rows if r["t_env"] == args.expert_t_env and r["weights"]]
        if not pinned:
            raise InputError(
                f"--expert-t-env {args.expert_t_env} is not accepted; accepted: the env steps of a snapshot with "
                f"weights in the run, e.g. {', '.join([str(r['t_env']) for r in expert_rows if r['weights']][-3:])}"
            )
        expert = pinned[0]
        evaluate(expert, map_name, args.eval_episodes, variety)
    else:
        ranked = sorted(
            [r for r in expert_rows if r["weights"]], key=lambda r: (r["test_win_rate"], r["test_return"]), reverse=True
        )[: args.candidates]
        expert = max(
            ranked, key=lambda r: (evaluate(r, map_name, args.eval_episodes, variety)["win_rate"], r["eval"]["return"])
        )
    # medium: the snapshot whose return, sd and length are nearest CFCQL's medium card, before the expert (same run)
    # and below it
    target, target_sd, target_length = CFCQL_CARDS[(map_name, "medium")]

    def off_card(mean_return: float, length: float, sd: float | None = None) -> float:
        """The misses in units of the fidelity report's tolerances, summed (the sd's only where measured)."""
        return sum(card_misses((target, target_sd, target_length), mean_return, length, sd).values())

    limit = (
        args.medium_before
        if args.medium_before is not None
        else expert["t_env"]
        if expert_rows is rows and expert["t_env"] is not None and shipped is None
        else float("inf")
    )
    before = [r for r in rows if 0 < r["t_env"] < limit and r["weights"]]
    if args.medium_t_env is None:
        near = sorted(before, key=lambda r: off_card(r["test_return"], r["test_episode_length"]))[: args.candidates]
    else:
        near = [r for r in before if r["t_env"] == args.medium_t_env]
        if not near:
            raise InputError(
                f"--medium-t-env {args.medium_t_env} is not accepted; accepted: the env steps of a snapshot with "
                f"weights before the expert, e.g. {', '.join(str(r['t_env']) for r in before[-3:])}"
            )
    for r in near:
        evaluate(r, map_name, args.eval_episodes, variety)
    # below the expert: a lower win rate, or (where the run never wins) a lower return
    below = [r for r in near if r["eval"]["win_rate"] < expert["eval"]["win_rate"]] or [
        r for r in near if r["eval"]["return"] < expert["eval"]["return"]
    ]
    if not below:
        raise InputError(f"no snapshot before the expert (t_env {expert['t_env']}) plays below it; train longer")
    medium = min(
        below, key=lambda r: off_card(r["eval"]["return"], r["eval"]["episode_length"], r["eval"].get("return_std"))
    )
    n_replay = cfcql_episodes(map_name, "medium_replay")
    replay = replay_window(rows, rows.index(medium), n_replay, args.max_replay_checkpoints)
    missing = [item["row"]["path"] for item in replay if not item["row"]["weights"]]
    if missing:
        raise InputError(
            f"the medium-replay window needs weights the run does not hold ({missing[0]} and {len(missing) - 1} more); "
            f"carry the run with --keep-episodes {n_replay}"
        )

    out_dir = os.path.join(args.policy_dir, map_name)
    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if "path" in expert:
        shutil.copyfile(expert["path"], os.path.join(tmp, "expert.pt"))
    shutil.copyfile(medium["path"], os.path.join(tmp, "medium.pt"))
    entries = []
    for item in replay:
        file = f"replay_{item['row']['t_env']:010d}.pt"
        shutil.copyfile(item["row"]["path"], os.path.join(tmp, file))
        entries.append({**describe(item["row"], file), "episodes": item["episodes"], "epsilon": item["epsilon"]})
    manifest = {
        "map": map_name,
        "variety": variety,  # the simulator's rules the policies were trained and evaluated with
        "source_run": os.path.basename(os.path.normpath(args.run_dir)),
        "expert_run": shipped["expert_run"]
        if shipped is not None
        else f"scripted {args.expert_scripted}"
        if args.expert_scripted
        else os.path.basename(os.path.normpath(args.expert_run_dir or args.run_dir)),
        "trainer_args": trainer_args,
        "ship_args": {k: v for k, v in asdict(args).items() if k != "policy_dir"},
        "selection": __doc__.split("this tool picks:")[1].split("It writes")[0].strip(),
        "cfcql_medium_card": {"return": target, "return_sd": target_sd, "episode_length": target_length},
        "eval_episodes": args.eval_episodes,
        "expert": describe(expert, "expert.pt")
        if "path" in expert
        else {k: expert[k] for k in ("scripted", "rollout_epsilon", "t_env", "eval") if k in expert},
        "medium": describe(medium, "medium.pt"),
        "replay": entries,
        "replay_episodes": sum(e["episodes"] for e in entries),
        "curve": curve(rows),
    }
    if args.expert_run_dir:
        manifest["expert_trainer_args"] = expert_trainer_args
        manifest["expert_curve"] = curve(expert_rows)
    elif shipped is not None:  # the shipped expert's record, as it was shipped (a scripted one has no run)
        manifest["expert_trainer_args"] = expert_trainer_args
        if "scripted" not in expert:
            manifest["expert_curve"] = shipped.get("expert_curve", shipped["curve"])
    for name, run_args in (("expert", expert_trainer_args), ("medium", trainer_args)):
        with open(os.path.join(tmp, f"{name}.json"), "w") as f:
            json.dump({**manifest[name], "map": map_name, "trainer_args": run_args}, f, indent=1)
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    print(
        f"{map_name}: expert t_env {expert['t_env']} win {expert['eval']['win_rate']:.3f} return "
        f"{expert['eval']['return']:.2f}; "
        f"medium t_env {medium['t_env']} win {medium['eval']['win_rate']:.3f} return {medium['eval']['return']:.2f} "
        f"length {medium['eval']['episode_length']:.1f} (CFCQL {target}, {target_length}); "
        f"replay {len(entries)} checkpoints, {manifest['replay_episodes']} episodes -> {out_dir}"
    )
    return manifest


if __name__ == "__main__":
    run_cli(main, Args)
