"""The unit layer of inspo_matrix.py and inspo_bridge.py (their algorithm functions are the same):
each component on a tiny hand-built batch of transitions whose answer is known, written out element
by element. A bug planted in any one line of these functions fails one of these tests."""

import math

import numpy as np
import pytest
import torch

import inspo_bridge
import inspo_matrix
from conftest import FixedPolicy, LinearCritic

MODULES = [inspo_matrix, inspo_bridge]
N_ROWS, N_AGENTS, A, S, OBS = 4, 3, 3, 2, 2


def hand_data() -> dict:
    """Four transitions of three agents; rows 0 and 2 end their episode (done), rows 1 and 3 run on."""
    g = torch.Generator().manual_seed(0)
    avail = torch.ones(N_ROWS, N_AGENTS, A)
    avail[1, 0, 2] = 0  # one unavailable action
    data = {
        "state": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]]),
        "next_state": torch.tensor([[0.5, 0.5], [1.0, 2.0], [3.0, 0.0], [-1.0, 1.0]]),
        "obs": torch.randn(N_ROWS, N_AGENTS, OBS, generator=g),
        "next_obs": torch.randn(N_ROWS, N_AGENTS, OBS, generator=g),
        "actions": torch.tensor([[0, 1, 2], [1, 1, 0], [2, 0, 1], [0, 2, 2]]),
        "avail": avail,
        "next_avail": torch.ones(N_ROWS, N_AGENTS, A),
        "reward": torch.tensor([1.0, -2.0, 0.5, 3.0]),
        "done": torch.tensor([1.0, 0.0, 1.0, 0.0]),
    }
    data["log_mu"] = torch.log_softmax(torch.randn(N_ROWS, N_AGENTS, A, generator=g), -1)
    data["next_log_mu"] = torch.log_softmax(torch.randn(N_ROWS, N_AGENTS, A, generator=g), -1)
    data["log_mu_others"] = torch.log(
        torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.05, 0.5], [0.25, 0.6, 0.15], [0.3, 0.3, 0.3]])
    )
    return data


PI = [[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.25, 0.25, 0.5]]
Q_WEIGHTS = [
    [[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]],
    [[0.0, 1.0, 2.0], [-1.0, 4.0, 0.5]],
    [[2.0, 2.0, -3.0], [1.0, 0.0, 1.0]],
]


@pytest.mark.parametrize("module", MODULES)
@torch.no_grad()
def test_importance_ratio_is_the_geometric_mean_of_eq_23(module):
    data, policies = hand_data(), [FixedPolicy(p) for p in PI]
    idx = torch.tensor([0, 2, 3])
    for i in range(N_AGENTS):
        got = module.importance_ratio(data, idx, policies, i)
        for k, row in enumerate(idx.tolist()):
            others = [j for j in range(N_AGENTS) if j != i]
            log_pi = sum(math.log(PI[j][int(data["actions"][row, j])]) for j in others)
            expected = (log_pi - float(data["log_mu_others"][row, i])) / (N_AGENTS - 1)
            assert float(got[k]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("module", MODULES)
def test_resample_draws_in_proportion_to_rho_from_a_uniform_pool(module):
    """Two agents, two rows: the teammate's action is 0 in row 0 and 1 in row 1, π^1 = (0.2, 0.8) and
    log µ^-0 equal, so agent 0's batch holds row 1 four times as often as row 0."""
    data = {
        "obs": torch.zeros(2, 2, 1),
        "avail": torch.ones(2, 2, 2),
        "actions": torch.tensor([[0, 0], [0, 1]]),
        "reward": torch.zeros(2),
        "log_mu_others": torch.zeros(2, 2),
    }
    policies = [FixedPolicy([0.5, 0.5]), FixedPolicy([0.2, 0.8])]
    args = module.Args(batch_size=20_000, pool_factor=4)
    picked = module.resample(data, policies, 0, args, torch.Generator().manual_seed(0))
    assert len(picked) == 20_000
    assert float((picked == 1).float().mean()) == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize("module", MODULES)
@torch.no_grad()
def test_critic_target_bootstraps_the_soft_value_only_where_the_episode_runs_on(module):
    """Eq. 24 on a batch that mixes terminated and running rows: y = r where done, else
    r + γ [Σ π Q̄(s') − α KL(π‖µ)(o') + β H(π)(o')]; the loss is the mean squared TD error."""
    data = hand_data()
    i, alpha, beta = 1, 0.3, 0.7
    policy = FixedPolicy(PI[i])
    critic, target = LinearCritic(Q_WEIGHTS[0]), LinearCritic(Q_WEIGHTS[2])
    args = module.Args(gamma=0.9, cql_alpha=0.0)
    idx = torch.tensor([0, 1, 2, 3, 1])
    pi = torch.tensor(PI[i])
    expected = []
    for row in idx.tolist():
        y = float(data["reward"][row])
        if not data["done"][row]:
            v = float((pi * target(data["next_state"][row])).sum())
            kl = float((pi * (pi.log() - data["next_log_mu"][row, i])).sum())
            entropy = float(-(pi * pi.log()).sum())
            y += 0.9 * (v - alpha * kl + beta * entropy)
        q = float(critic(data["state"][row])[data["actions"][row, i]])
        expected.append((q - y) ** 2)
    loss = module.critic_loss(data, idx, i, critic, target, policy, alpha, beta, args)
    assert float(loss) == pytest.approx(np.mean(expected), rel=1e-5)


@pytest.mark.parametrize("module", MODULES)
@torch.no_grad()
def test_cql_term_is_logsumexp_of_the_available_minus_the_behaviour_mean(module):
    data = hand_data()
    critic, i, idx = LinearCritic(Q_WEIGHTS[1]), 0, torch.tensor([0, 1, 3])
    policy = FixedPolicy(PI[i])
    with_cql = module.critic_loss(data, idx, i, critic, critic, policy, 0.1, 0.0, module.Args(cql_alpha=2.0))
    without = module.critic_loss(data, idx, i, critic, critic, policy, 0.1, 0.0, module.Args(cql_alpha=0.0))
    terms = []
    for row in idx.tolist():
        q = critic(data["state"][row])
        available = data["avail"][row, i] == 1  # row 1 leaves agent 0's action 2 out of the logsumexp
        terms.append(float(torch.logsumexp(q[available], 0) - (data["log_mu"][row, i].exp() * q).sum()))
    assert float(with_cql - without) == pytest.approx(2.0 * np.mean(terms), rel=1e-5)


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("alpha, beta, clip", [(0.5, 0.25, 100.0), (0.01, 0.0, 3.0)])
@torch.no_grad()
def test_actor_loss_weights_the_dataset_action_by_eq_20_clipped(module, alpha, beta, clip):
    """w = min(exp((Q̄(s,a) − Σ π Q̄(s,·) − β log µ(a)) / (α + β)), clip); loss −mean w log π(a). The
    second case has weights far above the clip (α = 0.01) and one below it."""
    data = hand_data()
    i = 2
    policy, target = FixedPolicy(PI[i]), LinearCritic(Q_WEIGHTS[1])
    idx = torch.tensor([0, 1, 2, 3])
    pi = torch.tensor(PI[i])
    expected, weights = [], []
    for row in idx.tolist():
        a = int(data["actions"][row, i])
        q = target(data["state"][row])
        advantage = float(q[a] - (pi * q).sum())
        weight = min(math.exp((advantage - beta * float(data["log_mu"][row, i, a])) / (alpha + beta)), clip)
        weights.append(weight)
        expected.append(-weight * math.log(PI[i][a]))
    loss = module.actor_loss(data, idx, i, policy, target, alpha, beta, module.Args(weight_clip=clip))
    assert float(loss) == pytest.approx(np.mean(expected), rel=1e-5)
    if clip == 3.0:
        assert weights.count(3.0) >= 2 and min(weights) < 3.0  # the clip bites on some rows, not all


@pytest.mark.parametrize("module", MODULES)
@torch.no_grad()
def test_mean_kl_is_the_closed_form_mean_over_agents(module):
    data = hand_data()
    policies = [FixedPolicy(p) for p in PI]
    idx = torch.tensor([0, 2, 3])
    per_agent = []
    for i in range(N_AGENTS):
        pi = torch.tensor(PI[i])
        per_agent.append(np.mean([float((pi * (pi.log() - data["log_mu"][row, i])).sum()) for row in idx.tolist()]))
    assert float(module.mean_kl(data, idx, policies)) == pytest.approx(np.mean(per_agent), rel=1e-5)


@pytest.mark.parametrize("module", MODULES)
def test_alpha_loss_raises_alpha_while_kl_exceeds_the_target(module):
    for kl, direction in ((0.5, 1), (0.01, -1)):
        log_alpha = torch.tensor(0.0, requires_grad=True)
        loss = module.alpha_loss(log_alpha, torch.tensor(kl), 0.18)
        loss.backward()
        assert -np.sign(float(log_alpha.grad)) == direction  # gradient descent moves log α this way
        assert float(log_alpha.grad) == pytest.approx(0.18 - kl)
