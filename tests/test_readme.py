"""README.md's first screen: its commands run as shown (on tiny settings) and print what it says."""

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

# appended to each first-screen command: the same run, small enough for a test
TINY = {
    "inspo_matrix.py": ["--num-updates", "4", "--bc-updates", "4", "--eval-interval", "2",
                        "--final-eval-episodes", "8"],
    "inspo_bridge.py": ["--num-updates", "4", "--bc-updates", "4", "--eval-interval", "2", "--eval-episodes", "4",
                        "--final-eval-episodes", "8"],
    "inspo_smac.py": ["--dataset-episodes", "16", "--num-updates", "4", "--bc-updates", "4", "--batch-episodes", "4",
                      "--batch-size", "32", "--hidden-dim", "32", "--eval-interval", "2", "--eval-episodes", "4",
                      "--final-eval-episodes", "4", "--critic-probe-episodes", "4"],
}  # fmt: skip


def first_screen() -> list[str]:
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read().splitlines()[:40]


def shown_commands() -> list[tuple[str, list[str]]]:
    """Each `python inspo_*.py ...` line of the first screen, with the output lines shown under it."""
    lines, commands = first_screen(), []
    for k, line in enumerate(lines):
        if line.startswith("python inspo_"):
            shown = []
            for following in lines[k + 1 :]:
                if not following.startswith("# "):
                    break
                shown.append(following[2:])
            commands.append((line.split("#")[0].strip(), shown))
    return commands


def test_the_first_screen_holds_the_set_up_test_and_run_commands():
    screen = "\n".join(first_screen())
    assert "pip install -r requirements.txt" in screen and "python -m pytest -n auto" in screen
    assert [c.split()[1] for c, _ in shown_commands()] == ["inspo_matrix.py", "inspo_bridge.py", "inspo_smac.py"]
    with open(os.path.join(ROOT, "README.md")) as f:
        assert len(f.read().split()) <= 1500


@pytest.mark.slow
@pytest.mark.parametrize("index", range(3))
def test_a_first_screen_command_runs_and_prints_what_the_readme_shows(index, tmp_path):
    command, shown = shown_commands()[index]
    argv = command.split()[1:]
    script = argv[0]
    extra = ["--runs-dir", str(tmp_path / "runs"), "--no-progress", *TINY[script]]
    if script != "inspo_matrix.py":
        extra += ["--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run([sys.executable, *argv, *extra], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stdout.splitlines()
    # the shown lines, up to their first number, "..." or path (a tiny run's differ), are printed in order
    prefixes = [re.split(r"[-\d<]|runs/|\.\.\.", line, maxsplit=1)[0] for line in shown]
    found = [next((k for k, p in enumerate(printed) if p.startswith(prefix)), None) for prefix in prefixes]
    assert None not in found and found == sorted(found), (prefixes, printed[-8:])
    assert printed[-1].startswith("summary: ") and os.path.exists(printed[-1].removeprefix("summary: "))


@pytest.mark.parametrize(
    "script, flag, choices",
    [
        ("inspo_matrix.py", "--game", "{xor,mne}"),
        ("inspo_matrix.py", "--dataset", "{a,b,c,balanced,imbalanced}"),
        ("inspo_bridge.py", "--dataset", "{optimal,mixed}"),
        ("inspo_smac.py", "--map", "{2s3z,3s_vs_5z,5m_vs_6m,6h_vs_8z}"),
        ("inspo_smac.py", "--dataset", "{medium,medium_replay,expert,mixed}"),
    ],
)
def test_help_lists_the_choices(script, flag, choices):
    result = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert f"{flag} {choices}" in result.stdout


def test_no_tracked_file_points_outside_the_clone():
    """A clone stands alone: no file cites a folder beside the clone or an issue number (.ci/run may point the
    AlberDICE tests at this machine's copy of the released files)."""
    try:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    outside = re.compile(r"\.\./" + "shared" + r"|\bissue #?\d+", re.IGNORECASE)
    bad = []
    for path in files:
        if path == ".ci/run" or path.startswith("benchmarks/results/") or path.endswith((".pt", ".png", ".npz")):
            continue
        try:
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        bad += [f"{path}: {m.group(0)}" for m in outside.finditer(text)]
    assert not bad, bad
