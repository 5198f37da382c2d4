"""How varied our SMAC datasets are, beside CFCQL's StarCraft II files: the simulator's fidelity report.

For each of the 16 datasets (generated, or read from the cache, with the map's default rules; see
docs/smac_simulator.md, "Where battles vary"), beside CFCQL's values from OG-MARL's cards:
  * Joint SACo (OG-MARL's coverage: distinct (state rounded to 4 decimals, joint action) pairs ÷ transitions),
    over all episodes and over the distinct episodes only. CFCQL stored each greedy episode 8 times (8 workers
    with one seed), so its medium and expert values are capped at 1/8 and its per-distinct value is the card's
    × 8 (mixed: × 4.016, medium_replay: × 1);
  * the first step at which two episodes' joint observations differ;
  * shared transitions per distinct episode, (1 − per-distinct SACo) × mean length;
  * return mean and sd, mean episode length, and the share of battles that run to the map's limit (stand-offs:
    the enemy waits where its attack-move ends, docs/smac_simulator.md; CFCQL's cards do not give it).
It also plays the scripted checks (kiting wins 3s_vs_5z, standing loses it) and each shipped expert greedily on
320 battle seeds that no dataset, training run or test uses. Writes benchmarks/results/smac_fidelity.md.

    python benchmarks/smac_fidelity.py [--maps 3s_vs_5z] [--cache-dir DIR]
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import tyro

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from envs.smac import MAPS, SMACBatch, play_scripted  # noqa: E402
from envs.smac_data import (  # noqa: E402
    CFCQL_CARDS,
    DATASETS,
    POLICY_DIR,
    _read,
    card_misses,
    load_agent,
    load_or_make,
    policy_manifest,
    rollout,
)

# OG-MARL's Joint SACo of CFCQL's files (docs/dataset_cards/datacard_info.json in instadeepai/og-marl)
CFCQL_SACO = {
    ("2s3z", "medium"): 0.123,
    ("2s3z", "medium_replay"): 0.998,
    ("2s3z", "expert"): 0.123,
    ("2s3z", "mixed"): 0.245,
    ("3s_vs_5z", "medium"): 0.110,
    ("3s_vs_5z", "medium_replay"): 0.988,
    ("3s_vs_5z", "expert"): 0.122,
    ("3s_vs_5z", "mixed"): 0.227,
    ("5m_vs_6m", "medium"): 0.100,
    ("5m_vs_6m", "medium_replay"): 0.961,
    ("5m_vs_6m", "expert"): 0.120,
    ("5m_vs_6m", "mixed"): 0.220,
    ("6h_vs_8z", "medium"): 0.124,
    ("6h_vs_8z", "medium_replay"): 0.996,
    ("6h_vs_8z", "expert"): 0.124,
    ("6h_vs_8z", "mixed"): 0.245,
}
# copies of each distinct episode in CFCQL's files: 8 workers with one seed; mixed keeps on average 4 of the 8
# (and a distinct episode is missing with probability 1/256); the replay buffer's ε-greedy episodes all differ
CFCQL_COPIES = {"medium": 8.0, "expert": 8.0, "mixed": 4.016, "medium_replay": 1.0}
# battles that neither a dataset (12M…) nor tools/ship_policies.py's choice of the expert (90M…) plays: on the
# battles that chose it, the best of 16 snapshots looks better than it is
EVAL_SEED, EVAL_BATTLES = 95_000_000, 320
MIXER = np.random.default_rng(20261204).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)


@dataclass
class Args:
    maps: list[str] = field(default_factory=lambda: list(MAPS))
    """maps to report"""
    cache_dir: str | None = None
    """the dataset cache (as inspo_smac.py's --cache-dir; default: the user's cache)"""
    chunk: int = 250
    """episodes read at a time"""
    out: str = os.path.join(ROOT, "benchmarks", "results", "smac_fidelity.md")
    """the report"""


def row_hash(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of a 2-D array, rounded to 4 decimals first (OG-MARL's rounding)."""
    values = np.round(rows.astype(np.float64) * 1e4).astype(np.int64).view(np.uint64)  # −0.0 and 0.0 alike
    with np.errstate(over="ignore"):
        mixed = values * MIXER[: values.shape[-1]]
        h = np.bitwise_xor.reduce(mixed ^ (mixed >> np.uint64(29)), axis=-1) * np.uint64(0x9E3779B97F4A7C15)
        return h ^ (h >> np.uint64(32))


def coverage(state: np.ndarray, obs: np.ndarray, actions: np.ndarray, length: np.ndarray) -> dict:
    """Per-episode hashes of a block of episodes in CFCQL's layout [N, T, ...] with lengths [N]:
    `pairs` the (state, joint action) hash of each transition t < L (a list of arrays), `episode` one hash per
    episode, `prefix` [N, T] the hash of the joint observations up to t (0 where t > L)."""
    n, t_max = state.shape[:2]
    pair = row_hash(np.concatenate([state, actions.reshape(n, t_max, -1)], -1).reshape(n * t_max, -1))
    joint_obs = row_hash(obs.reshape(n * t_max, -1)).reshape(n, t_max)
    pair = pair.reshape(n, t_max)
    prefix = np.zeros((n, t_max), np.uint64)
    running, episode = np.zeros(n, np.uint64), np.zeros(n, np.uint64)
    with np.errstate(over="ignore"):
        for t in range(t_max):
            alive = t <= length
            running = np.where(alive, (running * np.uint64(0x100000001B3)) ^ joint_obs[:, t], running)
            prefix[:, t] = np.where(alive, running, 0)
            episode = np.where(t < length, (episode * np.uint64(0x100000001B3)) ^ pair[:, t], episode)
    episode ^= np.uint64(0x9E3779B97F4A7C15) * running
    return {"pairs": [pair[i, : length[i]] for i in range(n)], "episode": episode, "prefix": prefix}


def saco(pairs: list[np.ndarray]) -> float:
    """Joint SACo: distinct (state, joint action) pairs ÷ transitions."""
    every = np.concatenate(pairs)
    return len(np.unique(every)) / max(len(every), 1)


def first_parting_step(prefix: np.ndarray, length: np.ndarray) -> int | None:
    """The first step t at which the episodes still running (t ≤ L) show two different joint-observation
    prefixes; None if they never part."""
    for t in range(prefix.shape[1]):
        alive = t <= length
        if alive.sum() > 1 and len(np.unique(prefix[alive, t])) > 1:
            return t
    return None


def dataset_report(map_name: str, name: str, cache_dir: str | None, chunk: int) -> dict:
    start = time.time()
    path, card = load_or_make(map_name, name, 0, cache_dir)
    wall = time.time() - start
    pairs, episodes, prefixes, lengths, returns = [], [], [], [], []
    for first in range(0, card["episodes"], chunk):
        rows = slice(first, min(first + chunk, card["episodes"]))
        block = _read(path, ("state", "obs", "actions", "reward", "filled"), rows)
        length = block["filled"][..., 0].sum(1).astype(np.int64) - 1
        hashes = coverage(block["state"], block["obs"], block["actions"][..., 0], length)
        pairs += hashes["pairs"]
        episodes.append(hashes["episode"])
        prefixes.append(hashes["prefix"])
        lengths.append(length)
        returns.append(block["reward"][..., 0].sum(1))
    episodes, lengths, returns = np.concatenate(episodes), np.concatenate(lengths), np.concatenate(returns)
    _, distinct = np.unique(episodes, return_index=True)
    raw, per_distinct = saco(pairs), saco([pairs[i] for i in distinct])
    cfcql_mean, cfcql_sd, cfcql_length = CFCQL_CARDS[(map_name, name)]
    cfcql_distinct = min(CFCQL_SACO[(map_name, name)] * CFCQL_COPIES[name], 1.0)
    return {
        "map": map_name,
        "dataset": name,
        "episodes": len(episodes),
        "distinct_episodes": len(distinct),
        "saco": raw,
        "saco_distinct": per_distinct,
        "cfcql_saco": CFCQL_SACO[(map_name, name)],
        "cfcql_saco_distinct": cfcql_distinct,
        "first_obs_parting": first_parting_step(np.concatenate(prefixes), lengths),
        "shared": (1 - per_distinct) * lengths[distinct].mean(),
        "cfcql_shared": (1 - cfcql_distinct) * cfcql_length,
        "return_mean": returns.mean(),
        "return_sd": returns.std(),
        "length": lengths.mean(),
        "at_limit": (lengths >= MAPS[map_name].episode_limit).mean(),
        "cfcql": (cfcql_mean, cfcql_sd, cfcql_length),
        "generation_s": card.get("generation_time_s", float("nan")),
        "wall_s": wall,
    }


def expert_win_rate(map_name: str) -> tuple[float, float, float]:
    """The shipped expert, greedy, on EVAL_BATTLES battle seeds no dataset uses: win rate, return, length."""
    manifest = policy_manifest(map_name)
    expert = manifest["expert"]
    if "scripted" in expert:
        won, returns, length = play_scripted(map_name, expert["scripted"], EVAL_BATTLES, EVAL_SEED)
        return won.mean(), returns.mean(), length.mean()
    battles = SMACBatch(map_name, EVAL_BATTLES, seed=EVAL_SEED, auto_reset=False)
    agent = load_agent(os.path.join(POLICY_DIR, map_name, expert["file"]), map_name)
    episodes = rollout(battles, agent, 0.0, np.random.default_rng(0))
    return episodes["won"].mean(), episodes["reward"].sum(1).mean(), episodes["length"].mean()


def mark(miss: float) -> str:
    return "✓" if miss <= 1 else "✗"


def write_report(rows: list[dict], experts: dict, scripted: dict, out: str) -> None:
    lines = [
        "# SMAC datasets beside CFCQL's StarCraft II files: variety and statistics",
        "",
        "Generated by `python benchmarks/smac_fidelity.py` (2 CPU cores). Each map plays with its default rules "
        "(`MapSpec.variety`, docs/smac_simulator.md). CFCQL's values: OG-MARL's cards of CFCQL's files; its "
        "per-distinct SACo is the card's × 8 (medium, expert), × 4.016 (mixed), × 1 (medium_replay), because "
        "CFCQL stored every greedy episode 8 times. Targets: per-distinct SACo ≥ 0.90 (medium, expert, mixed), "
        "observations part by step 3, return mean within 10 % and sd within a factor 2 of CFCQL's, length within "
        "15 %, generation ≤ 120 s. *At the limit*: our battles that run to the map's step limit (CFCQL's cards do "
        "not say).",
        "",
        "| map | dataset | variety | distinct episodes | Joint SACo: ours / CFCQL | per distinct episode: ours / CFCQL "
        "| obs part at step | shared transitions per episode: ours / CFCQL | return: ours / CFCQL | sd: ours / "
        "CFCQL | length: ours / CFCQL | at the limit | generation s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mean, sd, length = r["cfcql"]
        miss = card_misses(r["cfcql"], r["return_mean"], r["length"], r["return_sd"])
        saco_ok = "" if r["dataset"] == "medium_replay" else (" ✓" if r["saco_distinct"] >= 0.90 else " ✗")
        part = r["first_obs_parting"]
        lines.append(
            f"| {r['map']} | {r['dataset']} | {'yes' if MAPS[r['map']].variety else 'no'} | "
            f"{r['distinct_episodes']} / {r['episodes']} | {r['saco']:.3f} / {r['cfcql_saco']:.3f} | "
            f"{r['saco_distinct']:.3f} / {r['cfcql_saco_distinct']:.3f}{saco_ok} | "
            f"{'never' if part is None else part}{' ✓' if part is not None and part <= 3 else ' ✗'} | "
            f"{r['shared']:.1f} / {r['cfcql_shared']:.1f} | {r['return_mean']:.2f} / {mean:.2f} "
            f"{mark(miss['return'])} | {r['return_sd']:.2f} / {sd:.2f} {mark(miss['sd'])} | "
            f"{r['length']:.1f} / {length:.1f} {mark(miss['length'])} | {r['at_limit']:.0%} | {r['generation_s']:.0f}"
            f"{' ✓' if r['generation_s'] <= 120 else ' ✗'} |"
        )
    lines += [
        "",
        f"## The shipped experts, greedy, on {EVAL_BATTLES} unseen battle seeds",
        "",
        "| map | variety | win rate | return | length | target |",
        "|---|---|---|---|---|---|",
    ]
    targets = {"2s3z": 0.95, "3s_vs_5z": 0.95, "5m_vs_6m": 0.80, "6h_vs_8z": 0.70}
    for map_name, (won, ret, length) in experts.items():
        lines.append(
            f"| {map_name} | {'yes' if MAPS[map_name].variety else 'no'} | {won:.3f} | {ret:.2f} | {length:.1f} | "
            f"≥ {targets[map_name]:.2f} {'✓' if won >= targets[map_name] else '✗'} |"
        )
    lines += [
        "",
        "## Scripted checks (3s_vs_5z, 256 battles)",
        "",
        "| team | win rate | return | length | expected |",
        "|---|---|---|---|---|",
    ]
    for team, (won, ret, length, expected) in scripted.items():
        lines.append(f"| {team} | {won:.3f} | {ret:.2f} | {length:.1f} | {expected} |")
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(out + ".tmp", out)


def main(args: Args) -> None:
    rows, experts = [], {}
    for map_name in args.maps:
        if not os.path.isdir(os.path.join(POLICY_DIR, map_name)):
            continue
        experts[map_name] = expert_win_rate(map_name)
        print(map_name, "expert", experts[map_name], flush=True)
        for name in DATASETS:
            rows.append(dataset_report(map_name, name, args.cache_dir, args.chunk))
            print({k: v for k, v in rows[-1].items() if k not in ("cfcql",)}, flush=True)
    scripted = {}
    for team, expected in (("kite", "wins"), ("focus-fire", "loses")):
        won, returns, length = play_scripted("3s_vs_5z", team, 256, seed=EVAL_SEED)
        scripted[team] = (won.mean(), returns.mean(), length.mean(), expected)
    write_report(rows, experts, scripted, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(tyro.cli(Args))
