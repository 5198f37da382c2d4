"""The unit layer of the practical (network) loops of inspo_matrix.py and inspo_bridge.py: the
order of the steps inside an iteration, which batch feeds which loss, π⁰ = µ (recorded by spies
on one short iteration), and the critic's target at a terminal step (closed form)."""

import numpy as np
import pytest
import torch

import inspo_bridge
import inspo_matrix
from conftest import install_spies, write_buffer


def bridge_buffer(path):
    """Three short Bridge episodes (the agents walk right and left), enough for one iteration."""
    n, slots = 3, 9
    actions = np.tile(np.array([[3, 4], [4, 3], [0, 0]] * 3)[:slots], (n, 1, 1))
    return write_buffer(str(path), np.zeros((n, slots, 8)), np.zeros((n, slots, 2, 8)), actions, np.full((n, slots), -0.1),
                        np.zeros((n, slots)), np.ones((n, slots)), n_actions=5)


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
            pi_is_mu = torch.allclose(policy(data["obs"][idx, i], data["avail"][idx, i]), data["log_mu"][idx, i], atol=1e-5)
        calls.append(("critic", i, idx.clone(), pi_is_mu))
        return real["critic_loss"](data, idx, i, critic, target, policy, alpha, beta, args)

    def actor_loss(data, idx, i, policy, target, alpha, beta, args):
        calls.append(("actor", i, idx.clone()))
        return real["actor_loss"](data, idx, i, policy, target, alpha, beta, args)

    real = install_spies(monkeypatch, module, importance_ratio, resample, critic_loss, actor_loss)
    module.main(args)
    return calls


def configurations(tmp_path, sequential):
    common = dict(num_updates=1, bc_updates=3, batch_size=16, hidden_dim=16, eval_episodes=2, final_eval_episodes=2,
                  progress=False, runs_dir=str(tmp_path / "runs"), sequential=sequential, learning_rate=0.05)
    return [(inspo_matrix, inspo_matrix.Args(game="xor", dataset="b", num_plays=60, **common)),
            (inspo_bridge, inspo_bridge.Args(dataset="optimal", dataset_dir=bridge_buffer(tmp_path / "buffer_optimal"), **common))]


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
    data = {"state": torch.randn(n, 3), "obs": torch.randn(n, 2, obs_dim), "next_state": torch.randn(n, 3),
            "next_obs": torch.randn(n, 2, obs_dim), "actions": torch.tensor([[0, 1], [1, 0], [1, 1], [0, 0]]),
            "avail": torch.ones(n, 2, n_actions), "next_avail": torch.ones(n, 2, n_actions),
            "reward": torch.tensor([1.0, -2.0, 0.5, 3.0]), "done": torch.tensor([1.0, 0.0, 1.0, 0.0]),
            "log_mu": torch.log(torch.full((n, 2, n_actions), 0.5)), "next_log_mu": torch.log(torch.full((n, 2, n_actions), 0.5))}

    class Constant(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = torch.nn.Parameter(torch.tensor(float(value)))

        def forward(self, x):
            return self.value * torch.ones(len(x), n_actions)

    policy = module.Policy(obs_dim, n_actions, 8)
    args = module.Args(gamma=0.5, cql_alpha=0.0)
    loss = module.critic_loss(data, torch.tensor([0, 2]), 0, Constant(0.0), Constant(1e6), policy, 0.1, 0.0, args)
    assert float(loss.detach()) == pytest.approx((1.0 ** 2 + 0.5 ** 2) / 2)  # (0 − r)², no bootstrap through done
    loss = module.critic_loss(data, torch.tensor([1]), 0, Constant(0.0), Constant(2.0), policy, 0.0, 0.0, args)
    assert float(loss.detach()) == pytest.approx((-2.0 + 0.5 * 2.0) ** 2)  # r + γ Σ π Q' when not done (α = β = 0)
