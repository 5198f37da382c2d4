"""A StarCraft-II-free simulator that speaks SMAC exactly, for 2s3z, 3s_vs_5z, 5m_vs_6m, 6h_vs_8z.

Written from SMAC's source and the maps' data (§ numbers: SMAC's §1 environment, §2 maps, §3 actions, §4 observation,
§5 state, §6 reward, §7 units, §8 the enemy AI); what the
simulator approximates, and how it was checked, is in docs/smac_simulator.md.

Three layers, each usable on its own:
  * `SMACBatch`: B battles stepped together, numpy arrays shaped [B, units], auto-reset.
    One step is SMAC's 8 game loops; each loop is a handful of array operations over all
    battles and units at once (no Python loop over battles or units).
  * `StarCraft2Env`: one battle with SMAC's `StarCraft2Env` interface, method for method
    (`reset`, `step`, `get_obs`, `get_state`, `get_avail_actions`, `get_env_info`, ...).
  * `SMACParallelEnv`: a PettingZoo ParallelEnv over either back end.
`make_env(map_name, backend="sim" | "sc2")` picks the built-in simulator (default) or the real
SMAC (`smac.env.StarCraft2Env` with StarCraft II, imported only when asked for).

Choices where SMAC cannot be known without StarCraft II ([design] in SMAC.md):
  * unit data in game loops (§7; 16 loops per game second, 8 per SMAC step), SC2's damage rule
    (shields first, armour per hit on HP, +5 vs armoured for stalkers, zealots hit twice);
    hits landing on one unit in the same loop are resolved together (exact when they have equal
    damage);
  * with `variety` (a map's default once its behaviour policies are trained on it): StarCraft II's
    sources of battle-to-battle variety, a random update order per game loop, separation radii,
    packed spawns settled for two loops, damage point, backswing, the zealot's second blade, missiles
    (docs/smac_simulator.md, "Where battles vary"); without it, every shot lands on the loop it is fired;
  * weapon cooldown after each shot: the unit's period plus a jitter of U{-1,0,1,2} loops (pysc2);
  * enemies: attack-move to the allies' spawn with SMAClite-style acquisition (§8);
  * spawns: a deterministic square grid around the map's point (SMAClite), spacing 2·r_max + 0.05,
    or packed (variety);
  * collisions: one pairwise push-apart per loop (SMAX; with variety, each pair shares the push in random
    per-loop shares within ±10 % of even), then centres kept in pathable cells;
  * randomness: a counter-based hash of (battle seed, episode, loop, unit), so battle b's
    trajectory depends on its own seed only, never on how many battles run beside it.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs import SEED_LIMIT, InputError, is_int

LOOPS_PER_STEP = 8  # SMAC's step_mul
MOVE_AMOUNT = 2.0  # a move order goes 2 units along one axis
SHOOT_RANGE = 6.0  # SMAC's attack availability (centre distance), every unit type
SIGHT_RANGE = 9.0  # SMAC's observation range and normaliser
MAP_SIZE = 32
REWARD_DEATH, REWARD_WIN, REWARD_SCALE_RATE = 10.0, 200.0, 20.0
SHIELD_REGEN_DELAY, SHIELD_REGEN = 160, 2.0 / 16  # 10 game seconds without damage, then 2 per game second
N_NO_ATTACK = 6  # no-op, stop, north, south, east, west
FLOAT = np.float32  # unit state: half the memory traffic of float64, ample precision on a 32 x 32 map


@dataclass(frozen=True)
class UnitType:
    """SC2 unit data in game-loop units (§7). `range` is edge to edge; `max_cooldown` is SMAC's state normaliser.
    The last five fields shape the battle-to-battle variety (docs/smac_simulator.md, "Where battles vary"):
    radii from the maps' UnitData.xml, weapon timing in game loops."""

    hp: float
    shield: float
    armour: float
    damage: float
    hits: int
    bonus_vs_armoured: float
    cooldown: float
    range: float
    speed: float
    radius: float
    armoured: bool
    hp_regen: float
    max_cooldown: float
    separation: float  # SeparationRadius: the spacing units keep from each other
    inner_radius: float  # InnerRadius: how tightly the spawn packs them
    damage_point: float  # loops from the start of an attack to the shot; the unit holds meanwhile
    backswing: float  # loops the unit holds after the shot, unless given a new order
    missile: bool  # the shot flies at MISSILE_SPEED and lands later; otherwise it hits at once
    second_hit: float  # loops from the first blade hit to the second (zealot), 0 for one-hit weapons


UNITS = {
    "marine": UnitType(45, 0, 0, 6, 1, 0, 13.77, 5.0, 2.25 / 16, 0.375, False, 0.0, 15,
                       0.375, 0.375, 0.05 * 16, 0.75 * 16, False, 0.0),
    "stalker": UnitType(80, 80, 1, 13, 1, 5, 29.92, 6.0, 2.953 / 16, 0.625, True, 0.0, 35,
                        0.625, 0.5, 0.167 * 16, 0.5 * 16, True, 0.0),
    "zealot": UnitType(100, 50, 1, 8, 2, 0, 19.20, 0.1, 2.25 / 16, 0.5, False, 0.0, 22,
                       0.375, 0.375, 0.0, 0.5 * 16, False, 0.28 * 16),
    "hydralisk": UnitType(80, 0, 0, 12, 1, 0, 13.20, 5.0, 2.25 / 16, 0.625, False, 0.2734 / 16, 10,  # Hydralisk_RL
                          0.625, 0.375, 0.14 * 16, 0.5607 * 16, True, 0.0),
}  # fmt: skip
MISSILE_SPEED = 1.25  # map units per game loop (20 per second): an approximation, see docs/smac_simulator.md
RANGE_SLOP = 1.0  # an attack under way continues while its target stays within range + slop (CWeapon default)
# with variety, a colliding pair's shares of the push are 1/2 ± this at most (per loop, from the update order): wider
# spreads (shares anywhere in (0, 1)) make a melee so erratic that QMIX no longer learns 2s3z (docs/smac_simulator.md)
PUSH_SHARE_SPREAD = 0.1
RESET_LOOPS = 2  # SMAC's reset steps the game twice after the units appear before the first observation
RULES_REVISION = 3  # raised whenever a rule change alters what battles play: dataset caches of another are rebuilt


def _band_grid(y_low: int, y_high: int) -> np.ndarray:
    grid = np.zeros((MAP_SIZE, MAP_SIZE), dtype=bool)  # [x, y]
    grid[:, y_low:y_high] = True
    return grid


def _octagon_grid() -> np.ndarray:
    """6h_vs_8z's plateau (§2.2): the reachable interior of the cliff ring."""
    grid = np.zeros((MAP_SIZE, MAP_SIZE), dtype=bool)
    grid[10:20, [8, 9, 18, 19]] = True
    grid[8:22, 10:18] = True
    return grid


@dataclass(frozen=True)
class MapSpec:
    """One SMAC map (§2): armies in SMAC's id order, spawn points, the enemies' attack-move point."""

    allies: tuple[str, ...]
    enemies: tuple[str, ...]
    episode_limit: int
    ally_race: str
    enemy_race: str
    ally_spawn: tuple[float, float]
    enemy_spawn: tuple[float, float]
    pathing: str  # "band" (y in [8, 24)), "open" (all 32 x 32) or "octagon"
    unit_type_bits: int = 0
    facing: tuple[float, float] = (0.0, 0.0)  # the spawn points' rotations (Objects.xml), allies then enemies
    variety: bool = False  # play with the battle-to-battle variety rules (see SMACBatch) unless told otherwise


TEAM_FACING = (1.5705, 4.7121)  # the "Team 1" and "Team 2" points' rotations in 2s3z, 3s_vs_5z and 5m_vs_6m
MAPS = {
    "2s3z": MapSpec(
        ("stalker",) * 2 + ("zealot",) * 3,
        ("stalker",) * 2 + ("zealot",) * 3,
        120,
        "P",
        "P",
        (9, 16),
        (23, 16),
        "band",
        2,
        TEAM_FACING,
        variety=True,
    ),
    "3s_vs_5z": MapSpec(
        ("stalker",) * 3, ("zealot",) * 5, 250, "P", "P", (9, 16), (23, 16), "open", facing=TEAM_FACING, variety=True
    ),
    "5m_vs_6m": MapSpec(
        ("marine",) * 5, ("marine",) * 6, 70, "T", "T", (9, 16), (23, 16), "band", facing=TEAM_FACING, variety=True
    ),
    "6h_vs_8z": MapSpec(
        ("hydralisk",) * 6,
        ("zealot",) * 8,
        150,
        "Z",
        "P",
        (14.5998, 9.49),
        (14.41, 16.7597),
        "octagon",
        variety=True,
    ),
}
PATHING = {"band": _band_grid(8, 24), "open": np.ones((MAP_SIZE, MAP_SIZE), dtype=bool), "octagon": _octagon_grid()}
# §4: the 2s3z one-hot quirk. Allies count from the first declared _RL type (stalker 0, zealot 1);
# enemies count from SC2's id 73 (zealot 0, stalker 1).
ALLY_TYPE_BIT = {"stalker": 0, "zealot": 1}
ENEMY_TYPE_BIT = {"zealot": 0, "stalker": 1}


def check_seed_value(seed) -> None:
    if not is_int(seed) or not 0 <= seed < SEED_LIMIT:
        raise InputError(f"seed={seed!r} is not accepted; accepted: an integer in [0, 2**32)")


def check_map(map_name: str) -> MapSpec:
    if map_name not in MAPS:
        raise InputError(f"unknown SMAC map {map_name!r}; known maps: {', '.join(MAPS)}")
    return MAPS[map_name]


def spawn_points(centre: tuple[float, float], kinds: tuple[str, ...]) -> np.ndarray:
    """A compact square grid around the spawn point (SC2's placement search is engine-defined; §2.2)."""
    n = len(kinds)
    width = math.ceil(math.sqrt(n))
    spacing = 2 * max(UNITS[k].radius for k in kinds) + 0.05
    rows = math.ceil(n / width)
    i = np.arange(n)
    x = centre[0] + (i % width - (width - 1) / 2) * spacing
    y = centre[1] + (i // width - (rows - 1) / 2) * spacing
    return np.stack([x, y], -1)


def packed_spawn(centre: tuple[float, float], kinds: tuple[str, ...], facing: float) -> np.ndarray:
    """Armies created at one point, packed as the engine places them: the first unit on the point, each next
    one on the nearest free spot of a 1/16 grid where it touches no placed unit (inner radii); ties go to
    the spot first in the point's own frame, so the two armies' spawns mirror each other."""
    steps = np.arange(-64, 65)  # offsets up to 4 map units in sixteenths
    i, j = (a.ravel() for a in np.meshgrid(steps, steps, indexing="ij"))
    along = math.cos(facing) * i + math.sin(facing) * j
    across = -math.sin(facing) * i + math.cos(facing) * j
    order = np.lexsort((np.round(across, 6), np.round(along, 6), i * i + j * j))
    spots = np.stack([i[order], j[order]], -1) / 16.0 + np.asarray(centre, dtype=float)
    placed, radii = [], []
    for kind in kinds:
        free = np.ones(len(spots), dtype=bool)
        for point, radius in zip(placed, radii):
            free &= _norm(spots[:, 0] - point[0], spots[:, 1] - point[1]) >= UNITS[kind].inner_radius + radius - 1e-9
        placed.append(spots[np.argmax(free)])
        radii.append(UNITS[kind].inner_radius)
    return np.array(placed)


def _norm(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return np.sqrt(dx * dx + dy * dy)  # several times faster than np.hypot, and exact enough here


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A counter-based random number: uint64 in, well-mixed uint64 out (overflow wraps by design)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class SMACBatch:
    """B battles of one map stepped together: SMAC's obs, state, masks, reward and termination.

    reset() -> (obs [B,nA,obs_dim], state [B,state_dim], avail [B,nA,n_actions]);
    step(actions [B,nA]) -> (obs, state, avail, reward [B], terminated [B], info). With
    auto_reset, finished battles start again and `info` holds their terminal observations
    (`final_obs`, `final_state`, `final_avail`), `battle_won` and `timeout` ([B] bools).
    Battle b of a batch seeded s draws its randomness from the seed s + b only.

    variety (default: the map's `MapSpec.variety`) plays StarCraft II's sources of battle-to-battle variety:
    a random update order in every game loop (who gives way in a collision, who fires first), separation
    radii, armies spawned packed and settled for RESET_LOOPS loops before the first observation (agents
    numbered by type and position, as SMAC does), and attack timing (damage point, backswing, the zealot's
    second blade hit, missiles in flight). Without it, units act simultaneously on the loop's start
    positions, spawn on a grid out of contact, and every shot lands on the loop it is fired.
    """

    def __init__(
        self, map_name: str, n_battles: int, seed: int = 0, auto_reset: bool = True, variety: bool | None = None
    ):
        spec = check_map(map_name)
        if not is_int(n_battles) or not 1 <= n_battles <= 10**6:
            raise InputError(f"n_battles={n_battles!r} is not accepted; accepted: an integer in [1, 10**6]")
        check_seed_value(seed)
        self.map_name, self.n_battles, self.auto_reset = map_name, int(n_battles), auto_reset
        if variety is not None and not isinstance(variety, (bool, np.bool_)):
            raise InputError(f"variety={variety!r} is not accepted; accepted: True, False or None (the map's default)")
        self.variety = spec.variety if variety is None else bool(variety)
        self.n_agents, self.n_enemies = len(spec.allies), len(spec.enemies)
        self.n_actions = N_NO_ATTACK + self.n_enemies
        self.episode_limit = spec.episode_limit
        kinds = spec.allies + spec.enemies
        self.n_units = U = len(kinds)
        self.is_ally = np.arange(U) < self.n_agents
        unit = [UNITS[k] for k in kinds]
        for field in UnitType.__dataclass_fields__:  # per-unit constants, e.g. self.u_radius [U]
            setattr(self, "u_" + field, np.array([getattr(u, field) for u in unit], dtype=FLOAT))
        self.u_hits = self.u_hits.astype(np.int64)
        self.u_armoured = self.u_armoured.astype(bool)
        self.u_missile = self.u_missile.astype(bool)
        if not self.variety:  # every shot lands at once, units hold for nothing, contacts at the radius
            self.u_damage_point[:], self.u_backswing[:], self.u_second_hit[:] = 0.0, 0.0, 0.0
            self.u_missile[:] = False
            self.u_separation = self.u_radius.copy()
        self.first_hits = np.where(self.u_second_hit > 0, 1, self.u_hits)  # the zealot's second hit comes later
        # SMAC numbers the agents by unit type first; the ally slots list the types in that order (§4)
        self.type_id = np.array([spec.allies.index(k) if k in spec.allies else 0 for k in kinds])
        # enemies attack-move; the acquisition radius is max(5, range + own radius), plus the target's radius (§8)
        self.acquire_range = np.maximum(5.0, self.u_range + self.u_radius)
        self.attack_point = np.array(spec.ally_spawn, dtype=FLOAT)
        # SMAC numbers the agents by (unit type, x, y); the enemies keep their creation order (§4)
        if self.variety:
            allies = packed_spawn(spec.ally_spawn, spec.allies, spec.facing[0])
            enemies = packed_spawn(spec.enemy_spawn, spec.enemies, spec.facing[1])
        else:
            allies, enemies = spawn_points(spec.ally_spawn, spec.allies), spawn_points(spec.enemy_spawn, spec.enemies)
        allies = allies[np.lexsort((allies[:, 1], allies[:, 0], self.type_id[: self.n_agents]))]
        self.spawn = np.concatenate([allies, enemies])
        self.pathing_grid = PATHING[spec.pathing]
        self.max_reward = (
            self.n_enemies * REWARD_DEATH + REWARD_WIN + float(sum(UNITS[k].hp + UNITS[k].shield for k in spec.enemies))
        )
        # observation and state layout (§4, §5)
        self.unit_type_bits = utb = spec.unit_type_bits
        self.shield_ally, self.shield_enemy = int(spec.ally_race == "P"), int(spec.enemy_race == "P")
        self.type_bit = (
            np.array([ALLY_TYPE_BIT[k] for k in spec.allies] + [ENEMY_TYPE_BIT[k] for k in spec.enemies])
            if utb
            else None
        )
        self.nf_en = 4 + 1 + self.shield_enemy + utb
        self.nf_al = 4 + 1 + self.shield_ally + utb
        self.own_dim = 1 + self.shield_ally + utb
        self.obs_dim = 4 + self.n_enemies * self.nf_en + (self.n_agents - 1) * self.nf_al + self.own_dim
        self.ally_state_dim = 4 + self.shield_ally + utb
        self.enemy_state_dim = 3 + self.shield_enemy + utb
        self.state_dim = (
            self.n_agents * self.ally_state_dim + self.n_enemies * self.enemy_state_dim + self.n_agents * self.n_actions
        )
        self.contact = (self.u_separation[:, None] + self.u_separation) * ~np.eye(U, dtype=bool)  # 0 for u = v
        self.rows = np.arange(self.n_battles)[:, None]  # row index for gathers x[rows, idx]
        self.enemy_index = np.arange(self.n_enemies)[None]
        self.battle_offset = self.rows * U
        # pathable cells padded by 2 on every side, flat: a moved centre is looked up with its index clipped into
        # the unpathable border (several units pressing one at the map's edge can push it more than 2 off)
        padded = np.zeros((MAP_SIZE + 4, MAP_SIZE + 4), dtype=bool)
        padded[2:-2, 2:-2] = self.pathing_grid
        self.padded_grid = padded.ravel()
        self.others = np.array(
            [[j for j in range(self.n_agents) if j != i] for i in range(self.n_agents)], dtype=np.int64
        )
        self.seeds = np.uint64(seed) + np.arange(self.n_battles, dtype=np.uint64)
        self._allocate()
        self.started = False  # reset() before the first step

    # -- state --------------------------------------------------------------------------
    @property
    def pos(self) -> np.ndarray:
        """Unit centres [B, U, 2] (allies first, then enemies, in SMAC's id order)."""
        return np.stack([self.x, self.y], -1)

    def reset(self):
        """Start every battle anew (the next episode of each battle's own random stream)."""
        self._reset_battles(np.ones(self.n_battles, dtype=bool))
        self.started = True
        avail = self.get_avail_actions()
        return self.get_obs(avail), self.get_state(), avail

    def _allocate(self) -> None:
        B, U = self.n_battles, self.n_units
        self.x, self.y = np.zeros((B, U), FLOAT), np.zeros((B, U), FLOAT)
        self.hp, self.shield = np.zeros((B, U), FLOAT), np.zeros((B, U), FLOAT)
        self.cooldown, self.since_damage = np.zeros((B, U), FLOAT), np.zeros((B, U), FLOAT)
        self.alive = np.zeros((B, U), dtype=bool)
        self.target = np.full((B, U), -1, dtype=np.int64)  # unit index being attacked, -1 none
        self.move_x, self.move_y = np.zeros((B, U), FLOAT), np.zeros((B, U), FLOAT)
        self.moving = np.zeros((B, U), dtype=bool)
        self.last_action = np.zeros((B, self.n_agents), dtype=np.int64)
        self.has_last_action = np.zeros(B, dtype=bool)
        self.steps = np.zeros(B, dtype=np.int64)
        self.loop = np.zeros(B, dtype=np.uint64)
        self.key = np.zeros(B, dtype=np.uint64)
        self.counted_dead = np.zeros((B, self.n_enemies), dtype=bool)
        self.episode = np.zeros(B, dtype=np.uint64)  # episodes started so far, per battle
        # attack timing: an attack under way (damage point), the hold after it, shots still to land
        self.swinging = np.zeros((B, U), dtype=bool)
        self.windup, self.backswing = np.zeros((B, U), FLOAT), np.zeros((B, U), FLOAT)
        self.swing_target = np.zeros((B, U), dtype=np.int64)
        self.missile_left, self.blade_left = np.zeros((B, U), FLOAT), np.zeros((B, U), FLOAT)  # loops; 0: none
        self.missile_target = np.zeros((B, U), dtype=np.int64)
        self.blade_target = np.zeros((B, U), dtype=np.int64)

    UNIT_STATE = ("x", "y", "hp", "shield", "cooldown", "since_damage", "alive", "target", "move_x", "move_y",
                  "moving", "loop", "key", "swinging", "windup", "backswing", "swing_target", "missile_left",
                  "missile_target", "blade_left", "blade_target")  # fmt: skip

    def _reset_battles(self, which: np.ndarray) -> None:
        self.x[which], self.y[which] = self.spawn[:, 0], self.spawn[:, 1]
        self.hp[which], self.shield[which] = self.u_hp, self.u_shield
        self.cooldown[which], self.since_damage[which] = 0.0, 0.0
        self.alive[which] = True
        self.target[which] = -1
        self.moving[which] = False
        self.last_action[which] = 0
        self.has_last_action[which] = False
        self.steps[which] = 0
        self.loop[which] = 0
        self.counted_dead[which] = False
        self.swinging[which] = False
        self.windup[which], self.backswing[which] = 0.0, 0.0
        self.missile_left[which], self.blade_left[which] = 0.0, 0.0
        self.key[which] = _splitmix64(_splitmix64(self.seeds[which]) ^ self.episode[which])
        self.episode[which] += np.uint64(1)
        if self.variety:
            self._settle(which)

    def _settle(self, which: np.ndarray) -> None:
        """SMAC's first observation comes RESET_LOOPS game loops after the units appear: the packed armies
        spread apart (in each battle's own update order) and the enemy sets off; then SMAC numbers the agents
        by (unit type, x, y). Run on a copy of the battles that restart, so the others are untouched."""
        index = np.flatnonzero(which)
        part = copy.copy(self)
        part.n_battles = len(index)
        part.rows = np.arange(part.n_battles)[:, None]
        part.battle_offset = part.rows * self.n_units
        for name in self.UNIT_STATE:
            setattr(part, name, getattr(self, name)[index])
        for _ in range(RESET_LOOPS):
            part._game_loop()
        part._number_agents()
        for name in self.UNIT_STATE:
            getattr(self, name)[index] = getattr(part, name)

    def _number_agents(self) -> None:
        """Reorder the ally slots of every battle by (unit type, x, y), SMAC's agent ids."""
        nA = self.n_agents
        order = np.lexsort((self.y[:, :nA], self.x[:, :nA], np.broadcast_to(self.type_id[:nA], (self.n_battles, nA))))
        for name in self.UNIT_STATE:
            value = getattr(self, name)
            if value.ndim == 2:
                value[:, :nA] = value[self.rows, order]
        inverse = np.argsort(order, -1)
        for name in ("target", "swing_target", "missile_target", "blade_target"):  # unit indices that name allies
            value = getattr(self, name)
            ally = (value >= 0) & (value < nA)
            value[ally] = inverse[np.broadcast_to(self.rows, value.shape)[ally], value[ally]]

    # -- actions ------------------------------------------------------------------------
    def get_avail_actions(self) -> np.ndarray:
        """§3: no-op only for the dead; stop; a move if its probe cell is pathable; attack k within 6."""
        B, nA = self.n_battles, self.n_agents
        avail = np.zeros((B, nA, self.n_actions), dtype=np.int32)
        alive = self.alive[:, :nA]
        x, y = self.x[:, :nA], self.y[:, :nA]
        avail[:, :, 0] = ~alive
        avail[:, :, 1] = alive
        for d, (dx, dy) in enumerate(((0, 1), (0, -1), (1, 0), (-1, 0))):  # north, south, east, west
            cx = (x + dx).astype(np.int64)  # int() truncates toward 0, like SMAC's
            cy = (y + dy).astype(np.int64)
            inside = (cx >= 0) & (cx < MAP_SIZE) & (cy >= 0) & (cy < MAP_SIZE)
            avail[:, :, 2 + d] = alive & inside & self.pathing_grid[cx.clip(0, MAP_SIZE - 1), cy.clip(0, MAP_SIZE - 1)]
        dist = _norm(self.x[:, None, nA:] - x[:, :, None], self.y[:, None, nA:] - y[:, :, None])  # [B, nA, nE]
        avail[:, :, N_NO_ATTACK:] = alive[:, :, None] & self.alive[:, None, nA:] & (dist <= SHOOT_RANGE)
        return avail

    def check_actions(self, actions) -> np.ndarray:
        """Shape, range and availability of the agents' actions, each failure one clear line."""
        try:
            actions = np.asarray(actions)
        except Exception as error:
            raise InputError(f"actions could not be read as an array ({error})") from None
        shape = (self.n_battles, self.n_agents)
        if actions.shape != shape or not np.issubdtype(actions.dtype, np.integer):
            raise InputError(
                f"actions of shape {actions.shape} and dtype {actions.dtype} are not accepted; "
                f"accepted: integers of shape {shape}"
            )
        bad = (actions < 0) | (actions >= self.n_actions)
        if bad.any():
            b, i = np.argwhere(bad)[0]
            raise InputError(
                f"action {int(actions[b, i])} of agent {i} (battle {b}) is out of range; accepted: "
                f"0..{self.n_actions - 1}"
            )
        avail = self.get_avail_actions()
        ok = np.take_along_axis(avail, actions[..., None], -1)[..., 0] == 1
        if not ok.all():
            b, i = np.argwhere(~ok)[0]
            raise InputError(
                f"action {int(actions[b, i])} of agent {i} (battle {b}) is unavailable; "
                f"available: {np.flatnonzero(avail[b, i]).tolist()}"
            )
        return actions.astype(np.int64)

    def _issue_orders(self, actions: np.ndarray) -> None:
        """Each living agent's command replaces its order: stop, move to pos ± 2, or attack enemy k."""
        nA = self.n_agents
        self.moving[:, :nA] = (actions >= 2) & (actions <= 5)
        self.move_x[:, :nA] = self.x[:, :nA] + MOVE_AMOUNT * ((actions == 4).astype(float) - (actions == 5))
        self.move_y[:, :nA] = self.y[:, :nA] + MOVE_AMOUNT * ((actions == 2).astype(float) - (actions == 3))
        attack = actions >= N_NO_ATTACK
        target = np.where(attack, actions - N_NO_ATTACK + nA, -1)
        # a new order breaks off an attack under way (the shot is not fired and the weapon is ready again),
        # the backswing and the zealot's second hit; attacking the same target again continues it
        new = target != self.target[:, :nA]
        broken = new & self.swinging[:, :nA]
        self.cooldown[:, :nA] = np.where(broken, 0.0, self.cooldown[:, :nA])
        self.swinging[:, :nA] &= ~new
        self.backswing[:, :nA] = np.where(new, 0.0, self.backswing[:, :nA])
        self.blade_left[:, :nA] = np.where(new, 0.0, self.blade_left[:, :nA])
        self.target[:, :nA] = target

    # -- one game loop ------------------------------------------------------------------
    def _game_loop(self) -> None:
        """One of SC2's 16-per-second game loops for every unit of every battle."""
        nA, U = self.n_agents, self.n_units
        alive, x, y, r = self.alive, self.x, self.y, self.u_radius
        units = np.arange(U)
        dx = x[:, None, :] - x[:, :, None]  # [B, u, v]: offset from unit u to unit v
        dy = y[:, None, :] - y[:, :, None]
        dist = _norm(dx, dy)

        def toward_target(target):
            """Offset and edge distance from every unit to its target [B, U] (index clipped at 0)."""
            safe = target.clip(0)
            return (
                safe,
                dx[self.rows, units, safe],
                dy[self.rows, units, safe],
                dist[self.rows, units, safe] - r - r[safe],
            )

        # enemy targeting (§8): keep a target that attacks us or is in weapon range; otherwise take
        # the nearest ally within the acquisition radius, or any ally attacking us
        target = self.target
        attacking_me = (target[:, None, :nA] == units[nA:, None]) & alive[:, None, :nA]  # [B, nE, nA]
        safe, _, _, edge = toward_target(target)
        t_enemy = safe[:, nA:].clip(max=nA - 1)  # enemies only ever target allies
        keep = (
            (target[:, nA:] >= 0)
            & alive[self.rows, t_enemy]
            & (attacking_me[self.rows, self.enemy_index, t_enemy] | (edge[:, nA:] <= self.u_range[nA:]))
        )
        d = dist[:, nA:, :nA]  # enemy to ally
        candidate = alive[:, None, :nA] & (attacking_me | (d < self.acquire_range[nA:, None] + r[:nA]))
        d = np.where(candidate, d, np.inf)
        acquired = np.where(candidate.any(-1), d.argmin(-1), -1)
        target[:, nA:] = np.where(alive[:, nA:], np.where(keep, target[:, nA:], acquired), -1)

        # attacks: a unit with a living target in weapon range and a ready weapon starts one; the shot leaves
        # after the damage point (an attack under way continues while the target lives within range + slop)
        safe, to_x, to_y, t_edge = toward_target(target)
        has_target = (target >= 0) & alive & alive[self.rows, safe]
        in_range = has_target & (t_edge <= self.u_range)
        swing_edge = dist[self.rows, units, self.swing_target] - r - r[self.swing_target]
        self.swinging &= alive & alive[self.rows, self.swing_target] & (swing_edge <= self.u_range + RANGE_SLOP)
        start = in_range & (self.cooldown < 1.0) & ~self.swinging & ~(self.blade_left > 0)
        hashed = _splitmix64(self.key[:, None] ^ (self.loop[:, None] * np.uint64(U) + units.astype(np.uint64)))
        jitter = (hashed >> np.uint64(62)).astype(FLOAT) - 1.0  # U{-1, 0, 1, 2} game loops (pysc2)
        self.cooldown = np.where(start, self.cooldown + self.u_cooldown + jitter, self.cooldown)
        self.swinging |= start
        self.swing_target = np.where(start, target, self.swing_target)
        self.windup = np.where(start, self.u_damage_point, self.windup)
        fire = self.swinging & (self.windup <= 0.0)
        self.swinging &= ~fire
        self.windup -= self.swinging
        self.backswing = np.where(fire, self.u_backswing, np.maximum(self.backswing - 1.0, 0.0))

        # hits landing now: shots that hit at once, the zealot's second blade, missiles at the end of their flight
        missile_lands = (self.missile_left > 0) & (self.missile_left <= 1.0)
        blade_lands = (self.blade_left > 0) & (self.blade_left <= 1.0)
        self.missile_left = np.maximum(self.missile_left - 1.0, 0.0)
        self.blade_left = np.maximum(self.blade_left - 1.0, 0.0)
        launch = fire & self.u_missile
        flight = dist[self.rows, units, self.swing_target] / MISSILE_SPEED
        self.missile_left = np.where(launch, np.maximum(flight, 1.0), self.missile_left)
        self.missile_target = np.where(launch, self.swing_target, self.missile_target)
        instant = fire & ~self.u_missile
        self.blade_left = np.where(instant & (self.u_second_hit > 0), self.u_second_hit, self.blade_left)
        self.blade_target = np.where(instant, self.swing_target, self.blade_target)
        blade_lands &= alive  # a dead zealot's second blade never lands; a missile in flight does
        events = (
            (instant, self.swing_target, self.first_hits),
            (blade_lands, self.blade_target, 1),
            (missile_lands, self.missile_target, self.u_hits),
        )
        total, n_hits = self._hits(events)
        shield, hp = self._damaged(total, n_hits)
        if self.variety:  # of two units that kill each other in one loop, the one updated first fires
            order = _splitmix64(hashed)
            lethal = instant & (hp <= 0) & alive  # shooters that die in this loop
            if lethal.any():
                attacked_earlier = (
                    instant[:, None, :]
                    & (self.swing_target[:, None, :] == units[None, :, None])
                    & (order[:, None, :] < order[:, :, None])
                ).any(-1)  # [B, u]: a unit updated before u hits u now
                cancelled = lethal & attacked_earlier
                if cancelled.any():
                    events = ((instant & ~cancelled, self.swing_target, self.first_hits),) + events[1:]
                    total, n_hits = self._hits(events)
                    shield, hp = self._damaged(total, n_hits)
        self.shield, self.hp = shield, hp
        self.since_damage = np.where(total > 0, 0.0, self.since_damage + 1)
        self.cooldown = np.maximum(self.cooldown - 1.0, 0.0)

        # movement: chase a target out of range, walk to a move point, enemies without a target attack-move
        hold = self.swinging | (self.backswing > 0) | (self.blade_left > 0)  # legacy weapons: stand while firing
        chase = has_target & ~in_range & ~hold
        enemy_idle = alive & ~has_target & ~self.is_ally
        walk_x = np.where(chase, to_x, np.where(enemy_idle, self.attack_point[0] - x, self.move_x - x))
        walk_y = np.where(chase, to_y, np.where(enemy_idle, self.attack_point[1] - y, self.move_y - y))
        length = _norm(walk_x, walk_y)
        walking = alive & ~hold & (chase | (self.moving & ~has_target) | enemy_idle)
        room = np.where(chase, t_edge - self.u_range + 1e-6, length)
        step = np.where(walking, np.minimum(self.u_speed, np.maximum(room, 0.0)), 0.0)
        self.moving &= ~(walking & ~chase & (step >= length))  # a move order reached is finished
        scale = step / np.maximum(length, 1e-9)

        # collisions (positions as at the start of the loop): overlapping living units move apart. Without variety
        # each moves half the overlap; with it, who gives way is drawn anew each loop: every unit draws a weight w
        # from this loop's update order and u moves 1/2 + PUSH_SHARE_SPREAD (w_u − w_v) of the pair's overlap
        # (random per-pair shares, the vectorised stand-in for SC2's sequential update, docs/smac_simulator.md)
        overlap = np.maximum(self.contact - dist, 0.0) * (alive[:, :, None] & alive[:, None, :])
        if self.variety:
            give_way = ((order >> np.uint64(40)).astype(FLOAT) + 1) / FLOAT(2**24)  # uniform in (0, 1], exact
            overlap *= 0.5 + PUSH_SHARE_SPREAD * (give_way[:, :, None] - give_way[:, None, :])
        else:
            overlap *= 0.5
        push = overlap / np.maximum(dist, 1e-9)
        new_x = x + walk_x * scale - np.einsum("buv,buv->bu", dx, push)  # (einsum: a fast row sum)
        new_y = y + walk_y * scale - np.einsum("buv,buv->bu", dy, push)
        self.x, self.y = self._keep_on_ground(x, y, new_x, new_y)

        # regeneration, deaths
        regen = (self.since_damage >= SHIELD_REGEN_DELAY) & alive
        self.shield = np.where(regen, np.minimum(self.shield + SHIELD_REGEN, self.u_shield), self.shield)
        self.hp = np.where(alive & (self.hp > 0), np.minimum(self.hp + self.u_hp_regen, self.u_hp), self.hp)
        died = alive & (self.hp <= 0)
        if died.any():
            self.alive &= ~died
            self.hp[died], self.shield[died] = 0.0, 0.0
            lost = ~self.alive[self.rows, self.target.clip(0)]
            self.target[lost] = -1  # an attack order on a dead unit ends: the unit goes idle
            self.swinging &= self.alive & self.alive[self.rows, self.swing_target]
        self.loop += np.uint64(1)

    def _hits(self, events) -> tuple[np.ndarray, np.ndarray]:
        """Damage and hit count landing on every unit [B, U] from (which units' hits land, on whom, how many)."""
        U, size = self.n_units, self.n_battles * self.n_units
        total, n_hits = np.zeros(size), np.zeros(size)
        for lands, victim, hits in events:
            if not lands.any():
                continue
            per_hit = self.u_damage + self.u_bonus_vs_armoured * self.u_armoured[victim]
            flat = (self.battle_offset + victim)[lands]
            count = np.broadcast_to(hits, lands.shape)[lands].astype(FLOAT)
            total += np.bincount(flat, per_hit[lands] * count, size)
            n_hits += np.bincount(flat, count, size)
        return total.reshape(-1, U), n_hits.reshape(-1, U)

    def _damaged(self, total: np.ndarray, n_hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shields and HP after the loop's hits (§7): shields first, then HP less armour per hit (at least 0.5);
        the hits on one unit in one loop together."""
        absorbed = np.minimum(self.shield, total)
        overflow = total - absorbed
        hp_hits = np.minimum(n_hits, np.ceil(overflow * n_hits / np.maximum(total, 1e-9) - 1e-9))
        hp_loss = np.where(overflow > 0, np.maximum(overflow - self.u_armour * hp_hits, 0.5 * hp_hits), 0.0)
        return (self.shield - absorbed).astype(FLOAT), (self.hp - hp_loss).astype(FLOAT)

    def _pathable(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        column = np.clip(x + 2, 0, MAP_SIZE + 3).astype(np.int64)
        return self.padded_grid[column * (MAP_SIZE + 4) + np.clip(y + 2, 0, MAP_SIZE + 3).astype(np.int64)]

    def _keep_on_ground(self, x, y, new_x, new_y):
        """Centres stay on pathable cells: a blocked move keeps the axis that is free, or stays."""
        ok = self._pathable(new_x, new_y)
        if ok.all():
            return new_x, new_y
        x_ok, y_ok = self._pathable(new_x, y), self._pathable(x, new_y)
        return (np.where(ok | x_ok, new_x, x), np.where(ok | (~x_ok & y_ok), new_y, y))

    # -- one SMAC step ------------------------------------------------------------------
    def step(self, actions):
        """§6: record the last action, issue orders, run 8 game loops, then reward and end codes."""
        if not self.started:
            raise InputError("step() before reset(); call reset() first")
        actions = self.check_actions(actions)
        nA = self.n_agents
        self.last_action[:] = actions
        self.has_last_action[:] = True
        self._issue_orders(actions)
        prev = (self.hp + self.shield)[:, nA:]
        for _ in range(LOOPS_PER_STEP):
            self._game_loop()
        self.steps += 1

        # reward: damage to the enemies (regenerated shields count negative) plus 10 per new death,
        # made positive by SMAC's abs() (reward_only_positive), +200 on a win, scaled to 20
        enemy_dead = ~self.alive[:, nA:]
        new_dead = enemy_dead & ~self.counted_dead
        delta = np.where(
            new_dead, prev + REWARD_DEATH, np.where(self.counted_dead, 0.0, prev - (self.hp + self.shield)[:, nA:])
        )
        self.counted_dead |= enemy_dead
        reward = np.abs(delta.sum(-1))
        allies_left, enemies_left = self.alive[:, :nA].any(-1), self.alive[:, nA:].any(-1)
        won = allies_left & ~enemies_left
        ended = ~(allies_left & enemies_left)  # a win, a defeat, or both sides dead (a draw)
        timeout = ~ended & (self.steps >= self.episode_limit)
        terminated = ended | timeout
        reward = (reward + REWARD_WIN * won) / (self.max_reward / REWARD_SCALE_RATE)

        info = {
            "battle_won": won,
            "timeout": timeout,
            "dead_allies": (~self.alive[:, :nA]).sum(-1),
            "dead_enemies": enemy_dead.sum(-1),
            "episode_length": self.steps.copy(),
        }
        if self.auto_reset and terminated.any():
            avail = self.get_avail_actions()
            info["final_obs"], info["final_state"], info["final_avail"] = self.get_obs(avail), self.get_state(), avail
            self._reset_battles(terminated)
        avail = self.get_avail_actions()
        return self.get_obs(avail), self.get_state(), avail, reward.astype(np.float32), terminated, info

    # -- observation and state ----------------------------------------------------------
    def get_obs(self, avail: np.ndarray | None = None) -> np.ndarray:
        """§4: move availability ‖ enemy rows ‖ other-ally rows ‖ own features; zeros for the dead."""
        B, nA, nE = self.n_battles, self.n_agents, self.n_enemies
        utb = self.unit_type_bits
        health = self.hp / self.u_hp
        shield = self.shield / np.maximum(self.u_shield, 1.0)
        onehot = np.eye(utb, dtype=np.float32)[self.type_bit] if utb else None  # [U, utb]
        avail = self.get_avail_actions() if avail is None else avail

        def rows(seen_units: np.ndarray, first, shield_bit: int, nf: int) -> np.ndarray:
            """Rows about the units seen_units[i] from agent i, filled when alive and within sight 9."""
            rel_x = self.x[:, seen_units] - self.x[:, :nA, None]  # [B, nA, K]
            rel_y = self.y[:, seen_units] - self.y[:, :nA, None]
            dist = _norm(rel_x, rel_y)
            block = np.zeros(dist.shape + (nf,), dtype=np.float32)
            block[..., 0] = first
            block[..., 1] = dist / SIGHT_RANGE
            block[..., 2] = rel_x / SIGHT_RANGE
            block[..., 3] = rel_y / SIGHT_RANGE
            block[..., 4] = health[:, seen_units]
            if shield_bit:
                block[..., 5] = shield[:, seen_units]
            if utb:
                block[..., 5 + shield_bit :] = onehot[seen_units]
            seen = (dist < SIGHT_RANGE) & self.alive[:, seen_units]
            return (block * seen[..., None]).reshape(B, nA, -1)

        enemies = np.broadcast_to(np.arange(nA, nA + nE), (nA, nE))
        own = [health[:, :nA, None]]
        if self.shield_ally:
            own.append(shield[:, :nA, None])
        if utb:
            own.append(np.broadcast_to(onehot[:nA], (B, nA, utb)))
        obs = np.concatenate(
            [
                avail[:, :, 2:6].astype(np.float32),
                rows(enemies, avail[:, :, N_NO_ATTACK:], self.shield_enemy, self.nf_en),
                rows(self.others, 1.0, self.shield_ally, self.nf_al),
                *own,
            ],
            -1,
        )
        obs *= self.alive[:, :nA, None]
        return obs

    def get_state(self) -> np.ndarray:
        """§5: ally rows ‖ enemy rows ‖ last actions one-hot; dead units are zero rows."""
        B, nA, nE = self.n_battles, self.n_agents, self.n_enemies
        utb = self.unit_type_bits
        rel = (self.pos - MAP_SIZE / 2) / MAP_SIZE  # SMAC: (x - map centre) / max_distance
        health = self.hp / self.u_hp
        shield = self.shield / np.maximum(self.u_shield, 1.0)
        ally = np.zeros((B, nA, self.ally_state_dim), dtype=np.float32)
        ally[..., 0] = health[:, :nA]
        ally[..., 1] = self.cooldown[:, :nA] / self.u_max_cooldown[:nA]
        ally[..., 2:4] = rel[:, :nA]
        if self.shield_ally:
            ally[..., 4] = shield[:, :nA]
        enemy = np.zeros((B, nE, self.enemy_state_dim), dtype=np.float32)
        enemy[..., 0] = health[:, nA:]
        enemy[..., 1:3] = rel[:, nA:]
        if self.shield_enemy:
            enemy[..., 3] = shield[:, nA:]
        if utb:
            onehot = np.eye(utb)[self.type_bit]
            ally[..., -utb:] = onehot[:nA]
            enemy[..., -utb:] = onehot[nA:]
        ally *= self.alive[:, :nA, None]
        enemy *= self.alive[:, nA:, None]
        last = np.eye(self.n_actions, dtype=np.float32)[self.last_action] * self.has_last_action[:, None, None]
        return np.concatenate([ally.reshape(B, -1), enemy.reshape(B, -1), last.reshape(B, -1)], -1)

    def env_info(self) -> dict:
        return {
            "state_shape": self.state_dim,
            "obs_shape": self.obs_dim,
            "n_actions": self.n_actions,
            "n_agents": self.n_agents,
            "episode_limit": self.episode_limit,
        }

    def render(self, battle: int = 0) -> np.ndarray:
        """One battle drawn as an RGB array [H, W, 3] uint8 (see `draw_battle`)."""
        if not self.started:
            raise InputError("render() before reset(); call reset() first")
        if not is_int(battle) or not 0 <= battle < self.n_battles:
            raise InputError(f"battle={battle!r} is not accepted; accepted: an integer in 0..{self.n_battles - 1}")
        return draw_battle(self, int(battle))


# ---------------------------------------------------------------------------------------
# Rendering (matplotlib's Agg canvas; no window)
# ---------------------------------------------------------------------------------------
ALLY_COLOUR, ENEMY_COLOUR, DEAD_COLOUR = (0.12, 0.47, 0.71), (0.84, 0.15, 0.16), (0.6, 0.6, 0.6)
FRAME_INCHES, FRAME_DPI = 4.0, 80  # 320 x 320 pixels


def draw_battle(battles: SMACBatch, battle: int) -> np.ndarray:
    """Battle `battle` as an RGB array [320, 320, 3] uint8: pathable ground light, each unit a circle of its
    radius in its team's colour (allies blue, enemies red), dead units grey and hollow, a health bar (green)
    and a shield bar (cyan) above each living unit, and a line from each attacker to its target."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    b = battles
    figure = Figure(figsize=(FRAME_INCHES, FRAME_INCHES), dpi=FRAME_DPI)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(np.where(b.pathing_grid.T, 0.95, 0.75), cmap="gray", vmin=0, vmax=1, origin="lower",
                extent=(0, MAP_SIZE, 0, MAP_SIZE))  # fmt: skip
    x, y, alive = b.x[battle], b.y[battle], b.alive[battle]
    for u in range(b.n_units):
        colour = ALLY_COLOUR if u < b.n_agents else ENEMY_COLOUR
        if not alive[u]:
            axes.add_patch(Circle((x[u], y[u]), b.u_radius[u], fill=False, edgecolor=DEAD_COLOUR, linewidth=1))
            continue
        target = b.target[battle, u]
        if target >= 0 and alive[target]:
            axes.plot([x[u], x[target]], [y[u], y[target]], color=colour, linewidth=0.8, alpha=0.6)
        axes.add_patch(Circle((x[u], y[u]), b.u_radius[u], color=colour))
        for row, (value, full, bar) in enumerate(((b.hp[battle, u], b.u_hp[u], "green"),
                                                   (b.shield[battle, u], b.u_shield[u], "cyan"))):  # fmt: skip
            if full > 0:
                top = y[u] + b.u_radius[u] + 0.25 + 0.3 * row
                axes.plot([x[u] - 0.5, x[u] - 0.5 + value / full], [top, top], color=bar, linewidth=2)
    axes.set_xlim(0, MAP_SIZE)
    axes.set_ylim(0, MAP_SIZE)
    axes.set_axis_off()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_gif(frames: list[np.ndarray], path: str, fps: int = 8) -> None:
    """Frames [H, W, 3] uint8 as an animated GIF (Pillow, which matplotlib brings), written atomically."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    tmp = path + ".tmp"
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------
# Scripted policies: the checks that each map plays like SMAC (docs/smac_simulator.md)
# ---------------------------------------------------------------------------------------
SCRIPTED_POLICIES = ("random", "attack-nearest", "focus-fire", "kite")
MOVE_DIRECTIONS = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])  # actions 2..5: N, S, E, W


def scripted_actions(battles: SMACBatch, policy: str, rng: np.random.Generator) -> np.ndarray:
    """Actions [B, nA] of a scripted team that reads the simulator's state (positions, cooldowns).

    random: uniform over the available actions. attack-nearest: shoot the nearest enemy in
    range, else walk toward the nearest enemy. focus-fire: every agent shoots the weakest enemy
    (health + shield) in its range, else walks toward the nearest. kite: focus fire, but while
    the weapon cools down, step away from the enemies close by (stalkers vs zealots).
    """
    if policy not in SCRIPTED_POLICIES:
        raise InputError(f"unknown scripted policy {policy!r}; accepted: {', '.join(SCRIPTED_POLICIES)}")
    b, nA = battles, battles.n_agents
    avail = b.get_avail_actions()
    if policy == "random":
        return (rng.random(avail.shape) * avail).argmax(-1)
    rel = b.pos[:, None, nA:] - b.pos[:, :nA, None]  # [B, nA, nE, 2]: agent to enemy
    dist = np.where(b.alive[:, None, nA:], np.sqrt((rel**2).sum(-1)), np.inf)
    nearest = dist.argmin(-1)
    toward = np.take_along_axis(rel, nearest[..., None, None].repeat(2, -1), 2)[:, :, 0]  # [B, nA, 2]
    can_move = avail[:, :, 2:6] == 1

    def walk(direction: np.ndarray) -> np.ndarray:
        """The available move closest to a direction, or stop when none is."""
        score = np.where(can_move, np.einsum("bid,md->bim", direction, MOVE_DIRECTIONS), -np.inf)
        return np.where(can_move.any(-1), 2 + score.argmax(-1), 1)

    in_range = avail[:, :, N_NO_ATTACK:] == 1
    # attack-nearest shoots the nearest enemy in range; the others the weakest (health + shield)
    score = dist if policy == "attack-nearest" else (b.hp + b.shield)[:, None, nA:] + 1e-3 * dist
    shoot = N_NO_ATTACK + np.where(in_range, score, np.inf).argmin(-1)
    actions = np.where(in_range.any(-1), shoot, walk(toward))
    if policy == "kite":
        # while the weapon cools down (more than 4 loops left), step away from the enemies within 7 (the
        # sum of the unit vectors away from each: rel / dist), with a pull toward the map centre so that
        # nobody is cornered
        near = np.where(dist < 7.0, 1.0 / np.maximum(dist, 0.5), 0.0)
        away = -(rel * near[..., None]).sum(2)
        away /= np.maximum(np.linalg.norm(away, axis=-1, keepdims=True), 1e-9)
        centre = (MAP_SIZE / 2 - b.pos[:, :nA]) / (MAP_SIZE / 2)
        retreat = (b.cooldown[:, :nA] > 4.0) & (near > 0).any(-1)
        actions = np.where(retreat, walk(away + centre), actions)
    return np.where(b.alive[:, :nA], actions, 0)


def play_scripted(map_name: str, policy: str, n_battles: int, seed: int = 0, variety: bool | None = None):
    """The first episode of each of n_battles battles played by a scripted team:
    (won [n] bool, undiscounted return [n], episode length [n]); `variety` as SMACBatch's."""
    battles = SMACBatch(map_name, n_battles, seed, variety=variety)
    battles.reset()
    rng = np.random.default_rng(seed)
    returns, length = np.zeros(n_battles), np.zeros(n_battles)
    won, finished = np.zeros(n_battles, dtype=bool), np.zeros(n_battles, dtype=bool)
    while not finished.all():
        *_, reward, terminated, info = battles.step(scripted_actions(battles, policy, rng))
        returns += reward * ~finished
        newly = terminated & ~finished
        won |= info["battle_won"] & newly
        length[newly] = info["episode_length"][newly]
        finished |= terminated
    return won, returns, length


# ---------------------------------------------------------------------------------------
# SMAC's single-battle interface (smac.env.StarCraft2Env), method for method (§1)
# ---------------------------------------------------------------------------------------
class StarCraft2Env:
    """One battle of the built-in simulator behind SMAC's `StarCraft2Env` interface.

    Only SMAC's default settings are supported (those CFCQL's datasets used, §1); `seed`
    decides every random draw of every episode this object plays.
    """

    def __init__(self, map_name: str = "3s_vs_5z", seed: int | None = None, **smac_kwargs):
        unsupported = {k: v for k, v in smac_kwargs.items() if SMAC_DEFAULTS.get(k, object()) != v}
        if unsupported:
            raise InputError(
                f"the built-in simulator supports SMAC's default settings only; got {unsupported}; "
                f"accepted: {SMAC_DEFAULTS}"
            )
        if seed is not None:
            check_seed_value(seed)
        self.map_name = map_name
        self._seed = 0 if seed is None else int(seed)
        self._battle = SMACBatch(map_name, 1, self._seed, auto_reset=False)
        b = self._battle
        self.n_agents, self.n_enemies, self.n_actions = b.n_agents, b.n_enemies, b.n_actions
        self.episode_limit, self.max_reward = b.episode_limit, b.max_reward
        self.map_x = self.map_y = MAP_SIZE
        self.max_distance_x = self.max_distance_y = MAP_SIZE
        self.pathing_grid = b.pathing_grid.copy()
        self.battles_won = self.battles_game = self.timeouts = self.force_restarts = 0
        self._terminated = True

    def reset(self):
        """Start a new episode; returns (obs list, state) like SMAC."""
        self._battle.reset()
        self._terminated = False
        return self.get_obs(), self.get_state()

    def step(self, actions):
        """Advance 8 game loops; returns (reward, terminated, info) like SMAC."""
        if self._terminated:
            raise InputError("step() after the episode ended; call reset() first")
        try:
            ok = len(actions) == self.n_agents and all(is_int(a) for a in actions)
        except TypeError:
            ok = False
        if not ok:
            raise InputError(f"actions {actions!r} are not accepted; accepted: {self.n_agents} integers")
        actions = np.asarray([int(a) for a in actions], dtype=np.int64)[None]
        _, _, _, reward, terminated, info = self._battle.step(actions)
        won, terminated = bool(info["battle_won"][0]), bool(terminated[0])
        if terminated:
            self._terminated = True
            self.battles_game += 1
            self.battles_won += won
            self.timeouts += bool(info["timeout"][0])
        return (
            float(reward[0]),
            terminated,
            {
                "battle_won": won,
                "dead_allies": int(info["dead_allies"][0]),
                "dead_enemies": int(info["dead_enemies"][0]),
            },
        )

    def get_obs(self) -> list[np.ndarray]:
        return list(self._battle.get_obs()[0])

    def _agent(self, agent_id) -> int:
        if not is_int(agent_id) or not 0 <= agent_id < self.n_agents:
            raise InputError(f"agent_id={agent_id!r} is not accepted; accepted: an integer in 0..{self.n_agents - 1}")
        return int(agent_id)

    def get_obs_agent(self, agent_id: int) -> np.ndarray:
        return self._battle.get_obs()[0, self._agent(agent_id)]

    def get_obs_size(self) -> int:
        return self._battle.obs_dim

    def get_state(self) -> np.ndarray:
        return self._battle.get_state()[0]

    def get_state_size(self) -> int:
        return self._battle.state_dim

    def get_avail_actions(self) -> list[list[int]]:
        return self._battle.get_avail_actions()[0].tolist()

    def get_avail_agent_actions(self, agent_id: int) -> list[int]:
        return self._battle.get_avail_actions()[0, self._agent(agent_id)].tolist()

    def get_total_actions(self) -> int:
        return self.n_actions

    def get_env_info(self) -> dict:
        info = self._battle.env_info()
        ally = ["health", "energy/cooldown", "rel_x", "rel_y"] + ["shield"] * self._battle.shield_ally
        enemy = ["health", "rel_x", "rel_y"] + ["shield"] * self._battle.shield_enemy
        types = [f"type_{k}" for k in range(self._battle.unit_type_bits)]
        return {**info, "agent_features": ally + types, "enemy_features": enemy + types}

    def get_stats(self) -> dict:
        return {
            "battles_won": self.battles_won,
            "battles_game": self.battles_game,
            "battles_draw": self.timeouts,
            "win_rate": self.battles_won / max(self.battles_game, 1),
            "timeouts": self.timeouts,
            "restarts": self.force_restarts,
        }

    @property
    def last_action(self) -> np.ndarray:
        return np.eye(self.n_actions, dtype=np.float32)[self._battle.last_action[0]] * self._battle.has_last_action[0]

    def seed(self) -> int:
        return self._seed

    def close(self) -> None:
        pass

    def render(self, mode: str = "rgb_array") -> np.ndarray:
        """The battle as an RGB array (the built-in simulator draws `rgb_array` only; SMAC's pygame window
        needs the real game's renderer)."""
        if mode != "rgb_array":
            raise InputError(f"render mode {mode!r} is not accepted; accepted: rgb_array")
        return self._battle.render(0)

    def save_replay(self) -> None:
        raise NotImplementedError("replays need StarCraft II: use backend='sc2'")


SMAC_DEFAULTS = {
    "step_mul": 8,
    "move_amount": 2,
    "difficulty": "7",
    "continuing_episode": False,
    "obs_all_health": True,
    "obs_own_health": True,
    "obs_last_action": False,
    "obs_pathing_grid": False,
    "obs_terrain_height": False,
    "obs_timestep_number": False,
    "obs_instead_of_state": False,
    "state_last_action": True,
    "state_timestep_number": False,
    "reward_sparse": False,
    "reward_only_positive": True,
    "reward_death_value": 10,
    "reward_win": 200,
    "reward_defeat": 0,
    "reward_negative_scale": 0.5,
    "reward_scale": True,
    "reward_scale_rate": 20,
    "heuristic_ai": False,
}
SC2_INSTALL = (
    "the 'sc2' back end needs StarCraft II and SMAC from its source repository: "
    "pip install git+https://github.com/oxwhirl/smac.git, then set SC2PATH to the StarCraft II "
    "install (PyPI's 'smac' is SMAC3, a different project)"
)


def make_env(map_name: str, backend: str = "sim", seed: int | None = None):
    """A single battle with SMAC's interface: the built-in simulator ('sim') or the real game ('sc2')."""
    check_map(map_name)
    if backend == "sim":
        return StarCraft2Env(map_name=map_name, seed=seed)
    if backend == "sc2":
        try:
            from smac.env import StarCraft2Env as RealStarCraft2Env  # imported only when asked for
        except ImportError:
            raise InputError(SC2_INSTALL) from None
        return RealStarCraft2Env(map_name=map_name, seed=seed)
    raise InputError(f"unknown SMAC back end {backend!r}; accepted: sim, sc2")


# ---------------------------------------------------------------------------------------
# PettingZoo
# ---------------------------------------------------------------------------------------
class SMACParallelEnv(ParallelEnv):
    """SMAC as a PettingZoo ParallelEnv (either back end). The team reward goes to every agent;
    dead agents stay in the episode with only the no-op available; a win or a defeat is a
    termination, the episode limit a truncation, and `infos[agent]["battle_won"]` says which.

    An unavailable action is an error, as in SMAC. `unavailable="stop"` replaces it with stop
    (the no-op for the dead) instead, for samplers that ignore the action mask, such as
    PettingZoo's `parallel_seed_test`."""

    metadata = {"name": "smac_v1", "render_modes": ["rgb_array"]}

    def __init__(
        self,
        map_name: str = "3s_vs_5z",
        backend: str = "sim",
        seed: int | None = None,
        unavailable: str = "error",
        render_mode: str | None = None,
    ):
        if unavailable not in ("error", "stop"):
            raise InputError(f"unavailable={unavailable!r} is not accepted; accepted: error, stop")
        if render_mode not in (None, "rgb_array"):
            raise InputError(f"render_mode={render_mode!r} is not accepted; accepted: None, rgb_array")
        self.map_name, self.backend, self.unavailable = map_name, backend, unavailable
        self.env = make_env(map_name, backend, seed)
        info = self.env.get_env_info()
        self.possible_agents = [f"agent_{i}" for i in range(info["n_agents"])]
        self.agents: list[str] = []
        n_actions = info["n_actions"]
        # every observation feature lies in [-1, 1] (offsets are taken only within sight 9); the state's
        # cooldown ratio exceeds 1 for hydralisks (period 13.2 + jitter over SMAC's normaliser 10)
        self._observation_space = spaces.Dict(
            {
                "observation": spaces.Box(-1.0, 1.0, (info["obs_shape"],), np.float32),
                "action_mask": spaces.Box(0, 1, (n_actions,), np.int8),
            }
        )
        self._action_space = spaces.Discrete(n_actions)
        self.state_space = spaces.Box(-1.0, 2.0, (info["state_shape"],), np.float32)
        self.render_mode = render_mode
        self.episode_limit = info["episode_limit"]

    @functools.cache
    def observation_space(self, agent):
        return self._observation_space

    @functools.cache
    def action_space(self, agent):
        return self._action_space

    def _observations(self):
        obs, avail = self.env.get_obs(), self.env.get_avail_actions()
        return {
            a: {"observation": np.asarray(obs[i], dtype=np.float32), "action_mask": np.asarray(avail[i], dtype=np.int8)}
            for i, a in enumerate(self.agents)
        }

    def reset(self, seed=None, options=None):
        if seed is not None:  # SMAC takes its seed at construction (the real game: a new SC2 process)
            self.env.close()
            self.env = make_env(self.map_name, self.backend, seed)
        self.env.reset()
        self.agents = list(self.possible_agents)
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions):
        if not self.agents:
            raise InputError("step() after the episode ended; call reset() first")
        if (
            not isinstance(actions, dict)
            or set(actions) != set(self.agents)
            or not all(is_int(actions[a]) for a in self.agents)
        ):
            raise InputError(
                f"actions {actions!r} are not accepted; accepted: a dict of one integer action for each of "
                f"{self.agents}"
            )
        chosen = [int(actions[a]) for a in self.agents]
        if self.unavailable == "stop":
            avail = self.env.get_avail_actions()
            chosen = [a if 0 <= a < len(m) and m[a] else (1 if m[1] else 0) for a, m in zip(chosen, avail)]
        reward, terminated, info = self.env.step(chosen)
        # SMAC ends at the limit with neither side wiped out: a truncation, not a termination
        timeout = terminated and info["dead_allies"] < len(self.agents) and info["dead_enemies"] < self.env.n_enemies
        observations = self._observations()
        rewards = {a: float(reward) for a in self.agents}
        terminations = {a: bool(terminated and not timeout) for a in self.agents}
        truncations = {a: bool(timeout) for a in self.agents}
        infos = {a: {"battle_won": bool(info["battle_won"])} for a in self.agents}
        if terminated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        return np.asarray(self.env.get_state(), dtype=np.float32)

    def render(self) -> np.ndarray:
        """The battle as an RGB array [H, W, 3] (PettingZoo's render_mode="rgb_array")."""
        if self.render_mode != "rgb_array":
            raise InputError(f"render() needs render_mode='rgb_array' (this env has {self.render_mode!r})")
        return self.env.render(mode="rgb_array")

    def close(self):
        self.env.close()


def main() -> None:
    """`python -m envs.smac --map 3s_vs_5z --policy kite --gif battle.gif`: one battle of a scripted team, drawn
    step by step into an animated GIF."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--map", default="3s_vs_5z", help=f"one of {', '.join(MAPS)}")
    parser.add_argument("--policy", default="kite", help=f"scripted team: one of {', '.join(SCRIPTED_POLICIES)}")
    parser.add_argument("--seed", type=int, default=0, help="battle seed, in [0, 2**32)")
    parser.add_argument("--gif", default="battle.gif", help="the GIF to write")
    parser.add_argument("--fps", type=int, default=8, help="frames (SMAC steps) per second of the GIF")
    args = parser.parse_args()
    try:
        if args.policy not in SCRIPTED_POLICIES:
            raise InputError(f"unknown scripted policy {args.policy!r}; accepted: {', '.join(SCRIPTED_POLICIES)}")
        if args.fps < 1:
            raise InputError(f"--fps {args.fps} is not accepted; accepted: an integer >= 1")
        directory = os.path.dirname(os.path.abspath(args.gif))
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            raise InputError(f"--gif {args.gif!r} cannot be written (its folder is missing or read-only)")
        battles = SMACBatch(args.map, 1, args.seed, auto_reset=False)
        battles.reset()
        rng, frames, terminated = np.random.default_rng(args.seed), [battles.render(0)], False
        while not terminated:
            *_, terminated, info = battles.step(scripted_actions(battles, args.policy, rng))
            terminated = bool(terminated[0])
            frames.append(battles.render(0))
        write_gif(frames, args.gif, args.fps)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(
        f"{args.map} {args.policy}: {'won' if info['battle_won'][0] else 'lost'} in {len(frames) - 1} steps; {args.gif}"
    )


if __name__ == "__main__":
    main()
