"""How a shipped SMAC behaviour policy's battles unfold, step by step, and whether it could win them.

Written for 5m_vs_6m, whose episodes run to the time limit far more often than SC2's (until
2026-12-01 its expert never won; docs/smac_datasets.md): does it flee, can the enemies not be
reached, or does it lose the first clash? The policy plays greedily (as the datasets' medium and expert do) and the
script reports, every few steps, the means over the battles still running: units alive and their
health on each side, the distance between the two closest opposing units, the enemies without a
target (idle: their attack-move ended at the allies' spawn) and the agents choosing an attack.
Then the same battles are replayed with one change: from step S on, an agent with no enemy in
range walks toward the nearest enemy (envs.smac.scripted_actions' move) instead of the policy's
action; the win rate says whether re-engaging the survivors wins.

    python benchmarks/smac_clash.py [--map 5m_vs_6m] [--policy expert] [--battles 320] [--out FILE]
    python benchmarks/smac_clash.py --map 3s_vs_5z --weights tools/qmix_runs/3s_vs_5z_seed4/snapshots/agent_N.pt

`--weights` traces any QMIX snapshot of the map (a run's, not a shipped policy) the same way.

One CPU thread; 5-15 s for 320 battles of 5m_vs_6m.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from envs import InputError  # noqa: E402  (after the sys.path line)
from envs.smac import MAPS, N_NO_ATTACK, SMACBatch, scripted_actions  # noqa: E402
from envs.smac_data import POLICY_DIR, epsilon_greedy, load_agent  # noqa: E402

SEED = 4_200_000  # battles never used by a dataset (those start at 13,000,000) or an InSPO evaluation
TRACE_EVERY = 5
REENGAGE_FROM = (1, 15, 20, 25)


def play(map_name: str, agent, n_battles: int, reengage_from: int | None = None, trace: list | None = None) -> dict:
    """The first episode of each battle, the policy greedy; from step `reengage_from` on, agents with no
    enemy in range walk toward the nearest enemy. Appends rows to `trace` every TRACE_EVERY steps."""
    battles = SMACBatch(map_name, n_battles, seed=SEED, auto_reset=False)
    obs, _, avail = battles.reset()
    nA, B = battles.n_agents, n_battles
    last, hidden = torch.full((B, 1, nA), -1, dtype=torch.long), None
    rng = np.random.default_rng(0)  # scripted_actions takes one; its moves draw nothing
    done, won, returns, length = np.zeros(B, bool), np.zeros(B, bool), np.zeros(B), np.zeros(B)
    for t in range(battles.episode_limit):
        with torch.no_grad():
            q, hidden = agent(agent.inputs(torch.as_tensor(obs)[:, None], last), hidden)
        actions = epsilon_greedy(q[:, 0].numpy(), avail, 0.0, rng)
        if reengage_from is not None and t >= reengage_from:
            none_in_range = (avail[:, :, N_NO_ATTACK:] == 0).all(-1)
            actions = np.where(none_in_range, scripted_actions(battles, "attack-nearest", rng), actions)
        if trace is not None and (t % TRACE_EVERY == 0 or t == battles.episode_limit - 1):
            trace.append(snapshot(battles, actions, ~done, t))
        obs, _, avail, reward, terminated, info = battles.step(actions)
        returns += reward * ~done
        newly = terminated & ~done
        won |= info["battle_won"] & newly
        length[newly] = t + 1
        done |= terminated
        last = torch.as_tensor(actions)[:, None]
        if done.all():
            break
    return {"win_rate": won.mean(), "return": returns.mean(), "length": length.mean()}


def snapshot(b: SMACBatch, actions: np.ndarray, running: np.ndarray, t: int) -> dict:
    """Means over the running battles of one step's state."""
    nA = b.n_agents
    allies, enemies = b.alive[running, :nA], b.alive[running, nA:]
    gap = np.hypot(b.x[running, :nA, None] - b.x[running, None, nA:], b.y[running, :nA, None] - b.y[running, None, nA:])
    gap = np.where(allies[:, :, None] & enemies[:, None, :], gap, np.inf).min((1, 2))
    return {"t": t, "running": int(running.sum()), "allies": allies.sum(1).mean(), "enemies": enemies.sum(1).mean(),
            "ally_health": np.where(allies, b.hp[running, :nA] + b.shield[running, :nA], 0).sum(1).mean(),
            "enemy_health": np.where(enemies, b.hp[running, nA:] + b.shield[running, nA:], 0).sum(1).mean(),
            "gap": np.median(gap[np.isfinite(gap)]) if np.isfinite(gap).any() else float("nan"),
            "idle_enemies": ((b.target[running, nA:] < 0) & enemies).sum(1).mean(),
            "attacking": ((actions[running] >= N_NO_ATTACK) & allies).sum(1).mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--map", default="5m_vs_6m", choices=MAPS)
    parser.add_argument("--policy", default="expert", choices=("medium", "expert"), help="a shipped QMIX policy of the map")
    parser.add_argument("--weights", default=None, help="a QMIX snapshot of the map to trace instead of a shipped policy")
    parser.add_argument("--battles", type=int, default=320)
    parser.add_argument("--out", default=None, help="markdown file (default: benchmarks/results/smac_clash_MAP.md, or smac_clash_MAP_SNAPSHOT.md with --weights)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    if args.weights:  # a run's snapshot: the report is named after it
        weights, traced, how = args.weights, f"the QMIX snapshot {args.weights}", f"--weights {args.weights}"
        name = f"smac_clash_{args.map}_{os.path.splitext(os.path.basename(weights))[0]}.md"
    else:
        weights, traced, how = os.path.join(POLICY_DIR, args.map, f"{args.policy}.pt"), f"the shipped {args.policy} policy", f"--policy {args.policy}"
        name = f"smac_clash_{args.map}.md"
    try:  # a missing file, or a checkpoint of another map or network size: one error line
        agent = load_agent(weights, args.map)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    trace: list[dict] = []
    plain = play(args.map, agent, args.battles, trace=trace)
    variants = [(f"walk to the nearest enemy when none is in range, from step {s}", play(args.map, agent, args.battles, s))
                for s in REENGAGE_FROM]
    out = args.out or os.path.join(ROOT, "benchmarks", "results", name)
    lines = [f"# {args.map}: how {traced}'s battles unfold", "",
             f"Made by `python benchmarks/smac_clash.py --map {args.map} {how} --battles {args.battles}` "
             f"({time.time() - start:.0f} s, one thread): {args.battles} battles (simulator seeds {SEED}-), the policy greedy "
             f"({os.path.relpath(weights, ROOT)}).", "",
             "## Step by step (means over the battles still running; health = hit points + shields)", "",
             "| step | battles running | allies alive | enemies alive | ally health | enemy health | closest gap (median) | idle enemies | agents attacking |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['t']} | {r['running']} | {r['allies']:.2f} | {r['enemies']:.2f} | {r['ally_health']:.1f} | {r['enemy_health']:.1f} | "
              f"{r['gap']:.2f} | {r['idle_enemies']:.2f} | {r['attacking']:.2f} |" for r in trace]
    lines += ["", "## Re-engaging", "", "| play | win rate | return | mean length |", "|---|---|---|---|",
              f"| the policy | {plain['win_rate']:.3f} | {plain['return']:.2f} | {plain['length']:.1f} |"]
    lines += [f"| {name} | {r['win_rate']:.3f} | {r['return']:.2f} | {r['length']:.1f} |" for name, r in variants]
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(out + ".tmp", out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
