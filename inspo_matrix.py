# docs: README.md ("inspo_matrix.py") and docs/algorithm.md (the choices the paper leaves open)
"""InSPO (In-Sample Sequential Policy Optimization, Liu et al., AAAI 2025) on the one-step
matrix games of the paper: XOR (Table 1, Figure 3) and M-NE (Table 2, Figure 5).

The whole pipeline is in this file, in the order of Algorithm 1:
  1. behaviour cloning of each agent's µ^i (Eq. 21) and of the teammates' joint µ^-i (Eq. 22),
  2-4. the importance ratio ρ (Eq. 23) and a minibatch resampled ∝ ρ,
  5. the local critic Q^i(s, a^i) with the soft, KL- and entropy-regularised target (Eq. 24),
  6. the sequential, in-sample policy extraction (Eq. 20), one agent after another,
  7. the decaying entropy temperature β, 8. the auto-tuned α (Eq. 25), 9. the update order.

Choices this script makes where the paper is silent (docs/algorithm.md has the reasons):
  * a play is an episode (done = 1), so the critic's target is the reward itself;
  * α = 0.1 fixed, β_0 = 10 decayed ×0.978 per iteration (β ≈ 0.05 after 240 of the 300): the KL target of
    auto-α forbids the optimum here (M-NE imbalanced needs KL ≈ 2.3 per agent), so auto-α is off by default;
  * Eq. 25 is implemented as the Lagrangian that RAISES α when KL > D̄_KL
    (loss = log α · (D̄_KL − KL)); the paper's printed sign would lower it;
  * the weight exp((A − β log µ)/(α+β)) of Eq. 20 is detached and clipped at `weight_clip`;
  * `--exact` replaces the networks by the closed forms: the critic is the in-sample mean
    reward under the resampled data D_ρ, and each π^i is set to Eq. 13,
    π^i ∝ D_ρ(a^i) · exp((Q^i − β log µ^i)/(α+β)), which is the practical actor's fixed point;
  * `--no-sequential` (the paper's "w/o SPO" ablation) computes every agent's ρ from the
    teammates' policies at the start of the iteration.
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
from envs.matrix import (
    ACTION_NAMES,
    ALBERDICE_NAMES,
    DATASETS,
    PAYOFFS,
    MatrixGameEnv,
    check_game,
    joint_return,
    load_alberdice_xor,
    make_dataset,
)


@dataclass
class Args:
    exp_name: str = "inspo_matrix"
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
    """where TensorBoard logs and summary.json go (runs/<run_name>/)"""
    progress: bool = True
    """show a tqdm progress bar"""

    # Algorithm specific arguments
    game: Annotated[str, tyro.conf.arg(metavar="{" + ",".join(PAYOFFS) + "}")] = "xor"
    """the matrix game: xor (Figure 1) or mne (Figure 2)"""
    dataset: Annotated[str, tyro.conf.arg(metavar="{" + ",".join(n for g in DATASETS.values() for n in g) + "}")] = "b"
    """xor: a {(A,B),(B,A)}, b {(A,A),(A,B),(B,A)}, c all four; mne: balanced or imbalanced"""
    dataset_dir: str | None = None
    """an AlberDICE XOR buffer directory (e.g. .../mmdp_game_1_from_start/buffer_00_02_20) to use instead of generated
    data"""
    dataset_seed: int = 0
    """seed of the generated dataset (a fixed artefact, like the paper's files) (0 <= seed < 2^32)"""
    num_plays: int = 5400
    """plays in a generated dataset, in the exact proportions of the paper's figures (AlberDICE's files: 5000 i.i.d.)
    (an integer in 1..10^8)"""
    exact: bool = False
    """run Algorithm 1 exactly (closed-form critic and Eq. 13 policies) instead of networks"""
    sequential: bool = True
    """sequential updates (InSPO); --no-sequential is the simultaneous-update ablation"""
    update_order: Literal["random", "fixed", "semi-greedy"] = "random"
    """agent order each iteration: random permutation, fixed 0..N-1, or largest expected advantage first"""
    num_updates: int = 300
    """training iterations; each makes one critic and one actor gradient update per agent (Adam steps, not env steps)
    (an integer in 1..10^9)"""
    bc_updates: int = 100
    """gradient updates of behaviour cloning (µ^i and µ^-i) before training (an integer in 1..10^9)"""
    batch_size: int = 64
    """minibatch size of every update (an integer in 1..2^20)"""
    pool_factor: int = 4
    """the resampled minibatch is drawn ∝ ρ from a uniform candidate pool of pool_factor x batch_size (an integer in
    1..1024)"""
    hidden_dim: int = 256
    """width of the 3 hidden ReLU layers of every network (an integer in 1..8192)"""
    learning_rate: float = 1e-3
    """Adam learning rate of the policies, critics and behaviour models (> 0)"""
    gamma: float = 0.99
    """discount (the one-step game terminates, so it does not matter here) (in [0, 1])"""
    tau: float = 0.2
    """soft-update rate of the target critics (one-step game: the critic only regresses the reward, and a slow target
    only delays the actor) (in (0, 1])"""
    alpha: float = 0.1
    """KL temperature α (the initial value with --autotune-alpha) (>= 0)"""
    autotune_alpha: bool = False
    """learn α so that the mean KL(π^i || µ^i) tracks --target-kl (Eq. 25)"""
    target_kl: float = 0.18
    """the KL target D̄_KL of auto-tuned α (>= 0)"""
    alpha_lr: float = 3e-4
    """Adam learning rate of log α (> 0)"""
    beta_0: float = 10.0
    """initial entropy temperature β (0 = no entropy: the "w/o entropy" ablation) (>= 0)"""
    beta_decay: float = 0.978
    """β is multiplied by this after every iteration (in [0, 1])"""
    cql_alpha: float = 0.1
    """weight of the CQL term of the critic loss (Eq. 24) (>= 0)"""
    weight_clip: float = 100.0
    """maximum of the policy-extraction weight exp((A − β log µ)/(α+β)) (> 0)"""
    eval_episodes: int = 32
    """evaluation plays (episodes) per evaluation during training (the paper's protocol) (an integer in 1..10^6)"""
    final_eval_episodes: int = 320
    """plays of the final evaluation (OG-MARL's larger final evaluation) (an integer in 1..10^6)"""
    eval_interval: int = 100
    """evaluate (and log) every this many iterations (an integer in 1..10^9)"""
    eval_greedy: bool = True
    """greedy evaluation (argmax); --no-eval-greedy samples actions"""


def check_args(args: Args) -> None:
    """Reject impossible settings with one line that names the value and what is accepted (before any work)."""
    check_game(args.game, args.dataset)
    if args.dataset_dir is not None and args.game != "xor":
        raise InputError(
            f"--dataset-dir holds AlberDICE's XOR buffers; it does not fit game {args.game!r} (accepted: --game xor)"
        )
    if args.dataset_dir is not None:  # the run is labelled with --dataset: it must be what the files hold
        held = {name: dataset for dataset, name in ALBERDICE_NAMES.items()}.get(
            os.path.basename(os.path.normpath(args.dataset_dir))
        )
        if held is not None and held != args.dataset:
            raise InputError(
                f"--dataset {args.dataset} with --dataset-dir {args.dataset_dir!r}, which holds XOR dataset {held!r}; "
                f"accepted: --dataset {held}"
            )
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
        ("num_plays", 10**8),
    ):
        check_count(name, getattr(args, name), 1, high)
    check_seed("seed", args.seed)
    check_seed("dataset_seed", args.dataset_seed)
    if args.track:
        import_wandb()
    check_writable_dir("runs_dir", args.runs_dir)


# ---------------------------------------------------------------------------------------
# Networks (paper, Appendix C.4: 3-layer ReLU MLPs of 256 for the matrix games and Bridge)
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
# Exact mode: Algorithm 1 in closed form on the dataset's empirical joint distribution
# ---------------------------------------------------------------------------------------
def exact_behaviour(actions: np.ndarray, n_actions: int):
    """The exact BC of a one-step game: the empirical joint D(a^1, a^2) and its marginals µ^1, µ^2."""
    joint = np.zeros((n_actions, n_actions))
    np.add.at(joint, (actions[:, 0], actions[:, 1]), 1.0)
    joint /= joint.sum()
    return joint, [joint.sum(1), joint.sum(0)]


def exact_agent_update(i: int, joint, mus, teammate_pi, pi_i, payoff, alpha: float, beta: float):
    """Eq. 23 + 24 + 13 in expectation for agent i of a 2-agent one-step game.

    D_ρ(a^i, a^j) ∝ D(a^i, a^j) π^j(a^j)/µ^j(a^j); Q^i(a^i) = E_{D_ρ}[r | a^i] (in-sample);
    π^i ∝ D_ρ(a^i) · exp((Q^i − V − β log µ^i)/(α+β)), zero off the data's support.
    """
    d, r = (joint, payoff) if i == 0 else (joint.T, payoff.T)  # rows: agent i's action
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(mus[1 - i] > 0, teammate_pi / mus[1 - i], 0.0)
        d_rho = d * rho[None, :]
        d_rho /= d_rho.sum()
        marginal = d_rho.sum(1)
        q = np.where(marginal > 0, (d_rho * r).sum(1) / marginal, 0.0)
        advantage = q - pi_i @ q
        log_w = (advantage - beta * np.log(mus[i])) / (alpha + beta)
    logits = np.where(marginal > 0, np.log(np.maximum(marginal, 1e-300)) + log_w, -np.inf)
    new_pi = np.exp(logits - logits.max())
    return new_pi / new_pi.sum(), q


# ---------------------------------------------------------------------------------------
# Evaluation in the environment
# ---------------------------------------------------------------------------------------
def evaluate(game: str, probs: list[np.ndarray], episodes: int, greedy: bool, rng: np.random.Generator) -> float:
    """Mean return of `episodes` plays in the PettingZoo env; greedy = argmax of each agent's policy."""
    env = MatrixGameEnv(game)
    returns = []
    for _ in range(episodes):
        env.reset()
        actions = {
            agent: int(np.argmax(p)) if greedy else int(rng.choice(len(p), p=p / p.sum()))
            for agent, p in zip(env.possible_agents, probs)
        }
        _, rewards, _, _, _ = env.step(actions)
        returns.append(rewards["agent_0"])
    return float(np.mean(returns))


def format_joint_policy(game: str, pi1: np.ndarray, pi2: np.ndarray) -> str:
    """The joint policy π^1 ⊗ π^2 as the paper's Figures 3 and 5 show it (rows agent 1, columns agent 2)."""
    names = ACTION_NAMES[game]
    lines = ["agent1\\agent2 " + " ".join(f"{n:>6}" for n in names)]
    for a, row in zip(names, np.outer(pi1, pi2)):
        lines.append(f"{a:>13} " + " ".join(f"{p:6.3f}" for p in row))
    return "\n".join(lines)


def load_data(args: Args) -> dict[str, np.ndarray]:
    if args.dataset_dir is not None:
        return load_alberdice_xor(args.dataset_dir)
    return make_dataset(args.game, args.dataset, seed=args.dataset_seed, num_plays=args.num_plays)


def main(args: Args) -> dict:
    check_args(args)
    source = args.dataset_dir or f"generated:{args.dataset}"
    # Every draw uses the run's own generators, seeded from --seed; the global RNGs are never reseeded.
    np_rng = np.random.default_rng(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    generator = torch.Generator(device=device).manual_seed(args.seed)

    raw = load_data(args)
    run_name, run_dir = new_run_dir(
        args.runs_dir, f"matrix_{args.game}_{args.dataset}__{args.exp_name}__{args.seed}__{int(time.time())}"
    )
    payoff = PAYOFFS[args.game]
    n_agents, n_actions = raw["actions"].shape[1], payoff.shape[0]
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
    start = time.time()

    # Algorithm 1, line 1: behaviour cloning µ (Eq. 21, 22); π^0 = µ
    if args.exact:
        joint, mus = exact_behaviour(raw["actions"], n_actions)
    else:
        data = {k: torch.as_tensor(v, device=device) for k, v in raw.items()}
        state_dim, obs_dim = data["state"].shape[1], data["obs"].shape[2]
        # Initial weights come from torch's global RNG (nn.Module's initialisers): seeded from --seed inside a
        # fork, so the caller's RNG state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            behaviours = [Policy(obs_dim, n_actions, args.hidden_dim).to(device) for _ in range(n_agents)]
            joint_behaviour = JointBehaviour(state_dim, n_agents, n_actions, args.hidden_dim).to(device)
            policies = [Policy(obs_dim, n_actions, args.hidden_dim).to(device) for _ in range(n_agents)]
            critics = [Critic(state_dim, n_actions, args.hidden_dim).to(device) for _ in range(n_agents)]
            target_critics = [Critic(state_dim, n_actions, args.hidden_dim).to(device) for _ in range(n_agents)]
        bc_loss = behaviour_cloning(data, behaviours, joint_behaviour, args, generator)
        writer.add_scalar("losses/bc_loss", bc_loss, 0)
        behaviour_tables(data, behaviours, joint_behaviour)
        mus = [data["log_mu"][0, i].exp().cpu().numpy().astype(np.float64) for i in range(n_agents)]  # one state
    bc_greedy = evaluate(args.game, mus, args.final_eval_episodes, True, np_rng)
    bc_stochastic = evaluate(args.game, mus, args.final_eval_episodes, False, np_rng)
    bc_return = bc_greedy if args.eval_greedy else bc_stochastic

    # The learners: policies π^i, local critics Q^i and their targets, log α
    if args.exact:
        pis = [mu.copy() for mu in mus]  # π^0 = µ, as the practical mode's networks start
        q_exact = [np.zeros(n_actions) for _ in range(n_agents)]
    else:
        for policy, behaviour in zip(policies, behaviours):  # π^0 = µ (Algorithm 1's initial policy)
            policy.load_state_dict(behaviour.state_dict())
        for critic, target in zip(critics, target_critics):
            target.load_state_dict(critic.state_dict())
        policy_optimisers = [adam(p.parameters(), args.learning_rate) for p in policies]
        critic_optimisers = [adam(c.parameters(), args.learning_rate) for c in critics]
    log_alpha = torch.tensor(np.log(max(args.alpha, 1e-8)), dtype=torch.float32, device=device, requires_grad=True)
    alpha_optimiser = torch.optim.Adam([log_alpha], lr=args.alpha_lr)
    alpha, beta = args.alpha, args.beta_0

    def current_policies() -> list[np.ndarray]:
        if args.exact:
            return [p.copy() for p in pis]
        with torch.no_grad():  # one state: the policy is a single distribution per agent
            return [
                policies[i](data["obs"][:1, i], data["avail"][:1, i])[0].exp().cpu().numpy().astype(np.float64)
                for i in range(n_agents)
            ]

    # Algorithm 1, line 2: for k = 1, ..., K. Line 3 (Q^k by Eq. 10) is, in the practical InSPO, a local
    # critic per agent, updated inside the agents' loop just before that agent's policy (below).
    for iteration in trange(1, args.num_updates + 1, disable=not args.progress, desc=run_name[:40], leave=False):
        evaluating = iteration % args.eval_interval == 0 or iteration == args.num_updates
        if args.exact:
            advantages = [(mus[i] - pis[i]) @ q_exact[i] for i in range(n_agents)]  # E_D[Q^i] − E_π[Q^i]
            # line 4: a permutation i_1:N of the agents (random; --update-order fixed or semi-greedy)
            order = update_order(args, n_agents, np_rng, advantages)
            start_pis = [p.copy() for p in pis]
            for i in order:  # line 5: for n = 1, ..., N
                # sequential vs simultaneous: the teammate's policy as updated so far, or at the iteration's start
                teammate = pis[1 - i] if args.sequential else start_pis[1 - i]
                # lines 3 and 6 in closed form: the exact in-sample critic and Eq. 13
                pis[i], q_exact[i] = exact_agent_update(i, joint, mus, teammate, pis[i], payoff, alpha, beta)
            kl = torch.tensor(np.mean([np.sum(p[p > 0] * np.log(p[p > 0] / mu[p > 0])) for p, mu in zip(pis, mus)]))
        else:
            uniform = torch.randint(len(data["reward"]), (args.batch_size,), generator=generator, device=device)
            advantages = (
                expected_advantages(data, uniform, policies, target_critics)
                if args.update_order == "semi-greedy"
                else None
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
            if args.autotune_alpha or evaluating:
                with torch.no_grad():
                    kl = mean_kl(data, uniform, policies)
        # after the agents (lines 7-8 end the loops): auto-tuned α, Eq. 25
        if args.autotune_alpha:
            a_loss = alpha_loss(log_alpha, kl, args.target_kl)
            alpha_optimiser.zero_grad()
            a_loss.backward()
            alpha_optimiser.step()
            alpha = float(log_alpha.detach().exp())
        # and the decaying entropy temperature β
        beta *= args.beta_decay

        if evaluating:
            probs = current_policies()
            writer.add_scalar(
                "eval/return", evaluate(args.game, probs, args.eval_episodes, args.eval_greedy, np_rng), iteration
            )
            writer.add_scalar("eval/expected_return", joint_return(args.game, probs[0], probs[1]), iteration)
            writer.add_scalar("charts/alpha", alpha, iteration)
            writer.add_scalar("charts/beta", beta, iteration)
            writer.add_scalar("charts/kl", float(kl), iteration)
            if not args.exact:
                writer.add_scalar("losses/critic_loss", float(q_loss.detach()), iteration)
                writer.add_scalar("losses/actor_loss", float(pi_loss.detach()), iteration)

    probs = current_policies()
    final_greedy = evaluate(args.game, probs, args.final_eval_episodes, True, np_rng)
    final_stochastic = evaluate(args.game, probs, args.final_eval_episodes, False, np_rng)
    wall_time = time.time() - start
    summary = {
        "game": args.game,
        "dataset": args.dataset,
        "source": source,
        "mode": "exact" if args.exact else "practical",
        "eval_greedy": args.eval_greedy,
        "final_return": final_greedy if args.eval_greedy else final_stochastic,
        "final_return_greedy": final_greedy,
        "final_return_stochastic": final_stochastic,
        "expected_return": joint_return(args.game, probs[0], probs[1]),
        "bc_return": bc_return,
        "bc_return_greedy": bc_greedy,
        "bc_return_stochastic": bc_stochastic,
        "bc_expected_return": joint_return(args.game, mus[0], mus[1]),
        "joint_policy": np.outer(probs[0], probs[1]).tolist(),
        "policies": [p.tolist() for p in probs],
        "behaviour": [m.tolist() for m in mus],
        "alpha": alpha,
        "beta": beta,
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
        f"{args.game} {source} ({summary['mode']}, {'sequential' if args.sequential else 'simultaneous'}): "
        f"return {summary['final_return']:.2f} ({mode}; greedy {final_greedy:.2f}, stochastic {final_stochastic:.2f}), "
        f"BC {bc_return:.2f}, {wall_time:.1f} s"
    )
    print("final joint policy:\n" + format_joint_policy(args.game, probs[0], probs[1]))
    print(f"summary: {path}")
    return summary


if __name__ == "__main__":
    cli_args = tyro.cli(Args)
    try:
        main(cli_args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
