# docs: README.md ("inspo_smac.py"), docs/algorithm.md and docs/smac_datasets.md
"""InSPO (In-Sample Sequential Policy Optimization, Liu et al., AAAI 2025) on SMAC (Table 4).

SMAC is the StarCraft Multi-Agent Challenge; by default this script needs no StarCraft II: the
datasets are CFCQL's four kinds (medium, medium_replay, expert, mixed) made on the built-in
simulator from shipped QMIX behaviour policies (envs/smac_data.py, generated and cached on first
use), and evaluation runs on the same simulator (envs/smac.py). `--dataset-file` reads one of
CFCQL's original h5 files instead, `--env-backend sc2` evaluates in the real game.

The whole pipeline is in this file, in the order of Algorithm 1:
  1. behaviour cloning of each agent's recurrent µ^i (Eq. 21) and of the teammates' joint µ^-i (Eq. 22),
  2-4. the importance ratio ρ (Eq. 23) of every time step of a batch of episodes, and the steps
       that enter the losses drawn ∝ ρ,
  5. the local critic Q^i(s, a^i) toward λ-returns of the soft, KL- and entropy-regularised value of
     Eq. 24 along the dataset's episodes,
  6. the sequential, in-sample policy extraction (Eq. 20), one agent after another,
  7. the decaying entropy temperature β, 8. the auto-tuned α (Eq. 25), 9. the update order.

Choices this script makes where the paper is silent (docs/algorithm.md has the reasons):
  * policies and µ^i are CFCQL's RNN agent, one per agent (separate parameters): obs ‖ one-hot
    last action ‖ one-hot agent id → 64 → ReLU → GRU 64 → action logits, unavailable actions
    masked, unrolled over whole episodes (nn.GRU runs the GRU cell over the sequence in one call);
  * a gradient update draws --batch-episodes episodes, unrolls every policy over them, computes ρ
    for every filled time step, then draws --batch-size time steps ∝ ρ for agent i's critic and
    actor losses (importance resampling within the batch);
  * γ = 0.99; `terminated` (wins, defeats and, in CFCQL's files, timeouts) ends bootstrapping;
  * the critic's target is a λ-return (λ = 0.8) of Eq. 24's soft value, as CFCQL's TD(λ), with the
    target critics following at τ = 0.05: Eq. 24's one-step target with τ = 0.005 leaves Q at a
    small fraction of the return-to-go after 500 iterations of episodes 25-250 steps long;
  * α_CQL = 0.1 (the paper's default), 1 on 5m_vs_6m mixed and 3s_vs_5z expert (PRESETS): there, with
    0.1, the critics rank actions the data never takes above the data's own and Eq. 20 follows them;
  * α fixed at 1 (the paper tunes α over 0.1-5 per dataset): auto-α (--autotune-alpha, Eq. 25 as the
    Lagrangian that RAISES α when KL > D̄_KL) stays near its start within the budget, and from 0.1
    Eq. 20's weights follow the critics' errors on 5m_vs_6m and 6h_vs_8z;
  * β_0 = 0 by default: as on Bridge, an entropy bonus β·H(π) ≈ 2β per step competes with rewards
    of about 0.1-1 per step;
  * π^0 = µ: each policy starts as a copy of its behaviour model;
  * evaluation is greedy by default (CFCQL's protocol); win rate over all episodes as one batch.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import trange

from envs import InputError, check_count, check_number, check_seed, check_writable_dir, import_wandb, new_run_dir
from envs.smac import MAPS, SMACBatch, make_env, write_gif
from envs.smac_data import (
    DATASETS,
    default_cache_dir,
    episode_stats,
    format_card,
    load_h5,
    load_or_make,
    map_sizes,
    summarise,
)


@dataclass
class Args:
    exp_name: str = "inspo_smac"
    """the name of this experiment (part of the run name)"""
    seed: int = 0
    """seed of the networks, the minibatches and the evaluation (0 <= seed < 2^32)"""
    torch_deterministic: bool = True
    """sets `torch.backends.cudnn.deterministic`"""
    cuda: bool = False
    """run the networks on the GPU when one is available"""
    track: bool = False
    """log to Weights & Biases as well as TensorBoard (wandb is imported only then)"""
    capture_video: bool = False
    """write the first battle of the final evaluation, for π and for µ (BC), as GIFs in runs/<run_name>/videos/"""
    wandb_project_name: str = "inspo"
    """the wandb project, with --track"""
    wandb_entity: str | None = None
    """the wandb entity (team), with --track"""
    runs_dir: str = "runs"
    """where TensorBoard logs, checkpoints and summary.json go (runs/<run_name>/)"""
    progress: bool = True
    """show a tqdm progress bar"""
    checkpoint_interval: int = 500
    """write runs/<run_name>/checkpoint.pt (atomically) every this many iterations (an integer in 1..10^9)"""
    resume: str | None = None
    """a checkpoint.pt to resume from (same configuration; --num-updates may grow)"""
    evaluate: str | None = None
    """a run's checkpoint.pt: evaluate its π and µ on the final evaluation's battles (--final-eval-episodes,
    --no-eval-greedy, --capture-video, --env-backend apply), save evaluation.json beside it and exit: no training"""

    # Algorithm specific arguments
    map: Annotated[str, tyro.conf.arg(metavar="{" + ",".join(MAPS) + "}")] = "3s_vs_5z"
    """SMAC map: 2s3z, 3s_vs_5z, 5m_vs_6m or 6h_vs_8z"""
    dataset: Annotated[str, tyro.conf.arg(metavar="{" + ",".join(DATASETS) + "}")] = "mixed"
    """medium, medium_replay, expert or mixed (CFCQL's four datasets, generated on the built-in simulator)"""
    dataset_file: str | None = None
    """one of CFCQL's original h5 files (e.g. 3s_vs_5z_mixed.h5) instead of the generated dataset"""
    dataset_seed: int = 0
    """seed of the generated dataset (0 <= seed < 2^32)"""
    dataset_episodes: int | None = None
    """episodes of the generated dataset (default: CFCQL's 5000; 1976 for 2s3z medium_replay) (an integer in 1..10^6)"""
    cache_dir: str | None = None
    """where generated datasets and their cards are cached (default: $INSPO_CACHE or ~/.cache/inspo)"""
    env_backend: Literal["builtin", "sc2"] = "builtin"
    """evaluate on the built-in simulator, or in StarCraft II through SMAC (installed from its source repository)"""
    sequential: bool = True
    """sequential updates (InSPO); --no-sequential is the simultaneous-update ablation"""
    update_order: Literal["random", "fixed", "semi-greedy"] = "random"
    """agent order each iteration: random permutation, fixed 0..N-1, or largest expected advantage first"""
    num_updates: int | None = None
    """training iterations; each makes one critic and one actor gradient update per agent (Adam steps, not env steps)
    (default: the map and dataset's entry of PRESETS, else 500) (an integer in 1..10^9)"""
    bc_updates: int | None = None
    """gradient updates of behaviour cloning (µ^i and µ^-i) before training (default: PRESETS, else 500) (1..10^9)"""
    batch_episodes: int = 32
    """episodes unrolled per iteration (and per behaviour-cloning update) (an integer in 1..4096)"""
    batch_size: int | None = None
    """time steps drawn ∝ ρ from those episodes for each agent's critic and actor losses (default: PRESETS, else 256)
    (an integer in 1..2^20)"""
    hidden_dim: int = 256
    """width of the 3 hidden ReLU layers of the critics and of µ^-i (an integer in 1..8192)"""
    rnn_hidden: int = 64
    """width of the recurrent policies and behaviour models (CFCQL's RNN agent: 64) (an integer in 1..4096)"""
    learning_rate: float = 5e-4
    """Adam learning rate of the policies, critics and behaviour models (> 0)"""
    gamma: float = 0.99
    """discount (in [0, 1])"""
    tau: float = 0.05
    """soft-update rate of the target critics (in (0, 1])"""
    td_lambda: float = 0.8
    """λ of the critics' λ-return targets along the dataset's episodes (in [0, 1]; 0: one-step targets)"""
    alpha: float = 1.0
    """KL temperature α: fixed (the paper's grid: 0.1, 0.5, 1, 3, 5), or the start of --autotune-alpha (>= 0)"""
    autotune_alpha: bool = False
    """learn α so that the mean KL(π^i || µ^i) tracks --target-kl (Eq. 25); off by default (docs/algorithm.md)"""
    target_kl: float = 0.18
    """the KL target D̄_KL of auto-tuned α (>= 0)"""
    alpha_lr: float = 3e-4
    """Adam learning rate of log α (> 0)"""
    beta_0: float = 0.0
    """initial entropy temperature β (see the docstring for the default) (>= 0)"""
    beta_decay: float = 0.995
    """β is multiplied by this after every iteration (in [0, 1])"""
    cql_alpha: float | None = None
    """weight α_CQL of the CQL term of the critic loss (Eq. 24) (default: PRESETS, else the paper's 0.1) (>= 0)"""
    weight_clip: float = 100.0
    """maximum of the policy-extraction weight exp((A − β log µ)/(α+β)) (> 0)"""
    eval_episodes: int = 32
    """battles per evaluation during training (the paper's protocol) (an integer in 1..10^5)"""
    final_eval_episodes: int = 320
    """battles of the final evaluation (an integer in 1..10^5)"""
    eval_interval: int = 100
    """evaluate (and log) every this many iterations (an integer in 1..10^9)"""
    eval_greedy: bool = True
    """greedy evaluation (argmax over the available actions, CFCQL's protocol); --no-eval-greedy samples"""
    log_interval: int = 10
    """log the losses, α, β and KL (means over agents) every this many iterations (an integer in 1..10^9)"""
    critic_probe_episodes: int = 64
    """dataset episodes on which the critics are checked against the return-to-go at every evaluation (1..10^5)"""


# The budget and α_CQL unless a (map, dataset) needs others (docs/algorithm.md, "Budget" and "α_CQL"); a flag
# given on the command line wins over both. 3s_vs_5z's datasets hold 3-10x the other maps' transitions (longer
# cloning), and where Eq. 20's weights are concentrated (relative ESS 0.1-0.3) 256 resampled steps leave the
# actor a few dozen effective samples per update; 1024 give it four times as many. Where the critics value
# actions the data never takes above its own, a CQL weight of 1 holds them down (each measured over seeds).
# 5m_vs_6m's behaviour policies, on the simulator whose battles vary, are cloned only with 2000 updates too
# (BC on its expert data wins 0.36 after 500 updates and 0.77 after 2000, seed 0).
PRESET_DEFAULTS = {"num_updates": 500, "bc_updates": 500, "batch_size": 256, "cql_alpha": 0.1}
PRESETS: dict[tuple[str, str], dict] = {
    ("3s_vs_5z", "expert"): {"bc_updates": 2000, "batch_size": 1024, "cql_alpha": 1.0},
    ("3s_vs_5z", "mixed"): {"bc_updates": 2000, "batch_size": 1024},
    ("5m_vs_6m", "medium"): {"bc_updates": 2000},
    ("5m_vs_6m", "medium_replay"): {"bc_updates": 2000},
    ("5m_vs_6m", "expert"): {"bc_updates": 2000, "batch_size": 1024},
    ("5m_vs_6m", "mixed"): {"bc_updates": 2000, "cql_alpha": 1.0},
}


def with_presets(args: Args) -> Args:
    """args with every flag of PRESET_DEFAULTS left unset taken from PRESETS[map, dataset], else PRESET_DEFAULTS."""
    preset = {**PRESET_DEFAULTS, **PRESETS.get((args.map, args.dataset), {})}
    return replace(args, **{key: value for key, value in preset.items() if getattr(args, key) is None})


def check_args(args: Args) -> None:
    """Reject impossible settings with one line that names the value and what is accepted (before any work)."""
    args = with_presets(args)
    if args.map not in MAPS:
        raise InputError(f"unknown SMAC map {args.map!r}; accepted: {', '.join(MAPS)}")
    if args.dataset not in DATASETS:
        raise InputError(f"unknown SMAC dataset {args.dataset!r}; accepted: {', '.join(DATASETS)}")
    # every real flag with its domain: (name, low, high, low open, high open)
    for name, low, high, low_open, high_open in (
        ("learning_rate", 0, None, True, False),
        ("alpha_lr", 0, None, True, False),
        ("gamma", 0, 1, False, False),
        ("tau", 0, 1, True, False),
        ("td_lambda", 0, 1, False, False),
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
        ("batch_episodes", 4096),
        ("batch_size", 2**20),
        ("hidden_dim", 8192),
        ("rnn_hidden", 4096),
        ("eval_episodes", 10**5),
        ("final_eval_episodes", 10**5),
        ("eval_interval", 10**9),
        ("checkpoint_interval", 10**9),
        ("log_interval", 10**9),
        ("critic_probe_episodes", 10**5),
    ):
        check_count(name, getattr(args, name), 1, high)
    if args.dataset_episodes is not None:
        check_count("dataset_episodes", args.dataset_episodes, 1, 10**6)
    check_seed("seed", args.seed)
    check_seed("dataset_seed", args.dataset_seed)
    if args.resume is not None and args.evaluate is not None:
        raise InputError("--resume and --evaluate together are not accepted; accepted: one of them")
    if args.evaluate is not None and not os.path.isfile(args.evaluate):
        raise InputError(
            f"--evaluate {args.evaluate!r}: no such checkpoint file; accepted: a checkpoint.pt this script wrote"
        )
    if args.resume is not None and not os.path.isfile(args.resume):
        raise InputError(
            f"--resume {args.resume!r}: no such checkpoint file; accepted: a checkpoint.pt this script wrote"
        )
    if args.dataset_file is not None and not os.path.isfile(args.dataset_file):
        raise InputError(f"--dataset-file {args.dataset_file!r}: no such file; accepted: one of CFCQL's h5 files")
    if args.track:
        import_wandb()
    if args.evaluate is not None:  # the evaluation (and its videos) go beside the checkpoint
        check_writable_dir("evaluate", os.path.dirname(os.path.abspath(args.evaluate)))
        return
    check_writable_dir("runs_dir", args.runs_dir)
    if args.dataset_file is None:
        check_writable_dir("cache_dir", args.cache_dir or default_cache_dir())


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


class RecurrentPolicy(nn.Module):
    """π^i(a|τ^i) and µ^i(a|τ^i): CFCQL's RNN agent, log-probabilities over the available actions."""

    def __init__(self, in_dim: int, n_actions: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)  # the GRUCell unrolled over time in one call
        self.fc2 = nn.Linear(hidden, n_actions)

    def forward(self, inputs: torch.Tensor, avail: torch.Tensor, hidden: torch.Tensor | None = None):
        """inputs [B, T, in], avail [B, T, A] -> (log π [B, T, A], hidden [1, B, H])."""
        out, hidden = self.rnn(torch.relu(self.fc1(inputs)), hidden)
        return masked_log_softmax(self.fc2(out), avail), hidden


def policy_inputs(obs: torch.Tensor, last_actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """obs [B, T, N, O] ‖ one-hot last action (zeros at t = 0, last_actions −1) ‖ one-hot agent id."""
    last = F.one_hot(last_actions.clamp(min=0), n_actions).float() * (last_actions >= 0)[..., None]
    ids = torch.eye(obs.shape[2], device=obs.device).expand(*obs.shape[:3], obs.shape[2])
    return torch.cat([obs, last, ids], -1)


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
# Data: whole episodes, and the time steps that are transitions
# ---------------------------------------------------------------------------------------
def episode_tensors(arrays: dict, device) -> dict:
    """CFCQL's per-episode arrays as tensors [E, T, ...]; `valid` marks the transitions t < L."""
    filled = torch.as_tensor(arrays["filled"], device=device)
    actions = torch.as_tensor(arrays["actions"], device=device)
    return {
        "state": torch.as_tensor(arrays["state"], device=device),
        "obs": torch.as_tensor(arrays["obs"], device=device),
        "actions": actions,
        "avail": torch.as_tensor(arrays["avail_actions"], device=device).bool(),
        "last_actions": torch.cat([torch.full_like(actions[:, :1], -1), actions[:, :-1]], 1),
        "reward": torch.as_tensor(arrays["reward"], device=device),
        "done": torch.as_tensor(arrays["terminated"], device=device).float(),
        "valid": torch.cat([filled[:, 1:], torch.zeros_like(filled[:, :1])], 1).bool(),  # t < L: filled at t + 1
        "length": filled.sum(1) - 1,
    }


def episode_batch(data: dict, idx: torch.Tensor) -> dict:
    """Episodes idx, cut to the longest of them (+1 for its terminal step), with the policies' inputs."""
    T = int(data["length"][idx].max()) + 1
    batch = {k: v[idx, :T] for k, v in data.items() if k != "length"}
    batch["inputs"] = policy_inputs(batch["obs"], batch["last_actions"], batch["avail"].shape[-1])
    return batch


def unroll(policy: RecurrentPolicy, batch: dict, i: int) -> torch.Tensor:
    """log π^i(·|τ^i_t) for every time step of a batch of whole episodes [B, T, A] (hidden state from t = 0)."""
    return policy(batch["inputs"][:, :, i], batch["avail"][:, :, i])[0]


def taken(logp: torch.Tensor, batch: dict, i: int) -> torch.Tensor:
    """log π^i(a^i_t|τ^i_t) of the dataset's action at every time step [B, T]."""
    return logp.gather(-1, batch["actions"][:, :, i, None]).squeeze(-1)


# ---------------------------------------------------------------------------------------
# The algorithm's steps
# ---------------------------------------------------------------------------------------
def behaviour_cloning(data, behaviours, joint_behaviour, args, generator):
    """Eq. 21 and 22: maximum likelihood of the dataset actions, unavailable actions masked: µ^i over
    whole episodes, µ^-i on --batch-size transitions drawn from them."""
    n_agents = data["actions"].shape[2]
    optimiser = adam([p for m in [*behaviours, joint_behaviour] for p in m.parameters()], args.learning_rate)
    for _ in range(args.bc_updates):
        idx = torch.randint(
            len(data["reward"]), (args.batch_episodes,), generator=generator, device=data["reward"].device
        )
        batch = episode_batch(data, idx)
        valid = batch["valid"]
        steps = torch.randint(int(valid.sum()), (args.batch_size,), generator=generator, device=valid.device)
        state, actions, avail = (batch[k][valid][steps] for k in ("state", "actions", "avail"))
        loss = 0.0
        for i in range(n_agents):
            loss = loss - taken(unroll(behaviours[i], batch, i), batch, i)[valid].mean()
            loss = loss - joint_behaviour.log_prob(state, actions, avail, i).mean() / (n_agents - 1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return float(loss.detach())


@torch.no_grad()
def behaviour_tables(data, behaviours, joint_behaviour, chunk: int = 256):
    """µ is fixed after BC: tabulate log µ^i(·|τ^i_t) [E, T, N, A] and log µ^-i(a^-i_t|s_t) [E, T, N]
    (the latter at the transitions only: it is the costly one, N(N−1) conditionals per step)."""
    E, T, n_agents, n_actions = data["avail"].shape
    device = data["reward"].device
    data["log_mu"] = torch.zeros(E, T, n_agents, n_actions, device=device)
    data["log_mu_others"] = torch.zeros(E, T, n_agents, device=device)
    for start in range(0, E, chunk):
        idx = torch.arange(start, min(start + chunk, E), device=device)
        batch = {
            "inputs": policy_inputs(data["obs"][idx], data["last_actions"][idx], n_actions),
            "avail": data["avail"][idx],
        }
        for i in range(n_agents):
            data["log_mu"][idx, :, i] = unroll(behaviours[i], batch, i)
    where = data["valid"].nonzero(as_tuple=True)
    for start in range(0, len(where[0]), 16 * chunk):
        e, t = where[0][start : start + 16 * chunk], where[1][start : start + 16 * chunk]
        for i in range(n_agents):
            data["log_mu_others"][e, t, i] = joint_behaviour.log_prob(
                data["state"][e, t], data["actions"][e, t], data["avail"][e, t], i
            )


def importance_ratio(log_pi_taken: torch.Tensor, log_mu_others: torch.Tensor, i: int) -> torch.Tensor:
    """Eq. 23: log ρ^i = (1/(N−1)) [Σ_{j≠i} log π^j(a^j|τ^j) − log µ^-i(a^-i|s)] (geometric mean, log space).
    log_pi_taken [..., N] holds every agent's current log π of its dataset action."""
    n_agents = log_pi_taken.shape[-1]
    others = log_pi_taken.sum(-1) - log_pi_taken[..., i]
    return (others - log_mu_others[..., i]) / (n_agents - 1)


def resample(log_rho: torch.Tensor, valid: torch.Tensor, args, generator) -> torch.Tensor:
    """Importance resampling (Schlegel et al. 2019): --batch-size time steps of the batch drawn ∝ ρ
    among its transitions; returns flat indices into [B * T]."""
    weights = torch.softmax(log_rho.masked_fill(~valid, -torch.inf).flatten(), 0)
    return torch.multinomial(weights, args.batch_size, replacement=True, generator=generator)


@torch.no_grad()
def soft_values(batch, logps, target_critics, alpha: float, beta: float) -> torch.Tensor:
    """Eq. 24's soft value of every slot of the batch, every agent [B, T, N]:
    V^i(s_t) = Σ_a π^i(a|τ^i_t) Q̄^i(s_t, a) − α KL(π^i‖µ^i)(τ^i_t) + β H(π^i)(τ^i_t), with each agent's
    policy before its update in this iteration (logps) and one target-critic forward over all the states."""
    values = []
    for i, (logp, target_critic) in enumerate(zip(logps, target_critics)):
        pi = logp.exp()
        kl = (pi * (logp - batch["log_mu"][:, :, i])).sum(-1)
        entropy = -(pi * logp).sum(-1)
        values.append((pi * target_critic(batch["state"])).sum(-1) - alpha * kl + beta * entropy)
    return torch.stack(values, -1)


def lambda_returns(reward, done, valid, values, gamma: float, td_lambda: float) -> torch.Tensor:
    """The critics' targets [B, T, N]: λ-returns of the soft value along each episode of the batch,
        G_t = r_t + γ (1 − d_t) [(1 − λ) V_{t+1} + λ G_{t+1}],
    where G_{t+1} is V_{t+1} when t + 1 is not a transition (the last state of an episode cut before
    it terminated). λ = 0 is Eq. 24's one-step target; λ = 1 the discounted return, bootstrapped once
    at a cut. reward, done, valid [B, T]; values [B, T, N]. Slots that are not transitions hold junk."""
    returns = torch.zeros_like(values)
    next_return = values[:, -1]
    for t in range(values.shape[1] - 2, -1, -1):  # a reverse scan over time; agents and episodes at once
        next_value = values[:, t + 1]
        ahead = torch.where(valid[:, t + 1, None], (1 - td_lambda) * next_value + td_lambda * next_return, next_value)
        returns[:, t] = reward[:, t, None] + gamma * (1 - done[:, t, None]) * ahead
        next_return = returns[:, t]
    return returns


def critic_loss(batch, steps, i: int, critic, targets, args) -> torch.Tensor:
    """Eq. 24 at the resampled steps: squared error to the λ-return targets [B, T] of agent i plus
    α_CQL (logsumexp Q − E_µ Q)."""
    T = batch["reward"].shape[1]
    b, t = steps // T, steps % T
    state, avail, a = batch["state"][b, t], batch["avail"][b, t, i], batch["actions"][b, t, i]
    q = critic(state)
    td = F.mse_loss(q.gather(1, a[:, None]).squeeze(1), targets[b, t])
    cql = (torch.logsumexp(q.masked_fill(~avail, -1e9), -1) - (batch["log_mu"][b, t, i].exp() * q).sum(-1)).mean()
    return td + args.cql_alpha * cql


def actor_loss(batch, steps, i: int, logp, target_critic, alpha: float, beta: float, args) -> torch.Tensor:
    """Eq. 20 at the resampled steps: −E_{D_ρ}[w log π^i(a^i|τ^i)], only dataset actions enter log π.
    logp: agent i's log π [B, T, A], unrolled with gradients."""
    T = batch["reward"].shape[1]
    b, t = steps // T, steps % T
    a = batch["actions"][b, t, i]
    logp = logp[b, t]
    with torch.no_grad():
        q = target_critic(batch["state"][b, t])
        advantage = q.gather(1, a[:, None]).squeeze(1) - (logp.exp() * q).sum(-1)
        log_w = (advantage - beta * batch["log_mu"][b, t, i].gather(1, a[:, None]).squeeze(1)) / (alpha + beta)
        weight = log_w.clamp(max=np.log(args.weight_clip)).exp()
    return -(weight * logp.gather(1, a[:, None]).squeeze(1)).mean()


def mean_kl(batch, logps) -> torch.Tensor:
    """Mean over agents of E_τ KL(π^i(·|τ) || µ^i(·|τ)) over the batch's transitions (what Eq. 25 constrains)."""
    valid = batch["valid"]
    kls = [(logp.exp() * (logp - batch["log_mu"][:, :, i])).sum(-1)[valid].mean() for i, logp in enumerate(logps)]
    return torch.stack(kls).mean()


def alpha_loss(log_alpha: torch.Tensor, kl: torch.Tensor, target_kl: float) -> torch.Tensor:
    """Eq. 25 as a Lagrangian: gradient descent raises α while KL > D̄_KL (the paper prints the opposite sign)."""
    return log_alpha * (target_kl - kl.detach())


@torch.no_grad()
def expected_advantages(batch, logps, target_critics) -> np.ndarray:
    """Semi-greedy order (Wang et al. 2023): E_D[Q̄^i(s,a^i) − Σ_a π^i(a|τ) Q̄^i(s,a)] per agent."""
    valid = batch["valid"]
    state = batch["state"][valid]
    out = []
    for i, (logp, critic) in enumerate(zip(logps, target_critics)):
        q = critic(state)
        pi = logp[valid].exp()
        out.append(float((q.gather(1, batch["actions"][valid][:, i, None]).squeeze(1) - (pi * q).sum(-1)).mean()))
    return np.array(out)


# The critic's report: time buckets [start, end) of an episode, and the steps its headline figures pool
CRITIC_BUCKETS = ((0, 1), (1, 5), (5, 15), (15, 40), (40, 10**9))
CRITIC_FROM_STEP = 5


def probe_episodes(data: dict, count: int, gamma: float) -> dict:
    """A fixed set of the dataset's episodes (evenly spaced over the file, so both halves of a mixed
    dataset) with the data's own discounted return-to-go G_t = Σ_{k≥t} γ^{k−t} r_k [E, T]."""
    idx = torch.linspace(
        0, len(data["reward"]) - 1, min(count, len(data["reward"])), device=data["reward"].device
    ).long()
    probe = episode_batch(data, idx)
    no_value = torch.zeros_like(probe["reward"])[..., None]  # G_t is the λ = 1 return with nothing to bootstrap
    probe["return_to_go"] = lambda_returns(probe["reward"], probe["done"], probe["valid"], no_value, gamma, 1.0)[..., 0]
    return probe


@torch.no_grad()
def critic_report(probe: dict, target_critics) -> dict:
    """Does the critic know the data's values? Q̄^i(s_t, a^i_t) against the return-to-go G_t of the
    probe episodes, pooled over agents: mean Q, mean G, bias Q − G and correlation, on the steps from
    CRITIC_FROM_STEP on (the headline) and per time bucket. NaN where a bucket is empty or constant."""
    # [E, T, N]
    q = torch.stack(
        [
            critic(probe["state"]).gather(-1, probe["actions"][:, :, i, None]).squeeze(-1)
            for i, critic in enumerate(target_critics)
        ],
        -1,
    )
    g = probe["return_to_go"][..., None].expand_as(q)
    t = torch.arange(q.shape[1], device=q.device)[None, :, None].expand_as(q)
    valid = probe["valid"][..., None].expand_as(q)

    def stats(mask) -> dict:
        qs, gs = q[mask], g[mask]
        corr = torch.corrcoef(torch.stack([qs, gs]))[0, 1] if len(qs) > 1 else torch.tensor(float("nan"))
        mean_q, mean_g = float(qs.mean()), float(gs.mean())
        return {"q": mean_q, "return": mean_g, "bias": mean_q - mean_g, "corr": float(corr), "steps": int(mask.sum())}

    report = stats(valid & (t >= CRITIC_FROM_STEP))
    report["relative_bias"] = report["bias"] / abs(report["return"]) if report["return"] else float("nan")
    report["buckets"] = {
        f"t{start}-{end if end < 10**9 else 'end'}": stats(valid & (t >= start) & (t < end))
        for start, end in CRITIC_BUCKETS
    }
    return report


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
def act(policies, obs, avail, last_actions, hidden, greedy: bool, generator, device):
    """One step of every agent's recurrent policy for B battles: obs [B, N, O], avail [B, N, A], last [B, N]."""
    n_actions = avail.shape[-1]
    inputs = policy_inputs(
        torch.as_tensor(obs, device=device)[:, None], torch.as_tensor(last_actions, device=device)[:, None], n_actions
    )
    avail = torch.as_tensor(avail, device=device)[:, None]
    actions = []
    for i, policy in enumerate(policies):
        logp, hidden[i] = policy(inputs[:, :, i], avail[:, :, i], hidden[i])
        logp = logp[:, 0]
        actions.append(logp.argmax(-1) if greedy else torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1))
    return torch.stack(actions, 1).cpu().numpy()


@torch.no_grad()
def evaluate(
    policies,
    map_name: str,
    episodes: int,
    greedy: bool,
    seed: int,
    generator,
    device,
    backend: str = "builtin",
    video: str | None = None,
):
    """Win rate and mean return over `episodes` battles: on the built-in simulator all at once
    (battle k uses simulator seed `seed` + k), in StarCraft II one after another. With `video`, the
    first battle is also drawn step by step into that GIF."""
    if backend == "sc2":
        env, wins, returns = make_env(map_name, "sc2", seed), [], []  # one game, one episode after another
        frames = []
        for episode in range(episodes):
            env.reset()
            hidden, last, total, terminated, info = (
                [None] * len(policies),
                np.full((1, env.n_agents), -1),
                0.0,
                False,
                {},
            )
            while not terminated:
                avail = np.array(env.get_avail_actions())[None]
                last = act(policies, np.array(env.get_obs())[None], avail, last, hidden, greedy, generator, device)
                reward, terminated, info = env.step(last[0])
                total += reward
                if video and episode == 0:
                    frames.append(env.render(mode="rgb_array"))
            wins.append(bool(info.get("battle_won", False)))
            returns.append(total)
        env.close()
        if video:
            write_gif(frames, video)
        return float(np.mean(wins)), float(np.mean(returns))
    battles = SMACBatch(map_name, episodes, seed=seed, auto_reset=False)
    obs, _, avail = battles.reset()
    hidden, last = [None] * len(policies), np.full((episodes, battles.n_agents), -1)
    returns, won, running = np.zeros(episodes), np.zeros(episodes, bool), np.ones(episodes, bool)
    frames = [battles.render(0)] if video else None
    while running.any():
        last = act(policies, obs, avail, last, hidden, greedy, generator, device)
        obs, _, avail, reward, terminated, info = battles.step(last)
        if frames is not None and running[0]:
            frames.append(battles.render(0))
        returns += reward * running
        won |= info["battle_won"] & running
        running &= ~terminated
    if video:
        write_gif(frames, video)
    return float(won.mean()), float(returns.mean())


# Arguments that may differ between a checkpoint and the run that resumes it.
RESUMABLE = {
    "num_updates",
    "resume",
    "evaluate",
    "capture_video",
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
    "env_backend",
    "log_interval",
    "critic_probe_episodes",
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
    "critic_history",
    "best_win_rate",
    "bc_win_rate",
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
            f"{flag} {path!r} is not a readable InSPO SMAC checkpoint ({type(error).__name__}: {error})"
        ) from None
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise InputError(f"{flag} {path!r} lacks {', '.join(missing)}; accepted: a checkpoint.pt this script wrote")
    return state


def load_checkpoint(path: str, args: Args) -> dict:
    state = read_checkpoint(path, "--resume")
    config = state["config"]
    for key, value in asdict(args).items():
        if key not in RESUMABLE and config.get(key) != value:
            raise InputError(
                f"--resume {path!r} was written with --{key.replace('_', '-')} {config.get(key)!r}, "
                f"this run has {value!r}; accepted: the checkpoint's configuration"
            )
    if state["iteration"] >= args.num_updates:
        raise InputError(
            f"--resume {path!r} is at iteration {state['iteration']}, --num-updates {args.num_updates} adds nothing; "
            f"accepted: --num-updates > {state['iteration']}"
        )
    return state


def load_dataset(args: Args) -> tuple[dict, dict]:
    """The dataset's arrays and card: CFCQL's file when --dataset-file is given, else generated and cached."""
    if args.dataset_file is not None:
        arrays = load_h5(args.dataset_file, args.map)
        card = {
            "map": args.map,
            "dataset": args.dataset,
            "source": args.dataset_file,
            **summarise(episode_stats(arrays, map_sizes(args.map))),
        }
        return arrays, card
    path, card = load_or_make(args.map, args.dataset, args.dataset_seed, args.cache_dir, args.dataset_episodes)
    return load_h5(path, args.map), {**card, "source": path}


def video_path(run_dir: str, who: str) -> str:
    """runs/<run_name>/videos/<who>.gif, its folder made."""
    os.makedirs(os.path.join(run_dir, "videos"), exist_ok=True)
    return os.path.join(run_dir, "videos", f"{who}.gif")


def evaluate_checkpoint(args: Args) -> dict:
    """--evaluate: a run's π and µ from its checkpoint on the battles of its final evaluation (the same
    simulator seeds, and the checkpoint's evaluation generator for sampled actions), with no training."""
    state = read_checkpoint(args.evaluate, "--evaluate")
    config = state["config"]
    sizes = map_sizes(config["map"])
    n_agents, n_actions = sizes["n_agents"], sizes["n_actions"]
    in_dim = sizes["obs_shape"] + n_actions + n_agents
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    try:
        teams = {}
        for who in ("policies", "behaviours"):
            teams[who] = [RecurrentPolicy(in_dim, n_actions, config["rnn_hidden"]).to(device) for _ in range(n_agents)]
            for network, saved in zip(teams[who], state[who], strict=True):
                network.load_state_dict(saved)
    except (RuntimeError, ValueError, KeyError) as error:
        raise InputError(
            f"--evaluate {args.evaluate!r} does not hold {config['map']}'s networks ({type(error).__name__}: {error})"
        ) from None
    if args.env_backend == "sc2":
        make_env(config["map"], "sc2").close()
    generator = torch.Generator(device=device).manual_seed(config["seed"] + 10_000)
    if state["device"] == device.type:
        generator.set_state(state["eval_generator"])
    eval_seed = 50_000_000 + 100_000 * config["seed"]  # the run's evaluation battles
    run_dir = os.path.dirname(os.path.abspath(args.evaluate))
    results = {}
    with torch.no_grad():
        for who, label in (("policies", "inspo"), ("behaviours", "bc")):
            results[label] = evaluate(
                teams[who],
                config["map"],
                args.final_eval_episodes,
                args.eval_greedy,
                eval_seed,
                generator,
                device,
                args.env_backend,
                video_path(run_dir, f"{label}_evaluate") if args.capture_video else None,
            )
    mode = "greedy" if args.eval_greedy else "stochastic"
    evaluation = {
        "checkpoint": os.path.abspath(args.evaluate),
        "iteration": state["iteration"],
        "map": config["map"],
        "dataset": config["dataset"],
        "episodes": args.final_eval_episodes,
        "eval_greedy": args.eval_greedy,
        "env_backend": args.env_backend,
        "win_rate": results["inspo"][0],
        "return": results["inspo"][1],
        "bc_win_rate": results["bc"][0],
        "bc_return": results["bc"][1],
    }
    path = os.path.join(run_dir, "evaluation.json")
    with open(path + ".tmp", "w") as f:
        json.dump(evaluation, f, indent=2)
    os.replace(path + ".tmp", path)
    print(
        f"smac {config['map']} {config['dataset']} (iteration {state['iteration']}): win rate "
        f"{evaluation['win_rate']:.3f}, return {evaluation['return']:.2f} ({mode}, {args.final_eval_episodes} "
        f"battles), BC {evaluation['bc_win_rate']:.3f} ({evaluation['bc_return']:.2f})"
    )
    print(f"evaluation: {path}")
    return evaluation


def main(args: Args) -> dict:
    args = with_presets(args)
    check_args(args)
    if args.evaluate is not None:
        return evaluate_checkpoint(args)
    checkpoint = load_checkpoint(args.resume, args) if args.resume else None
    if args.env_backend == "sc2":
        make_env(args.map, "sc2").close()  # fails now, with SMAC's install line, rather than after training
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
    eval_seed = 50_000_000 + 100_000 * args.seed  # evaluation battles: never a dataset's

    arrays, card = load_dataset(args)
    if checkpoint:
        run_name, run_dir = checkpoint["run_name"], os.path.join(args.runs_dir, checkpoint["run_name"])
        os.makedirs(run_dir, exist_ok=True)
    else:  # a directory of its own (the runs directory was proven writable in check_args)
        run_name, run_dir = new_run_dir(
            args.runs_dir, f"smac_{args.map}_{args.dataset}__{args.exp_name}__{args.seed}__{int(time.time())}"
        )
    print(format_card(card) if "transitions" in card else card)
    data = episode_tensors(arrays, device)
    del arrays
    n_agents, n_actions = data["avail"].shape[2:]
    state_dim, obs_dim = data["state"].shape[2], data["obs"].shape[3]
    in_dim = obs_dim + n_actions + n_agents
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
        behaviours = [RecurrentPolicy(in_dim, n_actions, args.rnn_hidden).to(device) for _ in range(n_agents)]
        joint_behaviour = JointBehaviour(state_dim, n_agents, n_actions, args.hidden_dim).to(device)
        policies = [RecurrentPolicy(in_dim, n_actions, args.rnn_hidden).to(device) for _ in range(n_agents)]
        critics = [Critic(state_dim, n_actions, args.hidden_dim).to(device) for _ in range(n_agents)]
        target_critics = [Critic(state_dim, n_actions, args.hidden_dim).to(device) for _ in range(n_agents)]
    policy_optimisers = [adam(p.parameters(), args.learning_rate) for p in policies]
    critic_optimisers = [adam(c.parameters(), args.learning_rate) for c in critics]
    log_alpha = torch.tensor(np.log(max(args.alpha, 1e-8)), dtype=torch.float32, device=device, requires_grad=True)
    alpha_optimiser = torch.optim.Adam([log_alpha], lr=args.alpha_lr)
    alpha, beta, first, history, best_win_rate = args.alpha, args.beta_0, 1, [], -np.inf

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
        alpha, beta, history, best_win_rate = (
            checkpoint["alpha"],
            checkpoint["beta"],
            checkpoint["history"],
            checkpoint["best_win_rate"],
        )
        first = checkpoint["iteration"] + 1
        generator.set_state(checkpoint["generator"])
        eval_generator.set_state(checkpoint["eval_generator"])
        np_rng.bit_generator.state = checkpoint["np_rng"]
        print(f"resumed {run_name} at iteration {checkpoint['iteration']}")
    behaviour_tables(data, behaviours, joint_behaviour)
    probe = probe_episodes(data, args.critic_probe_episodes, args.gamma)
    critic_history = checkpoint["critic_history"] if checkpoint else []
    if checkpoint is None:
        bc_win_rate, bc_return = evaluate(
            behaviours,
            args.map,
            args.final_eval_episodes,
            args.eval_greedy,
            eval_seed,
            eval_generator,
            device,
            args.env_backend,
            video_path(run_dir, "bc") if args.capture_video else None,
        )
    else:
        bc_win_rate, bc_return = checkpoint["bc_win_rate"], checkpoint["bc_return"]

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
            "critic_history": critic_history,
            "best_win_rate": best_win_rate,
            "bc_win_rate": bc_win_rate,
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
        logging = evaluating or iteration % args.log_interval == 0
        q_losses, pi_losses = [], []
        idx = torch.randint(len(data["reward"]), (args.batch_episodes,), generator=generator, device=device)
        batch = episode_batch(data, idx)
        # every agent's policy unrolled over the episodes, before this iteration's updates
        with torch.no_grad():
            logps = [unroll(policies[j], batch, j) for j in range(n_agents)]
        log_pi_taken = torch.stack([taken(logp, batch, j) for j, logp in enumerate(logps)], -1)  # [B, T, N]
        advantages = expected_advantages(batch, logps, target_critics) if args.update_order == "semi-greedy" else None
        # line 4: a permutation i_1:N of the agents (random; --update-order fixed or semi-greedy)
        order = update_order(args, n_agents, np_rng, advantages)
        # every agent's critic target, from the start-of-iteration policies and the target critics
        targets = lambda_returns(
            batch["reward"],
            batch["done"],
            batch["valid"],
            soft_values(batch, logps, target_critics, alpha, beta),
            args.gamma,
            args.td_lambda,
        )
        # sequential vs simultaneous: ρ of Eq. 23 and the steps resampled ∝ ρ are made for each agent just
        # before its update, from its teammates' policies as updated so far this iteration (InSPO);
        # --no-sequential makes them all from the start-of-iteration policies (the ablation of Fig. 5b)
        logps_after = list(logps)
        steps = (
            {}
            if args.sequential
            else {
                i: resample(importance_ratio(log_pi_taken, batch["log_mu_others"], i), batch["valid"], args, generator)
                for i in order
            }
        )
        for i in order:  # line 5: for n = 1, ..., N
            if i not in steps:
                steps[i] = resample(
                    importance_ratio(log_pi_taken, batch["log_mu_others"], i), batch["valid"], args, generator
                )
            # line 3's local critic Q^i: Eq. 24 toward the λ-returns (agent i's policy before its update)
            q_loss = critic_loss(batch, steps[i], i, critics[i], targets[..., i], args)
            critic_optimisers[i].zero_grad()
            q_loss.backward()
            critic_optimisers[i].step()
            q_losses.append(q_loss.detach())
            # line 6: update π^i by Eq. 13, in practice the in-sample extraction of Eq. 20 (recurrent unroll)
            pi_loss = actor_loss(
                batch, steps[i], i, unroll(policies[i], batch, i), target_critics[i], alpha, beta, args
            )
            policy_optimisers[i].zero_grad()
            pi_loss.backward()
            policy_optimisers[i].step()
            pi_losses.append(pi_loss.detach())
            with torch.no_grad():
                logps_after[i] = unroll(policies[i], batch, i)
            if args.sequential:  # the later agents' ρ sees agent i's new policy
                log_pi_taken[..., i] = taken(logps_after[i], batch, i)
        with torch.no_grad():
            for critic, target in zip(critics, target_critics):  # Polyak: θ̄ ← θ̄ + τ (θ − θ̄)
                for target_param, param in zip(target.parameters(), critic.parameters()):
                    target_param.lerp_(param, args.tau)
        # after the agents (lines 7-8 end the loops): auto-tuned α, Eq. 25
        if args.autotune_alpha or logging:
            with torch.no_grad():
                kl = mean_kl(batch, logps_after)
        if args.autotune_alpha:
            a_loss = alpha_loss(log_alpha, kl, args.target_kl)
            alpha_optimiser.zero_grad()
            a_loss.backward()
            alpha_optimiser.step()
            alpha = float(log_alpha.detach().exp())
        # and the decaying entropy temperature β
        beta *= args.beta_decay

        if logging:  # means over agents
            writer.add_scalar("losses/critic_loss", float(torch.stack(q_losses).mean()), iteration)
            writer.add_scalar("losses/actor_loss", float(torch.stack(pi_losses).mean()), iteration)
            writer.add_scalar("charts/alpha", alpha, iteration)
            writer.add_scalar("charts/beta", beta, iteration)
            writer.add_scalar("charts/kl", float(kl), iteration)
        if evaluating:
            win_rate, eval_return = evaluate(
                policies,
                args.map,
                args.eval_episodes,
                args.eval_greedy,
                eval_seed + iteration,
                eval_generator,
                device,
                args.env_backend,
            )
            best_win_rate = max(best_win_rate, win_rate)
            history.append((iteration, win_rate, eval_return, time.time() - start))
            writer.add_scalar("eval/win_rate", win_rate, iteration)
            writer.add_scalar("eval/return", eval_return, iteration)
            critic = critic_report(probe, target_critics)
            critic_history.append({"iteration": iteration, **critic})
            for key in ("corr", "bias", "relative_bias", "q", "return"):
                writer.add_scalar(f"charts/critic_{key}", critic[key], iteration)
            for bucket, values in critic["buckets"].items():
                writer.add_scalar(f"charts/critic_bias_{bucket}", values["bias"], iteration)
                writer.add_scalar(f"charts/critic_corr_{bucket}", values["corr"], iteration)
        if iteration % args.checkpoint_interval == 0 or iteration == args.num_updates:
            save_checkpoint(os.path.join(run_dir, "checkpoint.pt"), checkpoint_state(iteration))

    final_win_rate, final_return = evaluate(
        policies,
        args.map,
        args.final_eval_episodes,
        args.eval_greedy,
        eval_seed,
        eval_generator,
        device,
        args.env_backend,
        video_path(run_dir, "inspo") if args.capture_video else None,
    )
    wall_time = time.time() - start
    summary = {
        "map": args.map,
        "dataset": args.dataset,
        "card": card,
        "eval_greedy": args.eval_greedy,
        "env_backend": args.env_backend,
        "final_win_rate": final_win_rate,
        "final_return": final_return,
        "best_win_rate": best_win_rate,
        "bc_win_rate": bc_win_rate,
        "bc_return": bc_return,
        "history": history,
        "critic": critic_history[-1],
        "critic_history": critic_history,
        "wall_time_s": wall_time,
        "num_updates": args.num_updates,
        "args": asdict(args),
    }
    writer.add_scalar("eval/final_win_rate", final_win_rate, args.num_updates)
    writer.close()
    path = os.path.join(run_dir, "summary.json")
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=2)  # an empty or constant bucket's correlation is NaN, written as NaN
    os.replace(path + ".tmp", path)
    critic = summary["critic"]
    print(
        f"critic (t >= {CRITIC_FROM_STEP}, {args.critic_probe_episodes} dataset episodes): "
        f"Q {critic['q']:.2f} against the return-to-go {critic['return']:.2f} "
        f"(bias {100 * critic['relative_bias']:+.0f} %), correlation {critic['corr']:.2f}"
    )
    mode = "greedy" if args.eval_greedy else "stochastic"
    print(
        f"smac {args.map} {args.dataset}: win rate {final_win_rate:.3f}, return {final_return:.2f} ({mode}, "
        f"{args.final_eval_episodes} battles; best {best_win_rate:.3f}), BC {bc_win_rate:.3f} ({bc_return:.2f}), "
        f"{wall_time:.1f} s"
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
