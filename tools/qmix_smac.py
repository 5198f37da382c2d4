# docs: README.md ("SMAC datasets") and docs/smac_datasets.md
"""QMIX (Rashid et al. 2018) on the built-in SMAC simulator: the behaviour policies of our SMAC datasets.

CFCQL made its datasets with PyMARL's QMIX on StarCraft II (docs/smac_datasets.md). This
file trains the same learner on `envs.smac.SMACBatch`, so that envs/smac_data.py can rebuild
the medium, expert and medium-replay datasets from the checkpoints it leaves:
  * agents: PyMARL's RNN agent (obs ‖ last action ‖ agent id → 64 → GRU 64 → Q), one set of
    weights shared by all agents (envs.smac_data.QMIXAgent);
  * the QMIX mixer: monotonic mixing of the agents' chosen Q values by hypernetworks of the state;
  * targets: TD(λ) returns of the target mixer, double Q (the online agent picks the next
    action, the target agent values it); a win or a defeat does not bootstrap, a timeout does
    (PyMARL) unless --no-bootstrap-timeouts;
  * ε-greedy over the available actions with a linear anneal; a hard target update every
    --target-update-episodes episodes; Adam, gradient norm clipped;
  * rollouts: --n-envs battles stepped together, one episode each (PyMARL's parallel runner),
    then --updates-per-rollout gradient updates on batches of whole episodes from the buffer.

Every --snapshot-interval env steps the agent's weights are saved with their greedy test win rate
(`snapshots/agent_<t_env>.pt` + `.json`: what the datasets are built from), and every
--checkpoint-interval env steps the whole training state (networks, optimiser, replay buffer,
random streams) is written atomically: `--resume` continues a killed run exactly. Without its
replay buffer (e.g. a run carried to another machine) a resume continues from the networks with
an empty buffer, and says so.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from envs import InputError, run_cli  # noqa: E402
from envs.smac import MAPS, SMACBatch  # noqa: E402
from envs.smac_data import QMIXAgent, load_agent, rollout, save_agent  # noqa: E402


@dataclass
class Args:
    map: str = "2s3z"
    """SMAC map: 2s3z, 3s_vs_5z, 5m_vs_6m or 6h_vs_8z"""
    seed: int = 0
    """seed of the networks, the exploration, the replay sampling and the battles (>= 0)"""
    cuda: bool = False
    """run the networks on the GPU when one is available (the simulator always runs on the CPU)"""
    threads: int = 0
    """torch CPU threads (0: torch's default)"""
    runs_dir: str = "runs/qmix"
    """the run writes runs_dir/<map>_seed<seed>/ (TensorBoard, snapshots, checkpoints)"""
    resume: bool = False
    """continue the run in runs_dir/<map>_seed<seed>/ from its latest checkpoint"""
    progress: bool = True
    """show a tqdm progress bar"""
    total_env_steps: int = 2_000_000
    """train until this many environment steps (PyMARL's t_env: the sum of episode lengths)"""
    n_envs: int = 64
    """battles stepped together; each rollout plays one episode in each"""
    updates_per_rollout: int = 8
    """gradient updates after each rollout (8 with 64 battles: PyMARL's one update per 8 episodes)"""
    buffer_episodes: int = 5000
    """replay buffer size in episodes (PyMARL's default)"""
    batch_episodes: int = 128
    """episodes per gradient update (CFCQL's qmix.yaml; 32 learned 2s3z far less stably here)"""
    learning_rate: float = 1e-3
    """Adam learning rate (CFCQL's qmix.yaml)"""
    gamma: float = 0.99
    """discount"""
    td_lambda: float = 0.6
    """λ of the TD(λ) targets (CFCQL's qmix.yaml: 0.6; 0.3 is PyMARL2's choice for 6h_vs_8z)"""
    epsilon_start: float = 1.0
    """ε at the start of training"""
    epsilon_finish: float = 0.05
    """ε after the anneal"""
    epsilon_anneal_steps: int = 100_000
    """env steps of the linear ε anneal (PyMARL2: 100k; 500k for 6h_vs_8z)"""
    target_update_episodes: int = 200
    """copy the online networks into the targets every this many episodes"""
    grad_clip: float = 10.0
    """maximum gradient norm"""
    bootstrap_timeouts: bool = True
    """bootstrap the TD targets through a timeout (PyMARL). With --no-bootstrap-timeouts a timeout ends the
    episode's value: where the enemy stops at the allies' spawn, a team that walks out of its reach keeps the
    value of fighting on forever, and 5m_vs_6m and 6h_vs_8z runs on the variety rules learn to flee (see
    docs/smac_datasets.md)"""
    rnn_hidden: int = 64
    """width of the agent's layers and GRU"""
    mixing_embed: int = 32
    """width of the mixing network"""
    hypernet_embed: int = 64
    """hidden width of the hypernetworks"""
    snapshot_interval: int = 20_000
    """save the agent's weights with a greedy test every this many env steps"""
    test_episodes: int = 32
    """greedy test episodes per snapshot (all played as one batch of battles)"""
    checkpoint_interval: int = 200_000
    """write the whole training state (with the replay buffer) every this many env steps"""
    variety: bool | None = None
    """play with the simulator's battle-to-battle variety rules (envs.smac.SMACBatch); default: the map's"""
    init_agent: str | None = None
    """start the agent from these weights (a snapshot or shipped policy of the map, e.g. one trained without the
    variety rules); the mixer starts fresh"""
    freeze_agent_steps: int = 0
    """update only the mixer for the first this many env steps (with --init-agent: the fresh mixer learns to mix
    the given agent's values before its gradients may change them)"""


def check_args(args: Args) -> None:
    if args.map not in MAPS:
        raise InputError(f"unknown SMAC map {args.map!r}; accepted: {', '.join(MAPS)}")
    for name in (
        "total_env_steps",
        "n_envs",
        "buffer_episodes",
        "batch_episodes",
        "epsilon_anneal_steps",
        "target_update_episodes",
        "rnn_hidden",
        "mixing_embed",
        "hypernet_embed",
        "snapshot_interval",
        "test_episodes",
        "checkpoint_interval",
    ):
        if getattr(args, name) < 1:
            raise InputError(
                f"--{name.replace('_', '-')} {getattr(args, name)} is not accepted; accepted: an integer >= 1"
            )
    if args.seed < 0 or args.updates_per_rollout < 0 or args.threads < 0 or args.freeze_agent_steps < 0:
        raise InputError("--seed, --updates-per-rollout, --threads and --freeze-agent-steps must be >= 0")
    if args.batch_episodes > args.buffer_episodes:
        raise InputError(f"--batch-episodes {args.batch_episodes} exceeds --buffer-episodes {args.buffer_episodes}")
    for name, low, high in (
        ("learning_rate", 0, None),
        ("grad_clip", 0, None),
        ("gamma", 0, 1),
        ("td_lambda", 0, 1),
        ("epsilon_start", 0, 1),
        ("epsilon_finish", 0, 1),
    ):
        value = getattr(args, name)
        if (
            not np.isfinite(value)
            or value < low
            or (high is not None and value > high)
            or (high is None and value == 0)
        ):
            accepted = f"a number in [{low}, {high}]" if high is not None else "a finite number > 0"
            raise InputError(f"--{name.replace('_', '-')} {value} is not accepted; accepted: {accepted}")


# ---------------------------------------------------------------------------------------
class QMixer(nn.Module):
    """Q_tot(s, q^1..q^N): a monotonic two-layer mix whose non-negative weights come from the state."""

    def __init__(self, n_agents: int, state_dim: int, embed: int, hypernet: int):
        super().__init__()
        self.n_agents, self.embed = n_agents, embed
        self.hyper_w1 = nn.Sequential(nn.Linear(state_dim, hypernet), nn.ReLU(), nn.Linear(hypernet, embed * n_agents))
        self.hyper_b1 = nn.Linear(state_dim, embed)
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hypernet), nn.ReLU(), nn.Linear(hypernet, embed))
        self.value = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def forward(self, agent_qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """agent_qs [..., N], state [..., S] -> Q_tot [...]."""
        w1 = self.hyper_w1(state).abs().unflatten(-1, (self.n_agents, self.embed))  # |W| keeps ∂Q_tot/∂q^i >= 0
        hidden = F.elu(torch.einsum("...n,...ne->...e", agent_qs, w1) + self.hyper_b1(state))
        return (hidden * self.hyper_w2(state).abs()).sum(-1) + self.value(state).squeeze(-1)


class ReplayBuffer:
    """The last `capacity` episodes, padded to T = episode_limit + 1 time steps, as numpy arrays."""

    KEYS = ("state", "obs", "actions", "avail_actions", "reward", "terminal", "filled")

    def __init__(self, capacity: int, battles: SMACBatch, bootstrap_timeouts: bool = True):
        T, nA = battles.episode_limit + 1, battles.n_agents
        self.capacity, self.size, self.next = capacity, 0, 0
        self.bootstrap_timeouts = bootstrap_timeouts
        self.data = {
            "state": np.zeros((capacity, T, battles.state_dim), np.float32),
            "obs": np.zeros((capacity, T, nA, battles.obs_dim), np.float32),
            "actions": np.zeros((capacity, T, nA), np.int64),
            "avail_actions": np.zeros((capacity, T, nA, battles.n_actions), np.int32),
            "reward": np.zeros((capacity, T), np.float32),
            "terminal": np.zeros((capacity, T), np.float32),  # no bootstrap: a win, a defeat (a timeout, if told)
            "filled": np.zeros((capacity, T), np.float32),
        }

    def add(self, episodes: dict) -> None:
        n = len(episodes["length"])
        slots = (self.next + np.arange(n)) % self.capacity
        terminal = episodes["terminated"].astype(np.float32)
        if self.bootstrap_timeouts:  # PyMARL: a timeout is a truncation
            terminal *= ~episodes["timeout"][:, None]
        for key in self.KEYS:
            self.data[key][slots] = terminal if key == "terminal" else episodes[key]
        self.next = int((self.next + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int, rng: np.random.Generator, device) -> dict:
        idx = np.sort(rng.choice(self.size, n, replace=False))
        T = int(self.data["filled"][idx].sum(1).max())  # trim to the longest episode of the batch
        return {k: torch.as_tensor(v[idx, :T], device=device) for k, v in self.data.items()}


# ---------------------------------------------------------------------------------------
def epsilon_at(t_env: int, args: Args) -> float:
    """The linear ε anneal."""
    frac = min(t_env / args.epsilon_anneal_steps, 1.0)
    return args.epsilon_start + frac * (args.epsilon_finish - args.epsilon_start)


def lambda_returns(reward, terminal, mask, target_tot, gamma: float, lam: float) -> torch.Tensor:
    """TD(λ) targets G_t = r_t + γ(1 − terminal_t)[(1 − λ) Q̄_tot(t+1) + λ G_{t+1}] for the filled
    transitions t < L; beyond the episode G_t = Q̄_tot(t), so the last transition bootstraps on Q̄_tot(L)."""
    G = target_tot.clone()
    for t in range(reward.shape[1] - 2, -1, -1):
        bootstrap = (1 - lam) * target_tot[:, t + 1] + lam * G[:, t + 1]
        G[:, t] = torch.where(mask[:, t] > 0, reward[:, t] + gamma * (1 - terminal[:, t]) * bootstrap, target_tot[:, t])
    return G[:, :-1]


def qmix_loss(batch, agent, target_agent, mixer, target_mixer, args: Args) -> tuple[torch.Tensor, dict]:
    """Masked mean squared TD(λ) error of Q_tot over a batch of whole episodes."""
    actions, avail = batch["actions"], batch["avail_actions"]
    last = torch.cat([torch.full_like(actions[:, :1], -1), actions[:, :-1]], 1)  # the previous action, −1 at t = 0
    inputs = agent.inputs(batch["obs"], last)
    q, _ = agent(inputs)  # [E, T, N, A], the hidden state unrolled over the whole episode
    with torch.no_grad():
        target_q, _ = target_agent(inputs)
        best = q.masked_fill(avail == 0, -1e9).argmax(-1, keepdim=True)  # double Q: the online agent picks
        target_tot = target_mixer(target_q.gather(-1, best).squeeze(-1), batch["state"])
    # transitions t < L: filled at t and t+1
    mask = batch["filled"][:, 1:]
    chosen = q[:, :-1].gather(-1, actions[:, :-1, :, None]).squeeze(-1)
    q_tot = mixer(chosen, batch["state"][:, :-1])
    targets = lambda_returns(
        batch["reward"], batch["terminal"], batch["filled"][:, 1:], target_tot, args.gamma, args.td_lambda
    )
    td = (q_tot - targets) * mask
    loss = (td**2).sum() / mask.sum()
    with torch.no_grad():
        stats = {
            "q_tot": float((q_tot * mask).sum() / mask.sum()),
            "target": float((targets * mask).sum() / mask.sum()),
        }
    return loss, stats


@torch.no_grad()
def greedy_test(agent, battles: SMACBatch, device) -> dict:
    """Greedy (ε = 0) win rate, return and episode length over one episode of every test battle."""
    episodes = rollout(battles, agent, 0.0, np.random.default_rng(0), device)
    returns = episodes["reward"].sum(1)
    return {
        "win_rate": float(episodes["won"].mean()),
        "return": float(returns.mean()),
        "episode_length": float(episodes["length"].mean()),
    }


# ---------------------------------------------------------------------------------------
# Checkpoints: latest.json names the newest complete one; files are written whole, then renamed
# ---------------------------------------------------------------------------------------
RESUMABLE = {
    "resume",
    "progress",
    "total_env_steps",
    "cuda",
    "threads",
    "runs_dir",
    "checkpoint_interval",
    "snapshot_interval",
}


def save_training_state(run_dir: str, t_env: int, state: dict, buffer: ReplayBuffer) -> None:
    tag = f"{t_env:010d}"
    torch.save(state, os.path.join(run_dir, f"state_{tag}.pt.tmp"))
    os.replace(os.path.join(run_dir, f"state_{tag}.pt.tmp"), os.path.join(run_dir, f"state_{tag}.pt"))
    with open(os.path.join(run_dir, f"buffer_{tag}.npz.tmp"), "wb") as f:
        np.savez(f, size=buffer.size, next=buffer.next, **{k: v[: buffer.size] for k, v in buffer.data.items()})
    os.replace(os.path.join(run_dir, f"buffer_{tag}.npz.tmp"), os.path.join(run_dir, f"buffer_{tag}.npz"))
    with open(os.path.join(run_dir, "latest.json.tmp"), "w") as f:
        json.dump({"t_env": t_env, "state": f"state_{tag}.pt", "buffer": f"buffer_{tag}.npz"}, f)
    os.replace(os.path.join(run_dir, "latest.json.tmp"), os.path.join(run_dir, "latest.json"))
    for old in glob.glob(os.path.join(run_dir, "state_*.pt")) + glob.glob(os.path.join(run_dir, "buffer_*.npz")):
        if tag not in os.path.basename(old):
            os.remove(old)


def load_training_state(run_dir: str, args: Args, buffer: ReplayBuffer) -> dict:
    try:
        with open(os.path.join(run_dir, "latest.json")) as f:
            latest = json.load(f)
        state = torch.load(os.path.join(run_dir, latest["state"]), map_location="cpu", weights_only=False)
    except Exception as error:
        raise InputError(f"--resume: no readable checkpoint in {run_dir!r} ({type(error).__name__}: {error})") from None
    trained = {**{f.name: f.default for f in fields(Args)}, **state["args"]}  # flags added since: their defaults
    for key, value in asdict(args).items():
        if key not in RESUMABLE and trained[key] != value:
            raise InputError(
                f"--resume {run_dir!r} was trained with --{key.replace('_', '-')} {trained[key]!r}, "
                f"this run has {value!r}; accepted: the checkpoint's configuration"
            )
    path = os.path.join(run_dir, latest["buffer"])
    if os.path.isfile(path):
        with np.load(path) as saved:
            size = int(saved["size"])
            for key in buffer.KEYS:
                buffer.data[key][:size] = saved[key]
            buffer.size, buffer.next = size, int(saved["next"])
    else:
        print(f"warning: {path} is missing: continuing from the networks with an empty replay buffer (not bit-exact)")
    return state


def main(args: Args) -> dict:
    check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    run_dir = os.path.join(args.runs_dir, f"{args.map}_seed{args.seed}")
    snapshot_dir = os.path.join(run_dir, "snapshots")
    if not args.resume and os.path.exists(os.path.join(run_dir, "latest.json")):
        raise InputError(f"{run_dir!r} already holds a run; pass --resume to continue it or choose another --runs-dir")
    try:
        os.makedirs(snapshot_dir, exist_ok=True)
    except OSError as error:
        raise InputError(f"--runs-dir {args.runs_dir!r} cannot be written ({error.strerror})") from None
    rng = np.random.default_rng(args.seed)  # every draw; the global RNGs are never reseeded
    # training battles draw from seeds seed*1e6 + k; the test battles from a disjoint range
    battles = SMACBatch(args.map, args.n_envs, seed=args.seed * 1_000_000, variety=args.variety)
    test_battles = SMACBatch(args.map, args.test_episodes, seed=args.seed * 1_000_000 + 500_000, variety=args.variety)
    nA, n_actions, state_dim = battles.n_agents, battles.n_actions, battles.state_dim

    with torch.random.fork_rng(devices=[]):  # initial weights from --seed, the caller's RNG left as it was
        torch.manual_seed(args.seed)
        agent = QMIXAgent(battles.obs_dim, nA, n_actions, args.rnn_hidden).to(device)
        mixer = QMixer(nA, state_dim, args.mixing_embed, args.hypernet_embed).to(device)
        target_agent = QMIXAgent(battles.obs_dim, nA, n_actions, args.rnn_hidden).to(device)
        target_mixer = QMixer(nA, state_dim, args.mixing_embed, args.hypernet_embed).to(device)
    if args.init_agent is not None and not args.resume:
        try:
            agent.load_state_dict(load_agent(args.init_agent, args.map, device).state_dict())
        except RuntimeError:
            width = f"--rnn-hidden {args.rnn_hidden}"
            raise InputError(f"--init-agent {args.init_agent!r} is not an agent of width {width}") from None
    target_agent.load_state_dict(agent.state_dict())
    target_mixer.load_state_dict(mixer.state_dict())
    params = list(agent.parameters()) + list(mixer.parameters())
    optimiser = torch.optim.Adam(params, lr=args.learning_rate)
    buffer = ReplayBuffer(args.buffer_episodes, battles, args.bootstrap_timeouts)
    t_env = episodes = updates = last_target_update = 0
    next_snapshot, next_checkpoint, history = 0, args.checkpoint_interval, []
    since_snapshot = {"episodes": 0, "epsilon_sum": 0.0}

    if args.resume:
        saved = load_training_state(run_dir, args, buffer)
        for module, key in (
            (agent, "agent"),
            (mixer, "mixer"),
            (target_agent, "target_agent"),
            (target_mixer, "target_mixer"),
            (optimiser, "optimiser"),
        ):
            module.load_state_dict(saved[key])
        t_env, episodes, updates, last_target_update = (
            saved["t_env"],
            saved["episodes"],
            saved["updates"],
            saved["last_target_update"],
        )
        next_snapshot, next_checkpoint, history, since_snapshot = (
            saved["next_snapshot"],
            saved["next_checkpoint"],
            saved["history"],
            saved["since_snapshot"],
        )
        rng.bit_generator.state = saved["np_rng"]
        battles.episode[:], test_battles.episode[:] = saved["battle_episodes"], saved["test_battle_episodes"]
        for path in glob.glob(os.path.join(snapshot_dir, "agent_*")):  # snapshots after the checkpoint are replayed
            if int(os.path.basename(path)[6:16]) > t_env:
                os.remove(path)
        print(f"resumed {run_dir} at {t_env} env steps ({episodes} episodes, {updates} updates)")

    writer = SummaryWriter(run_dir)
    # wall time and its split carry over a resume, so rates read off the snapshots stay true
    elapsed, timings = (
        (saved["wall_time_s"], saved["timings_s"])
        if args.resume
        else (0.0, {"rollout": 0.0, "update": 0.0, "test": 0.0})
    )
    start = time.time() - elapsed
    bar = tqdm(
        total=args.total_env_steps,
        initial=min(t_env, args.total_env_steps),
        disable=not args.progress,
        desc=f"qmix {args.map}",
        unit="step",
    )
    while True:
        if t_env >= next_snapshot:  # greedy test and a snapshot of the weights the next episodes are played with
            tick = time.time()
            test = greedy_test(agent, test_battles, device)
            timings["test"] += time.time() - tick
            row = {
                "t_env": t_env,
                "episodes": episodes,
                "updates": updates,
                "epsilon": epsilon_at(t_env, args),
                "test_win_rate": test["win_rate"],
                "test_return": test["return"],
                "test_episode_length": test["episode_length"],
                "episodes_since_previous": since_snapshot["episodes"],
                "mean_epsilon_since_previous": since_snapshot["epsilon_sum"] / max(since_snapshot["episodes"], 1),
                "wall_time_s": time.time() - start,
            }
            history.append(row)
            save_agent(agent, os.path.join(snapshot_dir, f"agent_{t_env:010d}.pt"))
            with open(os.path.join(snapshot_dir, f"agent_{t_env:010d}.json"), "w") as f:
                json.dump({**row, "map": args.map, "args": asdict(args)}, f, indent=1)
            for key in ("win_rate", "return", "episode_length"):
                writer.add_scalar(f"test/{key}", test[key], t_env)
            bar.set_postfix(win=f"{test['win_rate']:.2f}", ret=f"{test['return']:.1f}", eps=f"{row['epsilon']:.2f}")
            since_snapshot = {"episodes": 0, "epsilon_sum": 0.0}
            next_snapshot += args.snapshot_interval
        if t_env >= args.total_env_steps:
            break

        # one ε-greedy episode in every training battle
        tick = time.time()
        epsilon = epsilon_at(t_env, args)
        batch = rollout(battles, agent, epsilon, rng, device)
        buffer.add(batch)
        steps = int(batch["length"].sum())
        t_env += steps
        episodes += args.n_envs
        since_snapshot["episodes"] += args.n_envs
        since_snapshot["epsilon_sum"] += epsilon * args.n_envs
        bar.update(steps)
        timings["rollout"] += time.time() - tick

        # gradient updates on whole episodes
        tick = time.time()
        n_updates = args.updates_per_rollout if buffer.size >= args.batch_episodes else 0
        # a frozen agent gets no gradient (no backward through its GRU); Adam skips parameters without one
        agent.requires_grad_(t_env >= args.freeze_agent_steps)
        for _ in range(n_updates):
            loss, stats = qmix_loss(
                buffer.sample(args.batch_episodes, rng, device), agent, target_agent, mixer, target_mixer, args
            )
            optimiser.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
            optimiser.step()
            updates += 1
        if episodes - last_target_update >= args.target_update_episodes:
            target_agent.load_state_dict(agent.state_dict())
            target_mixer.load_state_dict(mixer.state_dict())
            last_target_update = episodes
        timings["update"] += time.time() - tick
        if n_updates and updates % 50 < n_updates:
            writer.add_scalar("losses/td_loss", float(loss.detach()), t_env)
            writer.add_scalar("losses/grad_norm", float(grad_norm), t_env)
            writer.add_scalar("charts/q_tot", stats["q_tot"], t_env)
            writer.add_scalar("charts/epsilon", epsilon, t_env)
            writer.add_scalar("charts/train_return", float(batch["reward"].sum(1).mean()), t_env)
            writer.add_scalar("charts/train_episode_length", float(batch["length"].mean()), t_env)
            writer.add_scalar("charts/env_steps_per_s", t_env / max(time.time() - start, 1e-9), t_env)

        if t_env >= next_checkpoint:
            save_training_state(
                run_dir,
                t_env,
                {
                    "args": asdict(args),
                    "t_env": t_env,
                    "episodes": episodes,
                    "updates": updates,
                    "last_target_update": last_target_update,
                    "next_snapshot": next_snapshot,
                    "next_checkpoint": next_checkpoint + args.checkpoint_interval,
                    "history": history,
                    "since_snapshot": since_snapshot,
                    "agent": agent.state_dict(),
                    "mixer": mixer.state_dict(),
                    "target_agent": target_agent.state_dict(),
                    "target_mixer": target_mixer.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "np_rng": rng.bit_generator.state,
                    "battle_episodes": battles.episode.copy(),
                    "test_battle_episodes": test_battles.episode.copy(),
                    "wall_time_s": time.time() - start,
                    "timings_s": dict(timings),
                },
                buffer,
            )
            next_checkpoint += args.checkpoint_interval
    bar.close()
    writer.close()
    wall = time.time() - start
    summary = {
        "map": args.map,
        "t_env": t_env,
        "episodes": episodes,
        "updates": updates,
        "wall_time_s": wall,
        "timings_s": timings,
        "final_test": history[-1],
        "history": history,
        "args": asdict(args),
    }
    with open(os.path.join(run_dir, "summary.json.tmp"), "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(os.path.join(run_dir, "summary.json.tmp"), os.path.join(run_dir, "summary.json"))
    print(
        f"qmix {args.map}: {t_env} env steps, {updates} updates in {wall:.0f} s; greedy test win rate "
        f"{history[-1]['test_win_rate']:.2f}, return {history[-1]['test_return']:.2f}"
    )
    print(f"summary: {os.path.join(run_dir, 'summary.json')}")
    return summary


if __name__ == "__main__":
    run_cli(main, Args)
