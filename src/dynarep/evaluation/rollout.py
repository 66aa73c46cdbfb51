"""`dynarep eval`: closed-loop rollouts of a trained policy in MetaWorld, with honest statistics.

Episodes use configuration seeds from the evaluation stream (never those of the demonstrations),
and the observation pipeline of collection (same cameras, crop, sampling), read from the dataset
the policy was trained on. Beside every policy, on the same seeds, the *blind replay* baseline:
the mean demonstration action sequence executed open loop, which shows how much of a success
rate the observation earns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dynarep.config import save_json
from dynarep.errors import ConfigError
from dynarep.runtime import peak_memory_mb, provenance, release_free_memory


@dataclass
class EvalArgs:
    """Roll out a trained policy in MetaWorld and write success statistics as JSON."""

    policy: Path = Path("runs/policy")
    """A `dynarep train` output directory."""
    task: str | None = None
    """MetaWorld task; default: the task of the training data when there is one."""
    episodes: int = 20
    """Episodes per evaluation seed."""
    seeds: tuple[int, ...] = (0,)
    """Evaluation seeds; each draws `episodes` fresh configurations from the evaluation stream."""
    out: Path = Path("eval.json")
    max_steps: int = 200
    blind_replay: bool = True
    """Also run the mean demonstration actions open loop on the same configurations."""
    gifs: int = 0
    """Save this many episodes (half successes, half failures, as they occur) as GIFs beside --out."""
    device: str = "cpu"
    sample_seed: int = 0
    """Seed of the policy's diffusion noise (each episode draws from (this, its configuration))."""
    workers: int = 1
    """Processes that roll out episodes in parallel (CPU; one per core). The outcomes are the same
    for any number of workers."""
    backend: str = "torch"
    """Denoiser inference: torch, or onnxruntime (CPU, about twice as fast per action chunk; the
    same weights, outputs equal to about 1e-6, so individual episodes may differ)."""


@dataclass
class EpisodeResult:
    seed: int
    index: int
    env_seed: int
    success: bool
    length: int
    timing: dict[str, float] = field(default_factory=dict)
    final_state: list[float] = field(default_factory=list)


def bootstrap_ci(outcomes: np.ndarray, n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of a success rate over episodes."""
    outcomes = np.asarray(outcomes, dtype=np.float64)
    if outcomes.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = rng.choice(outcomes, size=(n, outcomes.size), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def mean_demo_actions(demo_paths: list[str], task: str) -> np.ndarray:
    """The per-step mean of a task's demonstration actions; episodes that ended hold still."""
    from dynarep.data.store import ZarrDataset

    episodes = []
    for path in demo_paths:
        ds = ZarrDataset.open(path)
        actions = ds.read("action")
        for e in range(ds.n_episodes):
            if ds.episode_info(e)["task"] in (task, None):
                episodes.append(actions[ds.episode_slice(e)])
    if not episodes:
        raise ConfigError(f"no demonstration of task '{task}' in {demo_paths} for the blind replay")
    longest = max(len(a) for a in episodes)
    padded = np.full((len(episodes), longest, episodes[0].shape[1]), np.nan, np.float32)
    for i, a in enumerate(episodes):
        padded[i, : len(a)] = a
    return np.nanmean(padded, axis=0)


def observation_config(policy_meta: dict):
    """The observation pipeline of the training data (ours records it; DP3 stores fall back to defaults)."""
    from dynarep.sim.scene import ObservationConfig

    obs = policy_meta.get("observation") or {}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in obs.items() if k in ObservationConfig.__dataclass_fields__}
    return ObservationConfig(**fields)


class PolicyRunner:
    """Keeps the observations of the last n_obs_steps environment steps (as DP3's multi-step
    wrapper does: the policy was trained on consecutive steps) and predicts action chunks."""

    def __init__(self, policy, device: str, sample_seed: int):
        self.policy, self.device = policy, torch.device(device)
        self.n_obs = policy.cfg.n_obs_steps
        self.generator = torch.Generator(device=self.device).manual_seed(sample_seed)
        self.history: list[dict[str, np.ndarray]] = []

    def reset(self) -> None:
        self.history = []

    def observe(self, arrays: dict[str, np.ndarray]) -> None:
        """Record one environment step; the first observation of an episode fills the whole history."""
        obs = {"point_cloud": arrays["point_cloud"], "state": arrays["state"]}
        self.history = (self.history or [obs] * self.n_obs)[1:] + [obs]

    def act(self) -> np.ndarray:
        batch = {k: torch.from_numpy(np.stack([h[k] for h in self.history])[None]).float().to(self.device)
                 for k in self.history[-1]}
        with torch.inference_mode():
            return self.policy.predict_action(batch, generator=self.generator)[0].cpu().numpy()

    def episode_callbacks(self):
        """(act, observe) for `run_episode`."""
        return (lambda arrays, t: self.act()), self.observe


def run_episode(scene, env_seed: int, max_steps: int, act, frames: list | None = None,
                observe=None) -> tuple[bool, int, dict, list[float]]:
    """One closed-loop episode; `act(arrays, t)` returns a chunk of actions to execute, and
    `observe(arrays)`, when given, sees the observation of every step (the reset's included).
    Returns (success, steps, time split, final robot state: a fingerprint of the episode)."""
    before = dict(scene.seconds)
    policy_seconds = 0.0
    step_obs = scene.reset(env_seed)
    if observe is not None:
        observe(step_obs.arrays)
    t, success = 0, False
    while t < max_steps and not success:
        t0 = time.perf_counter()
        chunk = act(step_obs.arrays, t)
        policy_seconds += time.perf_counter() - t0
        for action in chunk:
            step_obs, _, success, truncated = scene.step(action)
            if observe is not None:
                observe(step_obs.arrays)
            if frames is not None and "img" in step_obs.arrays:
                frames.append(np.rot90(step_obs.arrays["img"], 2))  # MetaWorld's corner cameras are upside down
            t += 1
            if success or truncated or t >= max_steps:
                break
    timing = {k: scene.seconds[k] - before[k] for k in scene.seconds}
    timing["policy"] = policy_seconds
    return success, t, timing, step_obs.arrays["state"].tolist()


def rollout(policy, scene, seeds, episodes: int, max_steps: int, device: str = "cpu", sample_seed: int = 0,
            replay: np.ndarray | None = None, gifs: int = 0, progress: bool = True, workers: int = 1,
            policy_dir: Path | None = None, backend: str = "torch"):
    """Episodes of `policy` (and of the blind replay, when given) on evaluation-stream configurations.

    Each episode seeds its diffusion noise from (sample_seed, configuration), so outcomes do not
    depend on the order of episodes or on `workers` (processes, each loading the policy from
    `policy_dir` and rendering on its own; one torch thread each, inferring with `backend`)."""
    from tqdm.auto import tqdm

    jobs = [(seed, i) for seed in seeds for i in range(episodes)]
    record = set(jobs[: 4 * gifs])  # enough episodes to find successes and failures
    done: dict[tuple[int, int], tuple] = {}
    with tqdm(total=len(jobs), desc=f"eval {scene.task}", unit="ep", dynamic_ncols=True, disable=not progress) as bar:
        for job, outcome in _run_jobs(policy, scene, jobs, record, max_steps, device, sample_seed, replay, workers,
                                      policy_dir, backend):
            done[job] = outcome
            bar.update(1)
            bar.set_postfix(success=f"{np.mean([o[0].success for o in done.values()]):.2f}")
    results, blind, saved = [], [], []
    for job in jobs:  # episode order, whatever order they finished in
        result, blind_result, frames = done[job]
        results.append(result)
        if blind_result is not None:
            blind.append(blind_result)
        if frames is not None and len(saved) < gifs and wants_gif(saved, result.success, gifs):
            saved.append((result.success, frames))
    return results, blind, saved


def _run_jobs(policy, scene, jobs, record, max_steps, device, sample_seed, replay, workers, policy_dir, backend):
    """(job, (result, blind result, frames)) as episodes finish, here or in worker processes."""
    if workers <= 1 or len(jobs) <= 1:
        for seed, i in jobs:
            yield (seed, i), run_one(policy, scene, seed, i, max_steps, device, sample_seed, replay, (seed, i) in record)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    if policy_dir is None:
        raise ConfigError("evaluation workers need the policy directory to load the policy from")
    init = (str(policy_dir), scene.task, scene.cfg, max_steps, str(device), backend)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=init) as pool:
        futures = {pool.submit(_worker_episode, seed, i, sample_seed, replay, (seed, i) in record): (seed, i)
                   for seed, i in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def run_one(policy, scene, seed: int, index: int, max_steps: int, device: str, sample_seed: int,
            replay: np.ndarray | None, record_frames: bool):
    """One evaluation configuration: the policy's episode, then the blind replay's, on the same seed."""
    from dynarep.sim.scene import EVAL_STREAM, episode_seed

    env_seed = episode_seed(seed, EVAL_STREAM, scene.task, index)
    runner = PolicyRunner(policy, device, (sample_seed * 1_000_003 + env_seed) % 2**63)
    frames = [] if record_frames else None
    act, observe = runner.episode_callbacks()
    ok, length, timing, final_state = run_episode(scene, env_seed, max_steps, act, frames, observe)
    result = EpisodeResult(seed, index, env_seed, ok, length, timing, final_state)
    blind = None
    if replay is not None:
        ok_b, len_b, _, _ = run_episode(scene, env_seed, min(max_steps, len(replay)), lambda a, t: replay[t:])
        blind = EpisodeResult(seed, index, env_seed, ok_b, len_b)
    release_free_memory()  # an episode's buffers vary in size; see runtime.release_free_memory
    return result, blind, frames


_worker: dict = {}


def _init_worker(policy_dir: str, task: str, obs_cfg, max_steps: int, device: str, backend: str) -> None:
    from dynarep.runtime import tune_allocator
    from dynarep.sim.scene import MetaWorldScene
    from dynarep.training.export import load_policy

    tune_allocator()
    torch.set_num_threads(1)  # one process per core: more threads would oversubscribe
    policy = load_policy(Path(policy_dir), device).eval()
    policy.use_inference_backend(backend, 1)
    _worker.update(policy=policy, device=device, max_steps=max_steps,
                   scene=MetaWorldScene(task, obs_cfg, max_steps=max_steps))


def _worker_episode(seed: int, index: int, sample_seed: int, replay, record_frames: bool):
    return run_one(_worker["policy"], _worker["scene"], seed, index, _worker["max_steps"], _worker["device"],
                   sample_seed, replay, record_frames)


def wants_gif(saved: list[tuple[bool, list]], ok: bool, gifs: int) -> bool:
    """Half of the GIFs go to successes and half to failures, so a report can show both (one GIF:
    the first episode)."""
    if gifs == 1:
        return not saved
    quota = (gifs + 1) // 2 if ok else gifs // 2
    return sum(1 for s, _ in saved if s == ok) < quota


class PeriodicEvaluation:
    """DP3's protocol, for comparison with the papers: every `every` training steps, `episodes`
    episodes of the current EMA weights on the same configurations; the reported number is the mean
    of the `k` best evaluations. It overstates (it selects on the evaluation set); our headline is
    the final checkpoint over many episodes."""

    def __init__(self, task: str, obs_cfg, every: int, episodes: int = 20, k: int = 5, max_steps: int = 200):
        from dynarep.sim.scene import MetaWorldScene

        obs_cfg.store_images = False
        self.scene = MetaWorldScene(task, obs_cfg, max_steps=max_steps)
        self.every, self.episodes, self.k, self.max_steps = every, episodes, k, max_steps
        self.history: list[dict] = []

    def __call__(self, trainer) -> None:
        if trainer.step % self.every and trainer.step != trainer.cfg.steps:
            return
        import copy

        seconds = trainer.train_seconds  # before this evaluation, which the trainer excludes only after it
        policy = copy.deepcopy(trainer.model)
        policy.load_state_dict(trainer.final_weights())
        results, _, _ = rollout(policy.eval(), self.scene, (0,), self.episodes, self.max_steps, progress=False)
        rate = float(np.mean([r.success for r in results]))
        samples = trainer.step * trainer.cfg.batch_size * trainer.acc.num_processes
        self.history.append({"step": trainer.step, "samples": samples,
                             "train_seconds": seconds, "success_rate": rate})
        trainer.log({"step": trainer.step, "periodic_success": rate})

    def summary(self) -> dict:
        best = sorted((h["success_rate"] for h in self.history), reverse=True)[: self.k]
        return {"protocol": f"DP3: mean of the {self.k} best of periodic {self.episodes}-episode evaluations "
                            "(selects on the evaluation set, so it overstates)",
                "task": self.scene.task, "success_rate": float(np.mean(best)) if best else float("nan"),
                "every": self.every, "episodes_each": self.episodes, "history": self.history}


def evaluate(args: EvalArgs) -> dict:
    from dynarep.policies.onnx_denoiser import check_backend
    from dynarep.sim.scene import TIME_SPLIT, MetaWorldScene
    from dynarep.sim.tasks import canonical_task
    from dynarep.training.export import load_policy_and_meta

    start = time.time()
    if args.episodes <= 0 or not args.seeds:
        raise ConfigError("--episodes must be positive and --seeds non-empty")
    policy, meta = load_policy_and_meta(args.policy, args.device)
    if args.workers <= 1:
        policy.use_inference_backend(args.backend, torch.get_num_threads())
    else:  # the workers sample, each with its own backend; here only check it
        check_backend(args.backend, args.device)
    tasks = sorted({t for src in meta.get("data", []) for t in src.get("tasks", [])})
    task = canonical_task(args.task) if args.task else (tasks[0] if len(tasks) == 1 else None)
    if task is None:
        raise ConfigError(f"--task is needed: the policy was trained on {tasks or 'data without task names'}")
    obs_cfg = observation_config(meta)
    obs_cfg.store_images = args.gifs > 0
    scene = MetaWorldScene(task, obs_cfg, max_steps=args.max_steps)
    demo_paths = [src["path"] for src in meta.get("data", [])]
    replay = mean_demo_actions(demo_paths, task) if args.blind_replay else None
    results, blind, gifs = rollout(policy, scene, args.seeds, args.episodes, args.max_steps, args.device,
                                   args.sample_seed, replay=replay, gifs=args.gifs, workers=args.workers,
                                   policy_dir=args.policy, backend=args.backend)
    scene.close()
    report = summarise(results, args, task, "final checkpoint (EMA weights), fresh evaluation configurations")
    report["policy"] = str(args.policy)
    report["inference_backend"] = args.backend
    report["trained_on"] = meta.get("data")
    if blind:
        report["blind_replay"] = summarise(blind, args, task, "mean demonstration actions, open loop, same configurations")
        report["over_blind_replay"] = what_observation_earns(report)
    report["gifs"] = save_gifs(gifs, Path(args.out))
    report["wall_seconds"] = round(time.time() - start, 1)
    report["peak_memory_mb"] = peak_memory_mb()  # this process only, not evaluation workers
    total = {k: float(sum(r.timing.get(k, 0.0) for r in results)) for k in (*TIME_SPLIT, "policy")}
    report["time_split_seconds"] = total
    report.update(provenance())
    save_json(report, Path(args.out))
    return report


def summarise(results: list[EpisodeResult], args: EvalArgs, task: str, protocol: str) -> dict:
    outcomes = np.array([r.success for r in results], dtype=np.float64)
    per_seed = {str(s): float(np.mean([r.success for r in results if r.seed == s])) for s in args.seeds}
    return {
        "task": task, "protocol": protocol, "success_rate": float(outcomes.mean()), "ci95": list(bootstrap_ci(outcomes)),
        "episodes": int(outcomes.size), "seeds": list(args.seeds), "per_seed": per_seed,
        "mean_length": float(np.mean([r.length for r in results])),
        "outcomes": [{"seed": r.seed, "index": r.index, "env_seed": r.env_seed, "success": bool(r.success),
                      "length": r.length, "final_state": [round(v, 5) for v in r.final_state]}
                     for r in results],
    }


def save_gifs(gifs: list[tuple[bool, list]], out: Path) -> list[str]:
    if not gifs:
        return []
    import imageio.v3 as iio

    paths = []
    for i, (ok, frames) in enumerate(gifs):
        path = out.with_name(f"{out.stem}_episode{i}_{'success' if ok else 'failure'}.gif")
        iio.imwrite(path, np.stack(frames[::2]), duration=80, loop=0)
        paths.append(path.name)
    return paths


def what_observation_earns(report: dict) -> dict:
    """The policy's success minus the blind replay's, paired on the same configurations."""
    from dynarep.evaluation.paired import paired_difference

    d = paired_difference(report["outcomes"], report["blind_replay"]["outcomes"])
    return {"difference": d.difference, "ci95": list(d.ci95), "pairs": d.pairs,
            "how": "paired by configuration; bootstrap over evaluation seeds, then episodes"}


def format_result(report: dict) -> str:
    line = (f"{report['task']}: success {report['success_rate']:.2f} "
            f"[{report['ci95'][0]:.2f}, {report['ci95'][1]:.2f}] over {report['episodes']} episodes")
    if "blind_replay" in report:
        b = report["blind_replay"]
        line += f"; blind replay {b['success_rate']:.2f} [{b['ci95'][0]:.2f}, {b['ci95'][1]:.2f}]"
    if "over_blind_replay" in report:
        d = report["over_blind_replay"]
        line += f"; the observation earns {d['difference']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] (paired)"
    return line

