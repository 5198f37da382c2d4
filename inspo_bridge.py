# docs: README.md ("inspo_bridge.py") and docs/algorithm.md (the choices the paper leaves open)
"""InSPO (In-Sample Sequential Policy Optimization, Liu et al., AAAI 2025) on Bridge (Table 3).

Bridge is AlberDICE's two-agent grid world (docs/bridge.md, envs/bridge.py): both
agents start face to face on a one-lane bridge and one must yield; the datasets are
`optimal` (500 episodes of a multi-modal handcrafted policy) and `mixed` (500 uniform-random
episodes, then the 500 optimal ones).

The whole pipeline is in this file, in the order of Algorithm 1:
  1. behaviour cloning of each agent's µ^i (Eq. 21) and of the teammates' joint µ^-i (Eq. 22),
  2-4. the importance ratio ρ (Eq. 23) and a minibatch resampled ∝ ρ,
  5. the local critic Q^i(s, a^i) with the soft, KL- and entropy-regularised target (Eq. 24),
  6. the sequential, in-sample policy extraction (Eq. 20), one agent after another,
  7. the decaying entropy temperature β, 8. the auto-tuned α (Eq. 25), 9. the update order.

Choices this script makes where the paper is silent (docs/algorithm.md has the reasons):
  * horizon 20 for training and evaluation, γ = 0.99, undiscounted evaluation returns; the
    datasets (collected with horizon 50) are cut to 20 steps, a cut step bootstraps;
  * α = 0.1 fixed and β_0 = 0: an entropy bonus β·H ≈ 8 per step swamps rewards of −0.03…−0.32,
    soft Q turns positive and the agents stop reaching their goals (ALGORITHM.md measured it);
  * Eq. 25 is implemented as the Lagrangian that RAISES α when KL > D̄_KL;
  * π^0 = µ: each policy network starts as a copy of its behaviour network;
  * Adam 1e-3 and 2500 iterations: the smallest budget measured to reach Table 3 on both
    datasets (docs/algorithm.md, "Bridge preset"; benchmarks/results/bridge.md);
  * evaluation is stochastic by default (AlberDICE's Bridge protocol), greedy is reported too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import trange

from envs import InputError, check_count, check_number, check_seed, check_writable_dir, import_wandb, new_run_dir
from envs.bridge import (
    DATASETS,
    N_ACTIONS,
    N_AGENTS,
    OPTIMUM,
    STATE_DIM,
    TRAIN_HORIZON,
    BridgeCore,
    format_card,
    load_or_make,
    transitions,
)


@dataclass
class Args:
    exp_name: str = "inspo_bridge"
    """the name of this experiment (part of the run name)"""
    seed: int = 0
    """seed of the networks, the minibatches and the evaluation (0 <= seed < 2^32)"""
    torch_deterministic: bool = True
    """sets `torch.backends.cudnn.deterministic`"""
    cuda: bool = False
    """run the networks on the GPU when one is available"""
    track: bool = False
    """log to Weights & Biases as well as TensorBoard (wandb is imported only then)"""
    wandb_project_name: str = "inspo"
    """the wandb project, with --track"""
    wandb_entity: str | None = None
    """the wandb entity (team), with --track"""
    runs_dir: str = "runs"
    """where TensorBoard logs, checkpoints and summary.json go (runs/<run_name>/)"""
    progress: bool = True
    """show a tqdm progress bar"""
    checkpoint_interval: int = 1000
    """write runs/<run_name>/checkpoint.pt (atomically) every this many iterations (an integer in 1..10^9)"""
    resume: str | None = None
    """a checkpoint.pt to resume from (same configuration; --num-updates may grow)"""
    evaluate: str | None = None
    """a run's checkpoint.pt: evaluate its π and µ (greedy and stochastic, --final-eval-episodes) as the run's final
    evaluation does, save evaluation.json beside it and exit: no training"""

    # Algorithm specific arguments
    dataset: Annotated[str, tyro.conf.arg(metavar="{" + ",".join(DATASETS) + "}")] = "mixed"
    """optimal (500 handcrafted episodes) or mixed (500 uniform-random, then 500 optimal)"""
    dataset_dir: str | None = None
    """AlberDICE's released buffer directory (bridge_from_start/buffer_optimal or buffer_mix) instead of generated
    data"""
    dataset_seed: int = 0
    """seed of the generated dataset (0 <= seed < 2^32)"""
    cache_dir: str = ".cache"
    """where generated datasets and their cards are cached"""
    sequential: bool = True
    """sequential updates (InSPO); --no-sequential is the simultaneous-update ablation"""
    update_order: Literal["random", "fixed", "semi-greedy"] = "random"
    """agent order each iteration: random permutation, fixed 0..N-1, or largest expected advantage first"""
    num_updates: int = 2500
    """training iterations; each makes one critic and one actor gradient update per agent (Adam steps, not env steps).
    2500 is the smallest budget measured to reach Table 3 on both datasets (benchmarks/results/bridge.md)
    (an integer in 1..10^9)"""
    bc_updates: int = 1000
    """gradient updates of behaviour cloning (µ^i and µ^-i) before training (an integer in 1..10^9)"""
    batch_size: int = 256
    """minibatch size of every update (an integer in 1..2^20)"""
    pool_factor: int = 4
    """the resampled minibatch is drawn ∝ ρ from a uniform candidate pool of pool_factor x batch_size (an integer in
    1..1024)"""
    hidden_dim: int = 256
    """width of the 3 hidden ReLU layers of every network (an integer in 1..8192)"""
    learning_rate: float = 1e-3
    """Adam learning rate of the policies, critics and behaviour models (1e-3 reached the targets in fewer updates than
    3e-4) (> 0)"""
    gamma: float = 0.99
    """discount (in [0, 1])"""
    tau: float = 0.005
    """soft-update rate of the target critics (in (0, 1])"""
    alpha: float = 0.1
    """KL temperature α (the initial value with --autotune-alpha) (>= 0)"""
    autotune_alpha: bool = False
    """learn α so that the mean KL(π^i || µ^i) tracks --target-kl (Eq. 25)"""
    target_kl: float = 0.18
    """the KL target D̄_KL of auto-tuned α (>= 0)"""
    alpha_lr: float = 3e-4
    """Adam learning rate of log α (> 0)"""
    beta_0: float = 0.0
    """initial entropy temperature β (0: see the docstring for why Bridge needs it) (>= 0)"""
    beta_decay: float = 0.995
    """β is multiplied by this after every iteration (in [0, 1])"""
    cql_alpha: float = 0.1
    """weight of the CQL term of the critic loss (Eq. 24) (>= 0)"""
    weight_clip: float = 100.0
    """maximum of the policy-extraction weight exp((A − β log µ)/(α+β)) (> 0)"""
    eval_episodes: int = 32
    """episodes per evaluation during training (the paper's protocol) (an integer in 1..10^6)"""
    final_eval_episodes: int = 320
    """episodes of the final evaluation (an integer in 1..10^6)"""
    eval_interval: int = 500
    """evaluate (and log) every this many iterations (an integer in 1..10^9)"""
    eval_greedy: bool = False
    """greedy evaluation (argmax); the default samples actions, as AlberDICE evaluates Bridge"""


def check_args(args: Args) -> None:
    """Reject impossible settings with one line that names the value and what is accepted (before any work)."""
    if args.dataset not in DATASETS:
        raise InputError(f"unknown Bridge dataset {args.dataset!r}; accepted: {', '.join(DATASETS)}")
    # every real flag with its domain: (name, low, high, low open, high open)
    for name, low, high, low_open, high_open in (
        ("learning_rate", 0, None, True, False),
        ("alpha_lr", 0, None, True, False),
        ("gamma", 0, 1, False, False),
        ("tau", 0, 1, True, False),
        ("alpha", 0, None, False, False),
        ("target_kl", 0, None, False, False),
        ("beta_0", 0, None, False, False),
        ("beta_decay", 0, 1, False, False),
        ("cql_alpha", 0, None, False, False),
        ("weight_clip", 0, None, True, False),
    ):
        check_number(name, getattr(args, name), low, high, low_open, high_open)
    if args.alpha + args.beta_0 <= 0:
        raise InputError(
            "--alpha 0 with --beta-0 0 is not accepted: the weights of Eq. 20 divide by α+β; accepted: α > 0 or β_0 > 0"
        )
    # every integer flag with its domain; the upper limits turn an impossible allocation into one line
    for name, high in (
        ("num_updates", 10**9),
        ("bc_updates", 10**9),
        ("batch_size", 2**20),
        ("pool_factor", 1024),
        ("hidden_dim", 8192),
        ("eval_episodes", 10**6),
        ("final_eval_episodes", 10**6),
        ("eval_interval", 10**9),
        ("checkpoint_interval", 10**9),
    ):
        check_count(name, getattr(args, name), 1, high)
    check_seed("seed", args.seed)
    check_seed("dataset_seed", args.dataset_seed)
    if args.resume is not None and args.evaluate is not None:
        raise InputError("--resume and --evaluate together are not accepted; accepted: one of them")
    if args.evaluate is not None:
        if not os.path.isfile(args.evaluate):
            raise InputError(
                f"--evaluate {args.evaluate!r}: no such checkpoint file; accepted: a checkpoint.pt this script wrote"
            )
        check_writable_dir("evaluate", os.path.dirname(os.path.abspath(args.evaluate)))
        return
    if args.resume is not None and not os.path.isfile(args.resume):
        raise InputError(
            f"--resume {args.resume!r}: no such checkpoint file; accepted: a checkpoint.pt this script wrote"
        )
    if args.track:
        import_wandb()
    check_writable_dir("runs_dir", args.runs_dir)
    if args.dataset_dir is None:
        check_writable_dir("cache_dir", args.cache_dir)


# ---------------------------------------------------------------------------------------
def mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, out_dim),
    )


def masked_log_softmax(logits: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    # a large finite negative (not -inf) keeps 0 * log 0 = 0 in entropies and KLs
    return torch.log_softmax(logits.masked_fill(avail == 0, -1e9), dim=-1)


class Policy(nn.Module):
    """π^i(a|o^i) and µ^i(a|o^i): log-probabilities over the available actions."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int):
        super().__init__()
        self.net = mlp(obs_dim, n_actions, hidden)

    def forward(self, obs: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        return masked_log_softmax(self.net(obs), avail)


class JointBehaviour(nn.Module):
    """µ^-i(a^-i|s) of Eq. 22: an autoregressive model over the teammates in index order.

    µ^-i(a^-i|s) = Π_{j≠i} µ_AR(a^j | s, a^{j'} for j' < j, j' ≠ i). Input: the state, the
    one-hot actions of the conditioning teammates (zeros for the others) and a one-hot of j.
    """

    def __init__(self, state_dim: int, n_agents: int, n_actions: int, hidden: int):
        super().__init__()
        self.n_agents, self.n_actions = n_agents, n_actions
        self.net = mlp(state_dim + n_agents * n_actions + n_agents, n_actions, hidden)
        j = torch.arange(n_agents)
        # given[i, j, j'] = 1 when agent j' is an input of µ_AR(a^j | ...) with agent i left out
        given = (j[None, None, :] < j[None, :, None]) & (j[None, None, :] != j[:, None, None])
        self.register_buffer("given", given.float())
        self.register_buffer("eye", torch.eye(n_agents))

    def log_prob(self, state, actions, avail, i: int) -> torch.Tensor:
        """log µ^-i(a^-i|s) for the joint action of everybody but agent i, shape [B]."""
        others = [j for j in range(self.n_agents) if j != i]
        onehot = F.one_hot(actions, self.n_actions).float()  # [B, N, A]
        cond = onehot[:, None] * self.given[i, others][None, :, :, None]  # [B, N-1, N, A]
        x = torch.cat(
            [
                state[:, None].expand(-1, len(others), -1),
                cond.flatten(2),
                self.eye[others][None].expand(len(state), -1, -1),
            ],
            dim=-1,
        )
        logp = masked_log_softmax(self.net(x), avail[:, others])
        return logp.gather(-1, actions[:, others, None]).squeeze(-1).sum(-1)


class Critic(nn.Module):
    """The local critic Q^i(s, ·): one output per action of agent i, on the global state."""

    def __init__(self, state_dim: int, n_actions: int, hidden: int):
        super().__init__()
        self.net = mlp(state_dim, n_actions, hidden)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state)


def adam(params, lr: float) -> torch.optim.Adam:
    # the fused kernel halves the optimiser's cost for these small networks on a CPU
    return torch.optim.Adam(params, lr=lr, fused=True)


# ---------------------------------------------------------------------------------------
# The algorithm's steps
# ---------------------------------------------------------------------------------------
def behaviour_cloning(data, behaviours, joint_behaviour, args, generator):
    """Eq. 21 and 22: maximum likelihood of the dataset actions, unavailable actions masked."""
    n_agents = data["actions"].shape[1]
    optimiser = adam([p for m in [*behaviours, joint_behaviour] for p in m.parameters()], args.learning_rate)
    for _ in range(args.bc_updates):
        idx = torch.randint(len(data["reward"]), (args.batch_size,), generator=generator, device=data["reward"].device)
        obs, actions, avail = data["obs"][idx], data["actions"][idx], data["avail"][idx]
        loss = 0.0
        for i in range(n_agents):
            logp = behaviours[i](obs[:, i], avail[:, i])
            loss = loss - logp.gather(1, actions[:, i, None]).mean()
            loss = loss - joint_behaviour.log_prob(data["state"][idx], actions, avail, i).mean() / (n_agents - 1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return float(loss.detach())


@torch.no_grad()
def behaviour_tables(data, behaviours, joint_behaviour):
    """µ is fixed after BC: tabulate log µ^i(·|o), log µ^i(·|o') and log µ^-i(a^-i|s) for every transition."""
    n_agents = data["actions"].shape[1]
    data["log_mu"] = torch.stack([behaviours[i](data["obs"][:, i], data["avail"][:, i]) for i in range(n_agents)], 1)
    data["next_log_mu"] = torch.stack(
        [behaviours[i](data["next_obs"][:, i], data["next_avail"][:, i]) for i in range(n_agents)], 1
    )
    data["log_mu_others"] = torch.stack(
        [joint_behaviour.log_prob(data["state"], data["actions"], data["avail"], i) for i in range(n_agents)], 1
    )


@torch.no_grad()
def importance_ratio(data, idx, policies, i: int) -> torch.Tensor:
    """Eq. 23: log ρ^i = (1/(N−1)) [Σ_{j≠i} log π^j(a^j|o^j) − log µ^-i(a^-i|s)] (geometric mean, log space)."""
    n_agents = len(policies)
    log_pi_others = sum(
        policies[j](data["obs"][idx, j], data["avail"][idx, j]).gather(1, data["actions"][idx, j, None]).squeeze(1)
        for j in range(n_agents)
        if j != i
    )
    return (log_pi_others - data["log_mu_others"][idx, i]) / (n_agents - 1)


def resample(data, policies, i: int, args, generator) -> torch.Tensor:
    """Importance resampling (Schlegel et al. 2019): a uniform candidate pool, then a batch drawn ∝ ρ."""
    pool = torch.randint(
        len(data["reward"]), (args.pool_factor * args.batch_size,), generator=generator, device=data["reward"].device
    )
    log_rho = importance_ratio(data, pool, policies, i)
    pick = torch.multinomial(torch.softmax(log_rho, 0), args.batch_size, replacement=True, generator=generator)
    return pool[pick]


def critic_loss(data, idx, i: int, critic, target_critic, policy, alpha: float, beta: float, args) -> torch.Tensor:
    """Eq. 24: TD error to the soft target plus α_CQL (logsumexp Q − E_µ Q)."""
    state, avail, a = data["state"][idx], data["avail"][idx, i], data["actions"][idx, i]
    with torch.no_grad():
        y = data["reward"][idx].clone()
        not_done = 1 - data["done"][idx]
        if not_done.any():  # a one-step game ends every episode: nothing to bootstrap
            next_logp = policy(data["next_obs"][idx, i], data["next_avail"][idx, i])
            next_pi = next_logp.exp()
            next_v = (next_pi * target_critic(data["next_state"][idx])).sum(-1)
            kl = (next_pi * (next_logp - data["next_log_mu"][idx, i])).sum(-1)
            entropy = -(next_pi * next_logp).sum(-1)
            y += args.gamma * not_done * (next_v - alpha * kl + beta * entropy)
    q = critic(state)
    td = F.mse_loss(q.gather(1, a[:, None]).squeeze(1), y)
    cql = (torch.logsumexp(q.masked_fill(avail == 0, -1e9), -1) - (data["log_mu"][idx, i].exp() * q).sum(-1)).mean()
    return td + args.cql_alpha * cql


def actor_loss(data, idx, i: int, policy, target_critic, alpha: float, beta: float, args) -> torch.Tensor:
    """Eq. 20: in-sample weighted likelihood −E_{D_ρ}[w log π^i(a^i|o^i)], only dataset actions enter log π."""
    obs, avail, a = data["obs"][idx, i], data["avail"][idx, i], data["actions"][idx, i]
    logp = policy(obs, avail)
    with torch.no_grad():
        q = target_critic(data["state"][idx])
        advantage = q.gather(1, a[:, None]).squeeze(1) - (logp.exp() * q).sum(-1)
        log_w = (advantage - beta * data["log_mu"][idx, i].gather(1, a[:, None]).squeeze(1)) / (alpha + beta)
        weight = log_w.clamp(max=np.log(args.weight_clip)).exp()
    return -(weight * logp.gather(1, a[:, None]).squeeze(1)).mean()


def mean_kl(data, idx, policies) -> torch.Tensor:
    """Mean over agents of E_s KL(π^i(·|o) || µ^i(·|o)) on a uniform batch (the quantity Eq. 25 constrains)."""
    kls = []
    for i, policy in enumerate(policies):
        logp = policy(data["obs"][idx, i], data["avail"][idx, i])
        kls.append((logp.exp() * (logp - data["log_mu"][idx, i])).sum(-1).mean())
    return torch.stack(kls).mean()


def alpha_loss(log_alpha: torch.Tensor, kl: torch.Tensor, target_kl: float) -> torch.Tensor:
    """Eq. 25 as a Lagrangian: gradient descent raises α while KL > D̄_KL (the paper prints the opposite sign)."""
    return log_alpha * (target_kl - kl.detach())


@torch.no_grad()
def expected_advantages(data, idx, policies, target_critics) -> np.ndarray:
    """Semi-greedy order (Wang et al. 2023): E_D[Q̄^i(s,a^i) − Σ_a π^i(a|o) Q̄^i(s,a)] per agent."""
    out = []
    for i, (policy, critic) in enumerate(zip(policies, target_critics)):
        q = critic(data["state"][idx])
        pi = policy(data["obs"][idx, i], data["avail"][idx, i]).exp()
        out.append(float((q.gather(1, data["actions"][idx, i, None]).squeeze(1) - (pi * q).sum(-1)).mean()))
    return np.array(out)


def update_order(args, n_agents: int, rng: np.random.Generator, advantages=None) -> list[int]:
    """Algorithm 1, line 4: a random permutation (default), the fixed order, or semi-greedy
    (the agent with the largest expected advantage first, the rest in random order)."""
    if args.update_order == "fixed":
        return list(range(n_agents))
    order = [int(i) for i in rng.permutation(n_agents)]
    if args.update_order == "semi-greedy":
        first = int(np.argmax(advantages))
        order = [first] + [i for i in order if i != first]
    return order


# ---------------------------------------------------------------------------------------
# Evaluation in the environment, checkpoints
# ---------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(policies, episodes: int, greedy: bool, generator, device) -> float:
    """Mean undiscounted return of `episodes` Bridge episodes (horizon 20), all stepped at once."""
    env = BridgeCore(episodes, TRAIN_HORIZON)
    state = env.reset()
    returns = np.zeros(episodes)
    alive = np.ones(episodes, dtype=bool)
    for _ in range(TRAIN_HORIZON):
        obs = torch.as_tensor(state, device=device)
        avail = torch.ones(episodes, policies[0].net[-1].out_features, device=device)
        actions = []
        for policy in policies:  # every agent observes the full state (§6)
            logp = policy(obs, avail)
            actions.append(
                logp.argmax(-1) if greedy else torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
            )
        state, reward, terminated = env.step(torch.stack(actions, 1).cpu().numpy())
        returns += reward * alive
        alive &= ~terminated
        if not alive.any():
            break
    return float(returns.mean())


# Arguments that may differ between a checkpoint and the run that resumes it.
RESUMABLE = {
    "num_updates",
    "resume",
    "evaluate",
    "progress",
    "runs_dir",
    "checkpoint_interval",
    "track",
    "wandb_project_name",
    "wandb_entity",
    "exp_name",
    "cuda",
    "eval_interval",
    "eval_episodes",
    "final_eval_episodes",
    "cache_dir",
}


def save_checkpoint(path: str, state: dict) -> None:
    torch.save(state, path + ".tmp")  # written whole, then renamed: a crash never leaves half a checkpoint
    os.replace(path + ".tmp", path)


# What checkpoint_state (in main) writes and a resume reads
CHECKPOINT_KEYS = (
    "config",
    "run_name",
    "iteration",
    "behaviours",
    "joint_behaviour",
    "policies",
    "critics",
    "target_critics",
    "policy_optimisers",
    "critic_optimisers",
    "log_alpha",
    "alpha_optimiser",
    "alpha",
    "beta",
    "history",
    "best_return",
    "bc_return",
    "device",
    "elapsed_s",
    "generator",
    "eval_generator",
    "np_rng",
)


def read_checkpoint(path: str, flag: str) -> dict:
    """A checkpoint this script wrote, every key present, or one error line naming the flag and the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        state["config"]
    except Exception as error:
        raise InputError(
            f"{flag} {path!r} is not a readable InSPO Bridge checkpoint ({type(error).__name__}: {error})"
        ) from None
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise InputError(f"{flag} {path!r} lacks {', '.join(missing)}; accepted: a checkpoint.pt this script wrote")
    return state


def evaluate_checkpoint(args: Args) -> dict:
    """--evaluate: a run's π and µ from its checkpoint, evaluated in the order and with the generator state of
    the run's final evaluation (so the numbers are the run's own), with no training."""
    state = read_checkpoint(args.evaluate, "--evaluate")
    config = state["config"]
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    try:
        teams = {}
        for who in ("policies", "behaviours"):
            teams[who] = [Policy(STATE_DIM, N_ACTIONS, config["hidden_dim"]).to(device) for _ in range(N_AGENTS)]
            for network, saved in zip(teams[who], state[who], strict=True):
                network.load_state_dict(saved)
    except (RuntimeError, ValueError, KeyError) as error:
        raise InputError(
            f"--evaluate {args.evaluate!r} does not hold Bridge's networks ({type(error).__name__}: {error})"
        ) from None
    generator = torch.Generator(device=device).manual_seed(config["seed"] + 10_000)
    if state["device"] == device.type:
        generator.set_state(state["eval_generator"])
    episodes = args.final_eval_episodes
    with torch.no_grad():
        returns = {
            f"{label}_{mode}": evaluate(teams[who], episodes, mode == "greedy", generator, device)
            for who, label in (("policies", "return"), ("behaviours", "bc_return"))
            for mode in ("greedy", "stochastic")
        }
    evaluation = {
        "checkpoint": os.path.abspath(args.evaluate),
        "iteration": state["iteration"],
        "dataset": config["dataset"],
        "episodes": episodes,
        **returns,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(args.evaluate)), "evaluation.json")
    with open(path + ".tmp", "w") as f:
        json.dump(evaluation, f, indent=2)
    os.replace(path + ".tmp", path)
    print(
        f"bridge {config['dataset']} (iteration {state['iteration']}): return greedy {returns['return_greedy']:.4f}, "
        f"stochastic {returns['return_stochastic']:.4f} ({episodes} episodes); BC greedy "
        f"{returns['bc_return_greedy']:.4f}, stochastic {returns['bc_return_stochastic']:.4f}"
    )
    print(f"evaluation: {path}")
    return evaluation


def load_checkpoint(path: str, args: Args) -> dict:
    state = read_checkpoint(path, "--resume")
    config = state["config"]
    for key, value in asdict(args).items():
        if key not in RESUMABLE and config.get(key) != value:
            raise InputError(
                f"--resume {path!r} was written with --{key.replace('_', '-')} {config.get(key)!r}, "
                f"this run has {value!r}; accepted: the checkpoint's configuration"
            )
    if state["iteration"] >= args.num_updates:  # nothing to add: never overwrite the finished run's summary
        raise InputError(
            f"--resume {path!r} is at iteration {state['iteration']}, --num-updates {args.num_updates} adds nothing; "
            f"accepted: --num-updates > {state['iteration']}"
        )
    return state


def main(args: Args) -> dict:
    check_args(args)
    if args.evaluate is not None:
        return evaluate_checkpoint(args)
    checkpoint = load_checkpoint(args.resume, args) if args.resume else None
    # Every draw uses the run's own generators, seeded from --seed; the global RNGs are never reseeded.
    np_rng = np.random.default_rng(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    generator = torch.Generator(device=device).manual_seed(args.seed)
    eval_generator = torch.Generator(device=device).manual_seed(args.seed + 10_000)
    if checkpoint and checkpoint["device"] != device.type:  # a generator's state fits only its own device
        raise InputError(
            f"--resume {args.resume!r} was written on {checkpoint['device']}, this run is on {device.type}; "
            f"accepted: the checkpoint's device ({'--cuda' if checkpoint['device'] == 'cuda' else '--no-cuda'})"
        )

    arrays, card = load_or_make(args.dataset, args.dataset_seed, args.cache_dir, args.dataset_dir)
    if checkpoint:
        run_name, run_dir = checkpoint["run_name"], os.path.join(args.runs_dir, checkpoint["run_name"])
        os.makedirs(run_dir, exist_ok=True)
    else:
        run_name, run_dir = new_run_dir(
            args.runs_dir, f"bridge_{args.dataset}__{args.exp_name}__{args.seed}__{int(time.time())}"
        )
    print(format_card(card))
    raw = transitions(arrays, horizon=TRAIN_HORIZON)
    raw.pop("episode")
    data = {k: torch.as_tensor(v, device=device) for k, v in raw.items()}
    n_agents, n_actions = data["avail"].shape[1:]
    state_dim, obs_dim = data["state"].shape[1], data["obs"].shape[2]
    if args.track:
        wandb = import_wandb()
        wandb.init(
            project=args.wandb_project_name,
            entity=args.wandb_entity,
            config=vars(args),
            name=run_name,
            sync_tensorboard=True,
        )
    writer = SummaryWriter(run_dir)
    writer.add_text(
        "hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items())
    )
    # a resumed run's clock goes on from its checkpoint, so wall_time_s is the run's cost however many sittings it took
    start = time.time() - (checkpoint["elapsed_s"] if checkpoint else 0.0)

    # Initial weights come from torch's global RNG (nn.Module's initialisers): seeded from --seed inside a fork,
    # so the caller's RNG state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        behaviours = [Policy(obs_dim, n_actions, args.hidden_dim).to(device) for _ in range(n_agents)]
        joint_behaviour = JointBehaviour(state_dim, n_agents, n_actions, args.hidden_dim).to(device)
        policies = [Policy(obs_dim, n_actions, args.hidden_dim).to(device) for _ in range(n_agents)]
        critics = [Critic(state_dim, n_actions, args.hidden_dim).to(device) for _ in range(n_agents)]
        target_critics = [Critic(state_dim, n_actions, args.hidden_dim).to(device) for _ in range(n_agents)]
    policy_optimisers = [adam(p.parameters(), args.learning_rate) for p in policies]
    critic_optimisers = [adam(c.parameters(), args.learning_rate) for c in critics]
    log_alpha = torch.tensor(np.log(max(args.alpha, 1e-8)), dtype=torch.float32, device=device, requires_grad=True)
    alpha_optimiser = torch.optim.Adam([log_alpha], lr=args.alpha_lr)
    alpha, beta, first, history, best_return = args.alpha, args.beta_0, 1, [], -np.inf

    if checkpoint is None:
        # Algorithm 1, line 1: behaviour cloning µ (Eq. 21, 22); π^0 = µ
        bc_loss = behaviour_cloning(data, behaviours, joint_behaviour, args, generator)
        writer.add_scalar("losses/bc_loss", bc_loss, 0)
        for policy, behaviour in zip(policies, behaviours):  # π^0 = µ (Algorithm 1's initial policy)
            policy.load_state_dict(behaviour.state_dict())
        for critic, target in zip(critics, target_critics):
            target.load_state_dict(critic.state_dict())
    else:
        modules = {
            "behaviours": behaviours,
            "policies": policies,
            "critics": critics,
            "target_critics": target_critics,
            "policy_optimisers": policy_optimisers,
            "critic_optimisers": critic_optimisers,
        }
        for key, items in modules.items():
            for item, saved in zip(items, checkpoint[key]):
                item.load_state_dict(saved)
        joint_behaviour.load_state_dict(checkpoint["joint_behaviour"])
        alpha_optimiser.load_state_dict(checkpoint["alpha_optimiser"])
        with torch.no_grad():
            log_alpha.copy_(checkpoint["log_alpha"])
        alpha, beta, history, best_return = (
            checkpoint["alpha"],
            checkpoint["beta"],
            checkpoint["history"],
            checkpoint["best_return"],
        )
        first = checkpoint["iteration"] + 1
        generator.set_state(checkpoint["generator"])
        eval_generator.set_state(checkpoint["eval_generator"])
        np_rng.bit_generator.state = checkpoint["np_rng"]
        print(f"resumed {run_name} at iteration {checkpoint['iteration']}")
    behaviour_tables(data, behaviours, joint_behaviour)
    if checkpoint is None:
        bc_return = evaluate(behaviours, args.final_eval_episodes, args.eval_greedy, eval_generator, device)
    else:
        bc_return = checkpoint["bc_return"]

    def checkpoint_state(iteration: int) -> dict:
        return {
            "config": asdict(args),
            "run_name": run_name,
            "iteration": iteration,
            "behaviours": [m.state_dict() for m in behaviours],
            "joint_behaviour": joint_behaviour.state_dict(),
            "policies": [m.state_dict() for m in policies],
            "critics": [m.state_dict() for m in critics],
            "target_critics": [m.state_dict() for m in target_critics],
            "policy_optimisers": [o.state_dict() for o in policy_optimisers],
            "critic_optimisers": [o.state_dict() for o in critic_optimisers],
            "log_alpha": log_alpha.detach().clone(),
            "alpha_optimiser": alpha_optimiser.state_dict(),
            "alpha": alpha,
            "beta": beta,
            "history": history,
            "best_return": best_return,
            "bc_return": bc_return,
            "device": device.type,
            "elapsed_s": time.time() - start,
            "generator": generator.get_state(),
            "eval_generator": eval_generator.get_state(),
            "np_rng": np_rng.bit_generator.state,
        }

    # Algorithm 1, line 2: for k = 1, ..., K. Line 3 (Q^k by Eq. 10) is, in the practical InSPO, a local
    # critic per agent, updated inside the agents' loop just before that agent's policy (below).
    for iteration in trange(first, args.num_updates + 1, disable=not args.progress, desc=run_name[:40]):
        evaluating = iteration % args.eval_interval == 0 or iteration == args.num_updates
        uniform = torch.randint(len(data["reward"]), (args.batch_size,), generator=generator, device=device)
        advantages = (
            expected_advantages(data, uniform, policies, target_critics) if args.update_order == "semi-greedy" else None
        )
        # line 4: a permutation i_1:N of the agents (random; --update-order fixed or semi-greedy)
        order = update_order(args, n_agents, np_rng, advantages)
        # sequential vs simultaneous: ρ of Eq. 23 and the batch resampled ∝ ρ are made for each agent just
        # before its update, from its teammates' policies as updated so far this iteration (InSPO);
        # --no-sequential makes them all from the start-of-iteration policies (the ablation of Fig. 5b)
        batches = {} if args.sequential else {i: resample(data, policies, i, args, generator) for i in order}
        for i in order:  # line 5: for n = 1, ..., N
            idx = batches[i] if i in batches else resample(data, policies, i, args, generator)
            # line 3's local critic Q^i: Eq. 24
            q_loss = critic_loss(data, idx, i, critics[i], target_critics[i], policies[i], alpha, beta, args)
            critic_optimisers[i].zero_grad()
            q_loss.backward()
            critic_optimisers[i].step()
            # line 6: update π^i by Eq. 13, in practice the in-sample extraction of Eq. 20
            pi_loss = actor_loss(data, idx, i, policies[i], target_critics[i], alpha, beta, args)
            policy_optimisers[i].zero_grad()
            pi_loss.backward()
            policy_optimisers[i].step()
        with torch.no_grad():
            for critic, target in zip(critics, target_critics):  # Polyak: θ̄ ← θ̄ + τ (θ − θ̄)
                for target_param, param in zip(target.parameters(), critic.parameters()):
                    target_param.lerp_(param, args.tau)
        # after the agents (lines 7-8 end the loops): auto-tuned α, Eq. 25
        if args.autotune_alpha or evaluating:
            with torch.no_grad():
                kl = mean_kl(data, uniform, policies)
        if args.autotune_alpha:
            a_loss = alpha_loss(log_alpha, kl, args.target_kl)
            alpha_optimiser.zero_grad()
            a_loss.backward()
            alpha_optimiser.step()
            alpha = float(log_alpha.detach().exp())
        # and the decaying entropy temperature β
        beta *= args.beta_decay

        if evaluating:
            eval_return = evaluate(policies, args.eval_episodes, args.eval_greedy, eval_generator, device)
            best_return = max(best_return, eval_return)
            history.append((iteration, eval_return, time.time() - start))
            writer.add_scalar("eval/return", eval_return, iteration)
            writer.add_scalar("charts/alpha", alpha, iteration)
            writer.add_scalar("charts/beta", beta, iteration)
            writer.add_scalar("charts/kl", float(kl), iteration)
            writer.add_scalar("losses/critic_loss", float(q_loss.detach()), iteration)
            writer.add_scalar("losses/actor_loss", float(pi_loss.detach()), iteration)
        if iteration % args.checkpoint_interval == 0 or iteration == args.num_updates:
            save_checkpoint(os.path.join(run_dir, "checkpoint.pt"), checkpoint_state(iteration))

    final_greedy = evaluate(policies, args.final_eval_episodes, True, eval_generator, device)
    final_stochastic = evaluate(policies, args.final_eval_episodes, False, eval_generator, device)
    bc_greedy = evaluate(behaviours, args.final_eval_episodes, True, eval_generator, device)
    bc_stochastic = evaluate(behaviours, args.final_eval_episodes, False, eval_generator, device)
    wall_time = time.time() - start
    summary = {
        "dataset": args.dataset,
        "source": args.dataset_dir or "generated",
        "card": card,
        "eval_greedy": args.eval_greedy,
        "final_return": final_greedy if args.eval_greedy else final_stochastic,
        "final_return_greedy": final_greedy,
        "final_return_stochastic": final_stochastic,
        "best_return": best_return,
        "bc_return": bc_return,
        "bc_return_greedy": bc_greedy,
        "bc_return_stochastic": bc_stochastic,
        "optimum": OPTIMUM,
        "history": history,
        "wall_time_s": wall_time,
        "num_updates": args.num_updates,
        "args": asdict(args),
    }
    writer.add_scalar("eval/final_return", summary["final_return"], args.num_updates)
    writer.close()
    path = os.path.join(run_dir, "summary.json")
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(path + ".tmp", path)
    mode = "greedy" if args.eval_greedy else "stochastic"
    print(
        f"bridge {args.dataset} ({summary['source']}): return {summary['final_return']:.4f} ({mode}, "
        f"{args.final_eval_episodes} episodes; "
        f"greedy {final_greedy:.4f}, stochastic {final_stochastic:.4f}; best {best_return:.4f}), BC {bc_return:.4f}, "
        f"optimum {OPTIMUM}, {wall_time:.1f} s"
    )
    print(f"summary: {path}")
    return summary


if __name__ == "__main__":
    cli_args = tyro.cli(Args)
    try:
        main(cli_args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
