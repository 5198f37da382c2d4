"""Spread over seeds of what the end-to-end outcome tests measure, so that their thresholds are set from it.

Each outcome test runs one short training with the default seed and compares a number with a
threshold. Here the same configurations (imported from the tests, so they cannot drift) run with
seeds 0-4; benchmarks/results/outcome_spread.md lists the numbers, their mean and spread, and the
threshold each test uses. A threshold sits between the worst seed and what a broken component
gives (uniform random play, an untrained network, µ itself), as close to the worst seed as the
spread allows.

    python benchmarks/outcome_spread.py            # about 8 minutes on one core
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import test_bridge  # noqa: E402
import test_matrix  # noqa: E402
import test_smac_data  # noqa: E402
import test_smac_inspo  # noqa: E402

import inspo_bridge  # noqa: E402
import inspo_smac  # noqa: E402
from envs.smac_data import load_h5  # noqa: E402

SEEDS = range(5)


def bridge(seed: int, tmp: str) -> dict:
    summary = inspo_bridge.main(test_bridge.bridge_args(Path(tmp), os.path.join(tmp, "cache"), seed=seed))
    return {"stochastic return": summary["final_return_stochastic"], "greedy return": summary["final_return_greedy"]}


def matrix_entropy(seed: int, tmp: str, budget: int | None = None) -> dict:
    kwargs = dict(
        game="mne",
        dataset="imbalanced",
        exact=False,
        num_updates=budget or test_matrix.ENTROPY_BUDGET[False],
        seed=seed,
    )
    return {
        "with entropy": test_matrix.run(tmp, **kwargs)["final_return_greedy"],
        "without entropy": test_matrix.run(tmp, **kwargs, beta_0=0.0)["final_return_greedy"],
    }


def matrix_entropy_half_budget(seed: int, tmp: str) -> dict:
    """The same at half the test's budget: how much margin the budget leaves."""
    return matrix_entropy(seed, tmp, test_matrix.ENTROPY_BUDGET[False] // 2)


def matrix_qre(seed: int, tmp: str) -> dict:
    summary = test_matrix.run(tmp, **test_matrix.QRE_RUN, exact=False, num_updates=500, seed=seed)
    alpha, beta = test_matrix.QRE_RUN["alpha"], test_matrix.QRE_RUN["beta_0"]
    return {
        "QRE residual": test_matrix.qre_residual(summary, alpha, beta),
        "residual against 4β": test_matrix.qre_residual(summary, alpha, 4 * beta),
    }


def qmix(seed: int, tmp: str) -> dict:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "qmix_smac.py"),
            *test_smac_data.QMIX,
            "--total-env-steps",
            "15000",
            "--snapshot-interval",
            "15000",
            "--checkpoint-interval",
            "100000",
            "--runs-dir",
            tmp,
            "--seed",
            str(seed),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    with open(os.path.join(tmp, f"2s3z_seed{seed}", "summary.json")) as f:
        history = json.load(f)["history"]
    return {"test return gain": history[-1]["test_return"] - history[0]["test_return"]}


def smac_in_sample(seed: int, tmp: str) -> dict:
    path = test_smac_inspo.write_scripted_file(os.path.join(tmp, "2s3z_scripted.h5"))
    run_dir = os.path.join(tmp, "runs")
    inspo_smac.main(
        test_smac_inspo.tiny_args(
            Path(run_dir), path, num_updates=20, bc_updates=150, eval_interval=20, autotune_alpha=False, seed=seed
        )
    )
    state = torch.load(os.path.join(run_dir, os.listdir(run_dir)[0], "checkpoint.pt"), weights_only=False)
    batch = inspo_smac.episode_batch(inspo_smac.episode_tensors(load_h5(path, "2s3z"), "cpu"), torch.arange(24))
    worst_mu, worst_gap = 0.0, -np.inf
    for i in range(5):
        mass = {}
        for key in ("behaviours", "policies"):
            model = inspo_smac.RecurrentPolicy(batch["inputs"].shape[-1], 11, 64)
            model.load_state_dict(state[key][i])
            mass[key] = float(inspo_smac.unroll(model, batch, i).exp()[batch["valid"]][:, [1, 2, 3, 5]].sum(-1).mean())
        worst_mu, worst_gap = max(worst_mu, mass["behaviours"]), max(worst_gap, mass["policies"] - mass["behaviours"])
    return {"µ mass on never-taken actions (worst agent)": worst_mu, "π − µ mass (worst agent)": worst_gap}


# test, what it measures, the threshold the test applies, and what a broken component gives
CASES = [
    (
        "tests/test_bridge.py::test_short_training_beats_uniform_random",
        bridge,
        {"stochastic return": "> -1.40", "greedy return": "> -1.35"},
        "BC stochastic: -1.95 (bridge.md); uniform random play: -7.10; the optimum: -1.2355",
    ),
    (
        "tests/test_matrix.py::test_entropy_escapes_the_mne_local_optimum[False]",
        matrix_entropy,
        {"with entropy": "== 20", "without entropy": "== 5"},
        "exact outcomes (the optimum (C,C) and the local (A,A))",
    ),
    (
        "(the same at half its budget)",
        matrix_entropy_half_budget,
        {"with entropy": "(none: not a test)", "without entropy": "(none: not a test)"},
        "exact outcomes (the optimum (C,C) and the local (A,A))",
    ),
    (
        "tests/test_matrix.py::test_fixed_alpha_beta_converge_to_the_closed_form_qre[False-0.02]",
        matrix_qre,
        {"QRE residual": "< 0.02", "residual against 4β": "> 0.1"},
        "a wrong β or an unregularised fixed point: 0.26 or more",
    ),
    (
        "tests/test_smac_data.py::test_qmix_learns_on_2s3z",
        qmix,
        {"test return gain": "> 1.0"},
        "no learning: 0 (the untrained greedy team and random play both return about 3)",
    ),
    (
        "tests/test_smac_inspo.py::test_in_sample_actions_never_taken_keep_no_mass",
        smac_in_sample,
        {"µ mass on never-taken actions (worst agent)": "< 0.04", "π − µ mass (worst agent)": "<= 0"},
        "an unmasked or out-of-sample actor: mass of 4/11 ≈ 0.36 at initialisation",
    ),
]


def main() -> None:
    torch.set_num_threads(1)
    lines = [
        "# Spread over seeds of the outcome tests",
        "",
        f"Generated by `python benchmarks/outcome_spread.py` on {datetime.date.today().isoformat()}: each "
        "outcome test's configuration (imported from the test module) with seeds 0-4, one CPU thread. "
        "The tests run the default seed; their thresholds are set from these numbers.",
        "",
        "| test | quantity | seeds 0-4 | mean ± std | threshold in the test | a broken component gives |",
        "|---|---|---|---|---|---|",
    ]
    for test, measure, thresholds, broken in CASES:
        start, values = time.time(), {}
        for seed in SEEDS:
            with tempfile.TemporaryDirectory() as tmp:
                for key, value in measure(seed, tmp).items():
                    values.setdefault(key, []).append(float(value))
        for key, xs in values.items():
            lines.append(
                f"| {test if test.startswith('(') else f'`{test}`'} | {key} | {', '.join(f'{x:.4g}' for x in xs)} | "
                f"{np.mean(xs):.4g} ± {np.std(xs):.2g} "
                f"| {thresholds[key]} | {broken} |"
            )
        print(f"{test}: {values} ({time.time() - start:.0f} s)", flush=True)
    out = ROOT / "benchmarks" / "results" / "outcome_spread.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
