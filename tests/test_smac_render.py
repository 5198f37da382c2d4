"""The simulator's renderer: frames, colours, determinism, the GIF command and its bad inputs."""

import numpy as np
import pytest

from conftest import assert_cli_error
from envs import InputError
from envs.smac import (
    ALLY_COLOUR,
    DEAD_COLOUR,
    ENEMY_COLOUR,
    MAP_SIZE,
    SMACBatch,
    SMACParallelEnv,
    StarCraft2Env,
    scripted_actions,
)


def pixel(frame: np.ndarray, x: float, y: float) -> np.ndarray:
    """The frame's colour (0-1) at map point (x, y): x to the right, y up."""
    h, w, _ = frame.shape
    return frame[int((1 - y / MAP_SIZE) * (h - 1)), int(x / MAP_SIZE * (w - 1))] / 255.0


def test_a_frame_shows_each_unit_in_its_teams_colour_where_the_simulator_puts_it():
    b = SMACBatch("3s_vs_5z", 2, seed=0)
    b.reset()
    b.x[0], b.y[0] = [6.0, 10.0, 14.0, 20.0, 24.0, 26.0, 28.0, 30.0], [20.0, 20.0, 20.0, 12.0, 12.0, 12.0, 12.0, 12.0]
    frame = b.render(0)
    assert frame.shape == (320, 320, 3) and frame.dtype == np.uint8
    for u in range(b.n_units):
        colour = ALLY_COLOUR if u < b.n_agents else ENEMY_COLOUR
        np.testing.assert_allclose(pixel(frame, b.x[0, u], b.y[0, u]), colour, atol=0.02)
    assert not np.allclose(pixel(frame, 2.0, 2.0), ALLY_COLOUR, atol=0.1)  # empty ground is neither team
    # a dead unit is drawn hollow and grey: its centre is ground, its rim grey
    b.alive[0, 0], b.hp[0, 0], b.shield[0, 0] = False, 0.0, 0.0
    dead = b.render(0)
    assert not np.allclose(pixel(dead, 6.0, 20.0), ALLY_COLOUR, atol=0.1)
    rim = [
        pixel(dead, 6.0 + b.u_radius[0] * np.cos(a), 20.0 + b.u_radius[0] * np.sin(a)) for a in np.linspace(0, 6, 24)
    ]
    assert any(np.allclose(p, DEAD_COLOUR, atol=0.08) for p in rim)


def test_the_same_battle_gives_the_same_frames_and_the_envs_render_it():
    def frames(seed):
        b, rng = SMACBatch("2s3z", 1, seed=seed), np.random.default_rng(0)
        b.reset()
        out = [b.render(0)]
        for _ in range(5):
            b.step(scripted_actions(b, "focus-fire", rng))
            out.append(b.render(0))
        return out

    assert all(np.array_equal(a, b) for a, b in zip(frames(1), frames(1)))
    env = StarCraft2Env("2s3z", seed=1)
    env.reset()
    assert np.array_equal(env.render(), frames(1)[0])
    parallel = SMACParallelEnv("2s3z", seed=1, render_mode="rgb_array")
    parallel.reset()
    assert "rgb_array" in parallel.metadata["render_modes"] and np.array_equal(parallel.render(), frames(1)[0])


def test_render_bad_inputs_are_one_clear_line(tmp_path, capsys, monkeypatch):
    b = SMACBatch("2s3z", 2, seed=0)
    with pytest.raises(InputError, match="reset"):
        b.render(0)
    b.reset()
    for bad in (2, -1, 0.5):
        with pytest.raises(InputError, match=r"battle=.*accepted: an integer in 0..1"):
            b.render(bad)
    with pytest.raises(InputError, match="render mode 'human' is not accepted; accepted: rgb_array"):
        StarCraft2Env("2s3z").render(mode="human")
    with pytest.raises(InputError, match="render_mode='human' is not accepted"):
        SMACParallelEnv("2s3z", render_mode="human")
    with pytest.raises(InputError, match="render_mode='rgb_array'"):
        SMACParallelEnv("2s3z").render()
    assert_cli_error("envs/smac.py", ["--policy", "dance"], capsys, monkeypatch, "dance", "kite")
    assert_cli_error("envs/smac.py", ["--gif", str(tmp_path / "no" / "b.gif")], capsys, monkeypatch, "b.gif")
    assert not (tmp_path / "no").exists()


def test_the_gif_command_writes_a_scripted_battle(tmp_path, capsys, monkeypatch):
    import time

    from PIL import Image

    import envs.smac as smac

    path = tmp_path / "kite.gif"
    monkeypatch.setattr("sys.argv", ["envs/smac.py", "--map", "3s_vs_5z", "--policy", "kite", "--gif", str(path)])
    start = time.time()
    smac.main()
    took = time.time() - start
    printed = capsys.readouterr().out
    steps = int(printed.split(" in ")[1].split(" steps")[0])
    with Image.open(path) as gif:
        assert gif.n_frames == steps + 1 and gif.size == (320, 320)
    assert "3s_vs_5z kite: won in" in printed and took < 20  # the target is 10 s on one core; a shared CI runner
