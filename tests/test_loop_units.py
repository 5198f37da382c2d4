"""The unit layer of the practical (network) loops of inspo_matrix.py and inspo_bridge.py: the
order of the steps inside an iteration, which batch feeds which loss, π⁰ = µ (recorded by spies
on one short iteration), the critic's target at a terminal step and the semi-greedy order's expected
advantages (closed form); and the update orders of all three scripts."""

import numpy as np
import pytest
import torch

import inspo_bridge
import inspo_matrix
import inspo_smac
from conftest import FixedPolicy, LinearCritic, install_spies, write_buffer


def bridge_buffer(path):
    """Three short Bridge episodes (the agents walk right and left), enough for one iteration."""
    n, slots = 3, 9
    actions = np.tile(np.array([[3, 4], [4, 3], [0, 0]] * 3)[:slots], (n, 1, 1))
    return write_buffer(
        str(path),
        np.zeros((n, slots, 8)),
        np.zeros((n, slots, 2, 8)),
        actions,
        np.full((n, slots), -0.1),
        np.zeros((n, slots)),
        np.ones((n, slots)),
        n_actions=5,
    )


def fingerprint(module) -> float:
    return float(sum(p.detach().double().sum() for p in module.parameters()))


def spy_run(module, args, monkeypatch):
    calls = []

    def importance_ratio(data, idx, policies, i):
        calls.append(("rho", i, [fingerprint(p) for p in policies]))
        return real["importance_ratio"](data, idx, policies, i)

    def resample(data, policies, i, args, generator):
        idx = real["resample"](data, policies, i, args, generator)
        calls.append(("resample", i, idx.clone()))
        return idx

    def critic_loss(data, idx, i, critic, target, policy, alpha, beta, args):
        with torch.no_grad():
            pi_is_mu = torch.allclose(
                policy(data["obs"][idx, i], data["avail"][idx, i]), data["log_mu"][idx, i], atol=1e-5
            )
        calls.append(("critic", i, idx.clone(), pi_is_mu))
        return real["critic_loss"](data, idx, i, critic, target, policy, alpha, beta, args)

    def actor_loss(data, idx, i, policy, target, alpha, beta, args):
        calls.append(("actor", i, idx.clone()))
        return real["actor_loss"](data, idx, i, policy, target, alpha, beta, args)

    real = install_spies(monkeypatch, module, importance_ratio, resample, critic_loss, actor_loss)
    module.main(args)
    return calls


def configurations(tmp_path, sequential):
    common = dict(
        num_updates=1,
        bc_updates=3,
        batch_size=16,
        hidden_dim=16,
        eval_episodes=2,
        final_eval_episodes=2,
        progress=False,
        runs_dir=str(tmp_path / "runs"),
        sequential=sequential,
        learning_rate=0.05,
    )
    return [
        (inspo_matrix, inspo_matrix.Args(game="xor", dataset="b", num_plays=60, **common)),
        (
            inspo_bridge,
            inspo_bridge.Args(dataset="optimal", dataset_dir=bridge_buffer(tmp_path / "buffer_optimal"), **common),
        ),
    ]


@pytest.mark.parametrize("script", ["matrix", "bridge"])
@pytest.mark.parametrize("sequential", [True, False])
def test_iteration_order_batches_and_pi0_equals_mu(tmp_path, monkeypatch, script, sequential):
    module, args = configurations(tmp_path, sequential)[0 if script == "matrix" else 1]
    calls = spy_run(module, args, monkeypatch)
    rhos = [c for c in calls if c[0] == "rho"]
    resamples = {c[1]: c[2] for c in calls if c[0] == "resample"}
    critics = [c for c in calls if c[0] == "critic"]
    actors = [c for c in calls if c[0] == "actor"]
    order = [c[1] for c in critics]
    assert sorted(order) == [0, 1] and [c[1] for c in actors] == order
    assert critics[0][3], "π^0 = µ: the first agent's policy must start as its behaviour model"
    for (_, i, critic_idx, _), (_, _, actor_idx) in zip(critics, actors):  # both losses on agent i's resampled batch
        assert torch.equal(critic_idx, resamples[i]) and torch.equal(actor_idx, resamples[i])
    start = rhos[0][2]
    first, second = order
    second_rho = next(c for c in rhos if c[1] == second)[2]
    if sequential:  # the second agent's ρ sees the first agent's new policy
        assert second_rho[first] != start[first]
    else:  # every ρ from the policies at the start of the iteration
        assert all(c[2] == start for c in rhos)


@pytest.mark.parametrize("module", [inspo_matrix, inspo_bridge])
def test_the_critic_target_at_a_terminal_step_is_the_reward(module):
    torch.manual_seed(0)
    n, obs_dim, n_actions = 4, 3, 2
    data = {
        "state": torch.randn(n, 3),
        "obs": torch.randn(n, 2, obs_dim),
        "next_state": torch.randn(n, 3),
        "next_obs": torch.randn(n, 2, obs_dim),
        "actions": torch.tensor([[0, 1], [1, 0], [1, 1], [0, 0]]),
        "avail": torch.ones(n, 2, n_actions),
        "next_avail": torch.ones(n, 2, n_actions),
        "reward": torch.tensor([1.0, -2.0, 0.5, 3.0]),
        "done": torch.tensor([1.0, 0.0, 1.0, 0.0]),
        "log_mu": torch.log(torch.full((n, 2, n_actions), 0.5)),
        "next_log_mu": torch.log(torch.full((n, 2, n_actions), 0.5)),
    }

    class Constant(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = torch.nn.Parameter(torch.tensor(float(value)))

        def forward(self, x):
            return self.value * torch.ones(len(x), n_actions)

    policy = module.Policy(obs_dim, n_actions, 8)
    args = module.Args(gamma=0.5, cql_alpha=0.0)
    loss = module.critic_loss(data, torch.tensor([0, 2]), 0, Constant(0.0), Constant(1e6), policy, 0.1, 0.0, args)
    assert float(loss.detach()) == pytest.approx((1.0**2 + 0.5**2) / 2)  # (0 − r)², no bootstrap through done
    loss = module.critic_loss(data, torch.tensor([1]), 0, Constant(0.0), Constant(2.0), policy, 0.0, 0.0, args)
    assert float(loss.detach()) == pytest.approx((-2.0 + 0.5 * 2.0) ** 2)  # r + γ Σ π Q' when not done (α = β = 0)


@pytest.mark.parametrize("module", [inspo_matrix, inspo_bridge])
def test_semi_greedy_expected_advantage_is_q_of_the_data_minus_the_policy_average(module):
    """E_D[Q̄^i(s, a^i) − Σ_a π^i(a|o^i) Q̄^i(s, a)] over the batch idx, per agent (Wang et al. 2023)."""
    state = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    data = {
        "state": state,
        "obs": torch.zeros(4, 2, 3),
        "avail": torch.ones(4, 2, 2),
        "actions": torch.tensor([[0, 1], [1, 1], [0, 0], [1, 0]]),
    }
    policies = [FixedPolicy([0.25, 0.75]), FixedPolicy([0.5, 0.5])]
    critics = [LinearCritic([[1.0, 3.0], [2.0, -1.0]]), LinearCritic([[0.0, 4.0], [1.0, 1.0]])]
    idx = torch.tensor([0, 1, 2])  # row 3 is outside the batch
    got = module.expected_advantages(data, idx, policies, critics)
    expected = []
    for i in range(2):
        q = state[idx] @ critics[i].w.detach()
        pi = policies[i].log_probs.exp()
        expected.append(float(np.mean([float(q[k, data["actions"][k, i]] - (pi * q[k]).sum()) for k in range(3)])))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert expected == pytest.approx([-0.5, 0.0])  # by hand: agent 0 (−1.5 − 0.75 + 0.75) / 3, agent 1 (2 + 0 − 2) / 3


@pytest.mark.parametrize("module", [inspo_matrix, inspo_bridge, inspo_smac])
def test_update_orders(module):
    """Algorithm 1, line 4: fixed 0..N-1; random: every permutation; semi-greedy: the largest expected
    advantage first, the rest random."""
    rng = np.random.default_rng(0)
    assert module.update_order(module.Args(update_order="fixed"), 4, rng) == [0, 1, 2, 3]
    orders = {tuple(module.update_order(module.Args(update_order="random"), 4, rng)) for _ in range(200)}
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders) and len(orders) > 12
    rests = set()
    for _ in range(30):
        order = module.update_order(module.Args(update_order="semi-greedy"), 4, rng, np.array([0.1, 0.7, -1.0, 0.3]))
        assert order[0] == 1 and sorted(order) == [0, 1, 2, 3]
        rests.add(tuple(order[1:]))
    assert len(rests) > 1


@pytest.mark.parametrize("module", [inspo_matrix, inspo_bridge, inspo_smac])
def test_the_mlp_has_three_hidden_relu_layers(module):
    """The critics', µ^-i's (and the matrix and Bridge policies') network: 3 ReLU layers (ALGORITHM.md, component 5;
    256 wide by default)."""
    net = module.mlp(7, 3, 16)
    assert [type(layer) for layer in net] == [torch.nn.Linear, torch.nn.ReLU] * 3 + [torch.nn.Linear]
    assert [(layer.in_features, layer.out_features) for layer in net if isinstance(layer, torch.nn.Linear)] == [
        (7, 16),
        (16, 16),
        (16, 16),
        (16, 3),
    ]
