"""The unit layer of inspo_smac.py: each component on a tiny hand-built batch whose answer is known
in closed form, and the order of the steps inside an iteration recorded by spies. Well under a
second each, except the two spy tests (one short run each)."""

import math
import os

import numpy as np
import pytest
import torch

import inspo_smac
from conftest import LinearCritic, install_spies, tensorboard_scalars
from envs.smac import MAPS, SMACBatch
from envs.smac_data import DATASETS, H5Writer, map_sizes, rollout

B, T, N, A, S = 2, 4, 3, 4, 5  # episodes, time steps, agents, actions, state features


def hand_batch(done_at=None) -> dict:
    """Two episodes of 3 transitions (t = 0, 1, 2; slot 3 holds the final state)."""
    g = torch.Generator().manual_seed(0)
    avail = torch.ones(B, T, N, A, dtype=torch.bool)
    avail[:, :, :, 3] = False  # action 3 is never available
    batch = {
        "state": torch.randn(B, T, S, generator=g),
        "obs": torch.randn(B, T, N, 6, generator=g),
        "actions": torch.randint(0, 3, (B, T, N), generator=g),
        "avail": avail,
        "reward": torch.tensor([[1.0, 2.0, 3.0, 0.0], [0.5, 0.25, 4.0, 0.0]]),
        "done": torch.zeros(B, T),
        "valid": torch.tensor([[True, True, True, False]] * B),
    }
    if done_at is not None:
        batch["done"][:, done_at] = 1.0
    batch["log_mu"] = inspo_smac.masked_log_softmax(torch.randn(B, T, N, A, generator=g), avail)
    return batch


def TableCritic(seed: int) -> LinearCritic:
    """Q(s, ·) = a fixed random linear map of the state: its values are known exactly."""
    return LinearCritic(torch.randn(S, A, generator=torch.Generator().manual_seed(seed)))


ARGS = inspo_smac.Args(gamma=0.9, cql_alpha=0.0, weight_clip=100.0, batch_size=6)


def test_importance_ratio_is_the_geometric_mean_of_eq_23():
    log_pi = torch.log(torch.tensor([[[0.5, 0.25, 0.2]]]))  # [1, 1, N]
    log_mu_others = torch.log(torch.tensor([[[0.1, 0.4, 0.05]]]))
    for i in range(N):
        others = [j for j in range(N) if j != i]
        expected = (math.log(np.prod([[0.5, 0.25, 0.2][j] for j in others])) - math.log([0.1, 0.4, 0.05][i])) / (N - 1)
        assert inspo_smac.importance_ratio(log_pi, log_mu_others, i).item() == pytest.approx(expected, rel=1e-6)


def test_resample_draws_only_transitions_in_proportion_to_rho():
    valid = torch.tensor([[True, True, False], [True, False, False]])
    log_rho = torch.log(torch.tensor([[1.0, 3.0, 1e6], [4.0, 1e6, 1e6]]))  # huge ρ on padding must not count
    args = inspo_smac.Args(batch_size=80_000)
    steps = inspo_smac.resample(log_rho, valid, args, torch.Generator().manual_seed(0))
    counts = torch.bincount(steps, minlength=6).float() / len(steps)
    assert counts[[2, 4, 5]].sum() == 0
    torch.testing.assert_close(counts[[0, 1, 3]], torch.tensor([1 / 8, 3 / 8, 4 / 8]), atol=0.01, rtol=0)


def soft_value(batch, b, t, i, target, logp, alpha, beta):
    """Eq. 24's soft value at one slot, written out element by element."""
    pi = logp[b, t].exp()
    v = float((pi * target(batch["state"][b, t])).sum())
    kl = float((pi * (logp[b, t] - batch["log_mu"][b, t, i])).sum())
    entropy = float(-(pi * logp[b, t]).sum())
    return v - alpha * kl + beta * entropy


@torch.no_grad()
def test_soft_values_are_eq_24s_value_for_every_agent_and_slot():
    batch = hand_batch()
    targets = [TableCritic(10 + i) for i in range(N)]
    logps = [
        inspo_smac.masked_log_softmax(
            torch.randn(B, T, A, generator=torch.Generator().manual_seed(20 + i)), batch["avail"][:, :, i]
        )
        for i in range(N)
    ]
    alpha, beta = 0.3, 0.7
    values = inspo_smac.soft_values(batch, logps, targets, alpha, beta)
    assert values.shape == (B, T, N)
    for b in range(B):
        for t in range(T):
            for i in range(N):
                assert float(values[b, t, i]) == pytest.approx(
                    soft_value(batch, b, t, i, targets[i], logps[i], alpha, beta), rel=1e-5
                )


# Two episodes: the first terminates at t = 2 (3 transitions), the second is cut after 2 transitions
# (not terminated: slot 2 holds its last state, slot 3 is padding). γ = 0.9, two agents' values.
GAMMA = 0.9
REWARD = torch.tensor([[1.0, 2.0, 3.0, 0.0], [0.5, 0.25, 0.0, 0.0]])
DONE = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
VALID = torch.tensor([[True, True, True, False], [True, True, False, False]])
VALUES = torch.tensor(
    [[[10.0, -1.0], [20.0, -2.0], [30.0, -3.0], [40.0, -4.0]], [[5.0, 1.0], [6.0, 2.0], [7.0, 3.0], [8.0, 4.0]]]
)


def by_hand(lam: float) -> dict:
    """The λ-returns of the two episodes, written out: {(episode, t): [agent 0, agent 1]}."""
    out = {}
    for k in range(2):
        v = VALUES[:, :, k].tolist()
        g02 = 3.0  # terminated: the reward alone, no value after it
        g01 = 2.0 + GAMMA * ((1 - lam) * v[0][2] + lam * g02)
        g00 = 1.0 + GAMMA * ((1 - lam) * v[0][1] + lam * g01)
        g11 = 0.25 + GAMMA * v[1][2]  # cut: bootstrapped on the value of its last state, whatever λ
        g10 = 0.5 + GAMMA * ((1 - lam) * v[1][1] + lam * g11)
        for key, g in (((0, 0), g00), ((0, 1), g01), ((0, 2), g02), ((1, 0), g10), ((1, 1), g11)):
            out.setdefault(key, []).append(g)
    return out


@pytest.mark.parametrize("lam", [0.0, 0.6, 1.0])
def test_lambda_returns_of_a_terminated_and_a_cut_episode_by_hand(lam):
    returns = inspo_smac.lambda_returns(REWARD, DONE, VALID, VALUES, GAMMA, lam)
    for (b, t), expected in by_hand(lam).items():
        torch.testing.assert_close(returns[b, t], torch.tensor(expected), rtol=1e-6, atol=1e-5)
    if lam == 1.0:  # the discounted return of the terminated episode: no value enters
        assert returns[0, 0].tolist() == pytest.approx([1 + GAMMA * 2 + GAMMA**2 * 3] * 2)


@torch.no_grad()
def test_one_step_targets_are_eq_24_and_a_terminal_step_is_its_reward():
    """λ = 0 through the script's own soft values: r + γ(1 − d) V(s'), V as Eq. 24, for each agent."""
    batch = hand_batch(done_at=1)
    batch["done"][1, 1] = 0.0  # one episode ends at t = 1, the other runs on: a batch that mixes both
    targets = [TableCritic(10 + i) for i in range(N)]
    logps = [
        inspo_smac.masked_log_softmax(
            torch.randn(B, T, A, generator=torch.Generator().manual_seed(30 + i)), batch["avail"][:, :, i]
        )
        for i in range(N)
    ]
    values = inspo_smac.soft_values(batch, logps, targets, 0.3, 0.7)
    returns = inspo_smac.lambda_returns(batch["reward"], batch["done"], batch["valid"], values, ARGS.gamma, 0.0)
    for b in range(B):
        for t in range(3):
            for i in range(N):
                bootstrap = (
                    0.0
                    if batch["done"][b, t]
                    else ARGS.gamma * soft_value(batch, b, t + 1, i, targets[i], logps[i], 0.3, 0.7)
                )
                assert float(returns[b, t, i]) == pytest.approx(float(batch["reward"][b, t]) + bootstrap, rel=1e-5)


@torch.no_grad()
def test_critic_loss_is_the_squared_error_to_the_targets_at_the_drawn_steps():
    batch = hand_batch()
    critic = TableCritic(1)
    targets = torch.arange(B * T, dtype=torch.float32).reshape(B, T) / 3
    steps = torch.tensor([0, 1, 2, 5, 4, 1])
    i = 1
    expected = [
        (float(critic(batch["state"][b, t])[batch["actions"][b, t, i]]) - float(targets[b, t])) ** 2
        for b, t in (divmod(step, T) for step in steps.tolist())
    ]
    loss = inspo_smac.critic_loss(batch, steps, i, critic, targets, ARGS)
    assert float(loss) == pytest.approx(np.mean(expected), rel=1e-5)


def test_the_critic_learns_the_values_of_a_chain_in_a_small_budget():
    """A 12-step chain (state = one-hot of t, reward 1 per step, terminated at the end, one available
    action, so π = µ and the soft value is the value): V(s_t) = (1 − γ^(12−t)) / (1 − γ) in closed
    form. The script's target, loss and soft target update reach it in 100 updates (to 0.07; with one-step
    targets, λ ignored, the error is 0.9 after as many)."""
    length, gamma, n_agents = 12, 0.9, 2
    T_ = length + 1
    state = torch.eye(T_)[None]  # [1, T, S]
    avail = torch.zeros(1, T_, n_agents, 2, dtype=torch.bool)
    avail[..., 0] = True
    batch = {
        "state": state,
        "avail": avail,
        "actions": torch.zeros(1, T_, n_agents, dtype=torch.long),
        "reward": torch.cat([torch.ones(1, length), torch.zeros(1, 1)], 1),
        "done": torch.cat([torch.zeros(1, length - 1), torch.ones(1, 2)], 1),
        "valid": torch.arange(T_)[None] < length,
    }
    batch["log_mu"] = inspo_smac.masked_log_softmax(torch.zeros(1, T_, n_agents, 2), avail)
    logps = [batch["log_mu"][:, :, i] for i in range(n_agents)]
    args = inspo_smac.Args(gamma=gamma, cql_alpha=0.0, td_lambda=0.8, tau=0.1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        critics = [inspo_smac.Critic(T_, 2, 32) for _ in range(n_agents)]
        target_critics = [inspo_smac.Critic(T_, 2, 32) for _ in range(n_agents)]
    for critic, target in zip(critics, target_critics):
        target.load_state_dict(critic.state_dict())
    optimisers = [torch.optim.Adam(c.parameters(), lr=1e-2) for c in critics]
    steps = torch.arange(length)
    for _ in range(100):
        targets = inspo_smac.lambda_returns(
            batch["reward"],
            batch["done"],
            batch["valid"],
            inspo_smac.soft_values(batch, logps, target_critics, 0.1, 0.0),
            gamma,
            args.td_lambda,
        )
        for i in range(n_agents):
            loss = inspo_smac.critic_loss(batch, steps, i, critics[i], targets[..., i], args)
            optimisers[i].zero_grad()
            loss.backward()
            optimisers[i].step()
        with torch.no_grad():
            for critic, target in zip(critics, target_critics):
                for target_param, param in zip(target.parameters(), critic.parameters()):
                    target_param.lerp_(param, args.tau)
    exact = torch.tensor([(1 - gamma ** (length - t)) / (1 - gamma) for t in range(length)])
    with torch.no_grad():
        for critic in critics:
            torch.testing.assert_close(critic(state[0, :length])[:, 0], exact, atol=0.25, rtol=0)


@torch.no_grad()
def test_critic_report_compares_q_with_the_return_to_go():
    """A critic that outputs the return-to-go scores correlation 1 and bias 0; one that outputs half
    of it, bias −50 %; the return-to-go itself is the discounted sum to the episode's end."""
    E_, T_ = 3, 8
    lengths = [7, 5, 3]
    filled = np.zeros((E_, T_), np.int64)
    for e, n in enumerate(lengths):
        filled[e, : n + 1] = 1
    reward = np.zeros((E_, T_), np.float32)
    for e, n in enumerate(lengths):
        reward[e, :n] = np.arange(1, n + 1) * (e + 1)
    arrays = {
        "filled": filled,
        "actions": np.zeros((E_, T_, 2), np.int64),
        "obs": np.zeros((E_, T_, 2, 1), np.float32),
        "state": np.zeros((E_, T_, 1), np.float32),
        "avail_actions": np.ones((E_, T_, 2, 2), np.int32),
        "reward": reward,
        "terminated": np.zeros((E_, T_), np.uint8),
    }
    data = inspo_smac.episode_tensors(arrays, "cpu")
    probe = inspo_smac.probe_episodes(data, 10, 0.5)
    for e, n in enumerate(lengths):
        for t in range(n):
            expected = sum(0.5 ** (k - t) * reward[e, k] for k in range(t, n))
            assert float(probe["return_to_go"][e, t]) == pytest.approx(expected, rel=1e-6)
    probe["state"] = probe["return_to_go"][..., None].clone()  # the state holds its own return-to-go

    class Scaled(torch.nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, state):
            return self.scale * state.expand(*state.shape[:-1], 2)

    exact = inspo_smac.critic_report(probe, [Scaled(1.0), Scaled(1.0)])
    assert exact["corr"] == pytest.approx(1.0, abs=1e-5) and exact["bias"] == pytest.approx(0.0, abs=1e-5)
    assert exact["steps"] == 2 * (7 - inspo_smac.CRITIC_FROM_STEP)  # t >= 5 exists only in the first episode, 2 agents
    half = inspo_smac.critic_report(probe, [Scaled(0.5), Scaled(0.5)])
    assert half["relative_bias"] == pytest.approx(-0.5, rel=1e-5)
    first = half["buckets"]["t0-1"]
    assert first["return"] == pytest.approx(float(probe["return_to_go"][:, 0].mean()), rel=1e-6)
    assert first["q"] == pytest.approx(first["return"] / 2, rel=1e-6) and first["steps"] == 2 * 3


@torch.no_grad()  # values only: the losses' gradients are torch's business
def test_cql_term_is_logsumexp_of_the_available_minus_the_behaviour_mean():
    batch = hand_batch()
    critic = TableCritic(1)
    steps = torch.tensor([0, 6])
    args = inspo_smac.Args(gamma=0.9, cql_alpha=1.0)
    targets = torch.zeros(B, T)
    with_cql = inspo_smac.critic_loss(batch, steps, 1, critic, targets, args)
    without = inspo_smac.critic_loss(batch, steps, 1, critic, targets, inspo_smac.Args(gamma=0.9, cql_alpha=0.0))
    terms = []
    for step in steps.tolist():
        b, t = divmod(step, T)
        q = critic(batch["state"][b, t]).detach()
        terms.append(float(torch.logsumexp(q[:3], 0) - (batch["log_mu"][b, t, 1].exp() * q).sum()))
    assert float((with_cql - without).detach()) == pytest.approx(np.mean(terms), rel=1e-5)


@torch.no_grad()  # values only: the losses' gradients are torch's business
def test_actor_loss_weights_the_dataset_action_by_eq_20():
    batch = hand_batch()
    target = TableCritic(2)
    logp = inspo_smac.masked_log_softmax(
        torch.randn(B, T, A, generator=torch.Generator().manual_seed(4)), batch["avail"][:, :, 2]
    )
    steps = torch.tensor([0, 1, 2, 4])
    i, alpha, beta = 2, 0.5, 0.25
    expected = []
    for step in steps.tolist():
        b, t = divmod(step, T)
        a = int(batch["actions"][b, t, i])
        q = target(batch["state"][b, t])
        advantage = float(q[a] - (logp[b, t].exp() * q).sum())
        weight = min(
            math.exp((advantage - beta * float(batch["log_mu"][b, t, i, a])) / (alpha + beta)), ARGS.weight_clip
        )
        expected.append(-weight * float(logp[b, t, a]))
    loss = inspo_smac.actor_loss(batch, steps, i, logp, target, alpha, beta, ARGS)
    assert float(loss.detach()) == pytest.approx(np.mean(expected), rel=1e-5)
    clipped = inspo_smac.actor_loss(batch, steps, i, logp, target, 1e-3, 0.0, inspo_smac.Args(weight_clip=2.0))
    assert (
        float(clipped)
        <= 2.0 * float(-logp[steps // T, steps % T].gather(1, batch["actions"][steps // T, steps % T, i, None]).mean())
        + 1e-5
    )


def test_mean_kl_is_zero_at_mu_and_the_closed_form_elsewhere():
    batch = hand_batch()
    assert float(inspo_smac.mean_kl(batch, [batch["log_mu"][:, :, i] for i in range(N)])) == pytest.approx(
        0.0, abs=1e-6
    )
    uniform = inspo_smac.masked_log_softmax(torch.zeros(B, T, A), batch["avail"][:, :, 0])
    expected = np.mean(
        [float((uniform.exp() * (uniform - batch["log_mu"][:, :, i])).sum(-1)[batch["valid"]].mean()) for i in range(N)]
    )
    assert float(inspo_smac.mean_kl(batch, [uniform] * N)) == pytest.approx(expected, rel=1e-5)


def test_alpha_loss_raises_alpha_while_kl_exceeds_the_target():
    for kl, direction in ((0.5, 1), (0.01, -1)):
        log_alpha = torch.tensor(0.0, requires_grad=True)
        inspo_smac.alpha_loss(log_alpha, torch.tensor(kl), 0.18).backward()
        assert -np.sign(float(log_alpha.grad)) == direction  # gradient descent moves log α this way


def test_semi_greedy_expected_advantage_over_the_valid_steps():
    """E_D[Q̄^i(s, a^i) − Σ_a π^i(a|τ) Q̄^i(s, a)] over the batch's valid steps only, per agent
    (the update orders themselves: tests/test_loop_units.py)."""
    batch = hand_batch()
    critics = [TableCritic(seed) for seed in range(N)]
    g = torch.Generator().manual_seed(5)
    logps = [
        inspo_smac.masked_log_softmax(torch.randn(B, T, A, generator=g), batch["avail"][:, :, i]) for i in range(N)
    ]
    got = inspo_smac.expected_advantages(batch, logps, critics)
    for i in range(N):
        terms = []
        for b in range(B):
            for t in range(3):  # slot 3 holds the final state, not a transition
                q = batch["state"][b, t] @ critics[i].w.detach()
                terms.append(float(q[batch["actions"][b, t, i]] - (logps[i][b, t].exp() * q).sum()))
        assert got[i] == pytest.approx(np.mean(terms), rel=1e-5, abs=1e-6)


def test_joint_behaviour_leaves_agent_i_out_and_conditions_on_earlier_teammates_only():
    torch.manual_seed(0)
    model = inspo_smac.JointBehaviour(S, N, A, 16)
    state = torch.randn(5, S)
    avail = torch.ones(5, N, A, dtype=torch.bool)
    actions = torch.randint(0, A, (5, N))
    for i in range(N):
        changed = actions.clone()
        changed[:, i] = (changed[:, i] + 1) % A  # agent i's own action never enters µ^-i
        torch.testing.assert_close(model.log_prob(state, changed, avail, i), model.log_prob(state, actions, avail, i))
    # µ^-0 = µ_AR(a^1 | s) µ_AR(a^2 | s, a^1): the sum over a^2 of exp(log µ^-0) is the marginal of a^1
    total = torch.zeros(5)
    for a2 in range(A):
        joint = actions.clone()
        joint[:, 2] = a2
        total += model.log_prob(state, joint, avail, 0).exp()
    first_only = inspo_smac.JointBehaviour(S, N, A, 16)
    first_only.load_state_dict(model.state_dict())
    assert (total <= 1 + 1e-5).all() and (total > 0).all()
    grand = sum(
        model.log_prob(
            state, torch.stack([actions[:, 0], torch.full((5,), a1), torch.full((5,), a2)], 1), avail, 0
        ).exp()
        for a1 in range(A)
        for a2 in range(A)
    )
    torch.testing.assert_close(grand, torch.ones(5))


def test_policy_inputs_last_action_and_agent_id():
    obs = torch.zeros(1, 3, 2, 1)
    last = torch.tensor([[[-1, -1], [2, 0], [1, 1]]])
    x = inspo_smac.policy_inputs(obs, last, 3)
    assert x.shape == (1, 3, 2, 1 + 3 + 2)
    assert (x[0, 0, :, 1:4] == 0).all()  # no last action at t = 0
    assert x[0, 1, 0, 1:4].tolist() == [0, 0, 1] and x[0, 1, 1, 1:4].tolist() == [1, 0, 0]
    assert x[0, 2, 0, 4:].tolist() == [1, 0] and x[0, 2, 1, 4:].tolist() == [0, 1]


def test_episode_tensors_mark_the_transitions_and_the_terminal_slot():
    filled = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    arrays = {
        "filled": filled,
        "actions": np.zeros((2, 4, 1), np.int64),
        "state": np.zeros((2, 4, 1), np.float32),
        "obs": np.zeros((2, 4, 1, 1), np.float32),
        "avail_actions": np.ones((2, 4, 1, 2), np.int32),
        "reward": np.zeros((2, 4), np.float32),
        "terminated": np.zeros((2, 4), np.uint8),
    }
    data = inspo_smac.episode_tensors(arrays, "cpu")
    assert data["valid"].tolist() == [[True, True, False, False], [True, True, True, False]]
    assert data["length"].tolist() == [2, 3]
    assert data["last_actions"][:, 0].tolist() == [[-1], [-1]]


# --- the order inside an iteration, recorded by spies --------------------------------------
@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data") / "2s3z_small.h5")
    writer = H5Writer(path, 8, map_sizes("2s3z"))
    out = rollout(
        SMACBatch("2s3z", 8, seed=5, auto_reset=False), None, 0.0, np.random.default_rng(0), scripted="attack-nearest"
    )
    writer.write({k: v for k, v in out.items() if k not in ("won", "timeout", "length")})
    writer.close()
    return path


def spy_run(tmp_path, small_file, monkeypatch, **overrides):
    calls = []

    def importance_ratio(log_pi_taken, log_mu_others, i):
        calls.append(("rho", i, log_pi_taken.clone()))
        return real["importance_ratio"](log_pi_taken, log_mu_others, i)

    def resample(log_rho, valid, args, generator):
        steps = real["resample"](log_rho, valid, args, generator)
        calls.append(("resample", steps.clone()))
        return steps

    def soft_values(batch, logps, target_critics, alpha, beta):
        calls.append(("values", [logp.clone() for logp in logps], batch["log_mu"].clone()))
        return real["soft_values"](batch, logps, target_critics, alpha, beta)

    def critic_loss(batch, steps, i, critic, targets, args):
        loss = real["critic_loss"](batch, steps, i, critic, targets, args)
        calls.append(("critic", i, steps.clone(), targets.clone(), float(loss.detach())))
        return loss

    def actor_loss(batch, steps, i, logp, target, alpha, beta, args):
        loss = real["actor_loss"](batch, steps, i, logp, target, alpha, beta, args)
        calls.append(("actor", i, steps.clone(), float(loss.detach())))
        return loss

    real = install_spies(monkeypatch, inspo_smac, importance_ratio, resample, soft_values, critic_loss, actor_loss)
    monkeypatch.setattr(inspo_smac, "evaluate", lambda *args: (0.0, 0.0))  # battles are not what is recorded here
    args = inspo_smac.Args(
        **{
            **dict(
                map="2s3z",
                dataset_file=small_file,
                runs_dir=str(tmp_path),
                num_updates=1,
                bc_updates=3,
                batch_episodes=4,
                batch_size=32,
                hidden_dim=16,
                eval_episodes=2,
                final_eval_episodes=2,
                progress=False,
                learning_rate=0.05,
            ),
            **overrides,
        }
    )
    inspo_smac.main(args)
    return calls


@pytest.mark.parametrize("sequential", [True, False])
def test_iteration_order_batches_and_pi0_equals_mu(tmp_path, small_file, monkeypatch, sequential):
    calls = spy_run(tmp_path, small_file, monkeypatch, sequential=sequential)
    rhos = [c for c in calls if c[0] == "rho"]
    resamples = [c[1] for c in calls if c[0] == "resample"]
    critics = [c for c in calls if c[0] == "critic"]
    actors = [c for c in calls if c[0] == "actor"]
    order = [c[1] for c in critics]
    assert sorted(order) == list(range(5)) and [c[1] for c in actors] == order and [c[1] for c in rhos] == order
    # the targets are computed once, from the start-of-iteration policies, before any agent's update;
    # π^0 = µ: the first iteration's policies are the behaviour models
    values = [c for c in calls if c[0] == "values"]
    assert len(values) == 1 and calls.index(values[0]) < calls.index(critics[0])
    for i, logp in enumerate(values[0][1]):
        torch.testing.assert_close(logp, values[0][2][:, :, i], atol=1e-5, rtol=0)
    # the critic and the actor of agent k use agent k's resampled steps, not a uniform draw
    for k, (critic, actor) in enumerate(zip(critics, actors)):
        assert torch.equal(critic[2], resamples[k]) and torch.equal(actor[2], resamples[k])
    # the losses TensorBoard shows are the means over the agents, not the last agent's
    scalars = tensorboard_scalars(os.path.join(tmp_path, os.listdir(tmp_path)[0]))
    assert scalars["losses/critic_loss"] == [(1, pytest.approx(np.mean([c[4] for c in critics]), rel=1e-5))]
    assert scalars["losses/actor_loss"] == [(1, pytest.approx(np.mean([c[3] for c in actors]), rel=1e-5))]
    # ρ of the k-th agent sees the teammates updated before it (sequential), or the start of the iteration only
    start = rhos[0][2]
    for k, (_, _i, log_pi_taken) in enumerate(rhos):
        earlier = order[:k]
        for j in range(5):
            same = torch.equal(log_pi_taken[..., j], start[..., j])
            if sequential and j in earlier:
                assert not same, (k, j)
            else:
                assert same, (k, j)


def test_presets_fill_the_flags_left_unset(monkeypatch):
    every_cell = [inspo_smac.with_presets(inspo_smac.Args(map=m, dataset=d)) for m in MAPS for d in DATASETS]
    assert all(getattr(args, key) is not None for args in every_cell for key in inspo_smac.PRESET_DEFAULTS)
    # the paper's α_CQL = 0.1 elsewhere
    assert {(args.map, args.dataset): args.cql_alpha for args in every_cell if args.cql_alpha != 0.1} == {
        ("3s_vs_5z", "expert"): 1.0,
        ("5m_vs_6m", "mixed"): 1.0,
    }
    assert inspo_smac.with_presets(inspo_smac.Args(map="5m_vs_6m", dataset="mixed", cql_alpha=0.0)).cql_alpha == 0.0
    monkeypatch.setattr(inspo_smac, "PRESETS", {("3s_vs_5z", "mixed"): {"bc_updates": 1234}})
    preset = inspo_smac.with_presets(inspo_smac.Args(map="3s_vs_5z", dataset="mixed"))
    assert (preset.bc_updates, preset.num_updates) == (1234, inspo_smac.PRESET_DEFAULTS["num_updates"])
    assert inspo_smac.with_presets(inspo_smac.Args(map="3s_vs_5z", dataset="mixed", bc_updates=7)).bc_updates == 7
    other = inspo_smac.with_presets(inspo_smac.Args(map="2s3z", dataset="mixed"))
    assert (other.bc_updates, other.num_updates) == (
        inspo_smac.PRESET_DEFAULTS["bc_updates"],
        inspo_smac.PRESET_DEFAULTS["num_updates"],
    )
