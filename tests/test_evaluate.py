"""--evaluate (inspo_smac.py, inspo_bridge.py) and --capture-video: a saved run evaluated without training."""

import json
import os

import pytest
import torch
from test_bridge import bridge_args
from test_smac_inspo import scripted_file, tiny_args  # noqa: F401  (a fixture)

import inspo_bridge
import inspo_smac
from conftest import assert_cli_error


@pytest.mark.slow
@pytest.mark.parametrize("greedy", [True, False])
def test_evaluate_reproduces_the_runs_final_evaluation_exactly(tmp_path, scripted_file, greedy, capsys):  # noqa: F811
    summary = inspo_smac.main(tiny_args(tmp_path, scripted_file, eval_greedy=greedy))
    run_dir = os.path.dirname(summary["args"]["runs_dir"] + "/")
    [name] = [d for d in os.listdir(run_dir) if d.startswith("smac_")]
    checkpoint = os.path.join(run_dir, name, "checkpoint.pt")
    capsys.readouterr()
    got = inspo_smac.main(inspo_smac.Args(evaluate=checkpoint, final_eval_episodes=8, eval_greedy=greedy))
    assert (got["win_rate"], got["return"]) == (summary["final_win_rate"], summary["final_return"])
    assert got["iteration"] == summary["num_updates"] and got["map"] == "2s3z"
    if greedy:  # µ's greedy evaluation draws nothing: the same as the run's BC evaluation
        assert (got["bc_win_rate"], got["bc_return"]) == (summary["bc_win_rate"], summary["bc_return"])
    with open(os.path.join(run_dir, name, "evaluation.json")) as f:
        assert json.load(f) == got
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2].startswith("smac 2s3z medium (iteration 6): win rate ")
    assert printed[-1] == f"evaluation: {os.path.join(run_dir, name, 'evaluation.json')}"


@pytest.mark.slow
def test_capture_video_writes_the_first_battle_of_pi_and_mu(tmp_path, scripted_file):  # noqa: F811
    from PIL import Image

    summary = inspo_smac.main(tiny_args(tmp_path, scripted_file, capture_video=True))
    [name] = [d for d in os.listdir(tmp_path) if d.startswith("smac_")]
    videos = tmp_path / name / "videos"
    assert sorted(os.listdir(videos)) == ["bc.gif", "inspo.gif"]
    for gif in ("bc.gif", "inspo.gif"):
        with Image.open(videos / gif) as image:
            assert image.n_frames >= 2 and image.size == (320, 320)
    plain = inspo_smac.main(tiny_args(tmp_path / "plain", scripted_file))
    assert (plain["final_win_rate"], plain["final_return"]) == (summary["final_win_rate"], summary["final_return"])
    # --evaluate with --capture-video draws beside the checkpoint
    inspo_smac.main(inspo_smac.Args(evaluate=str(tmp_path / name / "checkpoint.pt"), final_eval_episodes=4,
                                    capture_video=True))  # fmt: skip
    assert {"bc_evaluate.gif", "inspo_evaluate.gif"} <= set(os.listdir(videos))


def test_evaluate_bad_checkpoints_are_one_line(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "none.pt"
    assert_cli_error("inspo_smac.py", ["--evaluate", missing], capsys, monkeypatch, "--evaluate", "none.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert_cli_error("inspo_smac.py", ["--evaluate", garbage], capsys, monkeypatch, "garbage.pt", "not a readable")
    foreign = tmp_path / "foreign.pt"
    torch.save({"config": {"map": "2s3z"}, "policies": []}, foreign)
    assert_cli_error("inspo_smac.py", ["--evaluate", foreign], capsys, monkeypatch, "foreign.pt", "lacks")
    assert_cli_error(
        "inspo_smac.py", ["--evaluate", foreign, "--resume", foreign], capsys, monkeypatch, "--resume", "--evaluate"
    )
    assert not (tmp_path / "evaluation.json").exists()


@pytest.mark.slow
def test_bridge_evaluate_reproduces_the_runs_final_numbers(tmp_path, capsys, monkeypatch):
    summary = inspo_bridge.main(bridge_args(tmp_path, str(tmp_path / "cache"), num_updates=20, bc_updates=20))
    [name] = [d for d in os.listdir(tmp_path) if d.startswith("bridge_")]
    checkpoint = str(tmp_path / name / "checkpoint.pt")
    got = inspo_bridge.main(inspo_bridge.Args(evaluate=checkpoint, final_eval_episodes=64))
    for key in ("return_greedy", "return_stochastic", "bc_return_greedy", "bc_return_stochastic"):
        assert got[key] == summary[key.replace("return_", "final_return_") if key.startswith("return") else key], key
    assert capsys.readouterr().out.splitlines()[-1] == f"evaluation: {tmp_path / name / 'evaluation.json'}"
    assert_cli_error("inspo_bridge.py", ["--evaluate", tmp_path / "none.pt"], capsys, monkeypatch, "none.pt")
