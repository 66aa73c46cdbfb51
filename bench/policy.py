"""Policy speed on this machine: training samples/s and action-chunk latency for both presets, and
where an evaluation episode's time goes.

  python bench/policy.py --data data/button-press.zarr [--presets cpu paper] [--steps 6]
                         [--encoder-modes scratch frozen frozen-cached] [--train-only]

Training throughput is measured on real windows of the dataset with the full step (forward,
backward, clipping, AdamW, EMA); the first two steps are warm-up and not counted. Latency is one
observation (2 steps of 512 points + state) to one action chunk (10 DDIM steps), batch 1.
Absolute times drift on these machines over hours: compare implementations by alternating them in
one run and reading the ratio. `--malloc-tuning off` measures the glibc default.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch


ENCODER_MODES = ("scratch", "frozen", "frozen-cached")


def training_setup(data: Path, preset: str, batch: int | None, device: str = "cpu", encoder_mode: str = "scratch"):
    """(policy, sampler, batch size) exactly as `dynarep train` builds them; `frozen` freezes the
    (here randomly initialised) encoder as `--freeze` does, `frozen-cached` adds `--cache-features`."""
    from dynarep.data.normalizer import MinMaxNormalizer
    from dynarep.data.sampler import SequenceSampler
    from dynarep.data.store import load_demonstrations
    from dynarep.policies.base import VISUAL_FEATURE, build_policy
    from dynarep.training.train_policy import TrainPolicyArgs, resolve_configs, with_cached_features

    args = TrainPolicyArgs(data=(data,), preset=preset, batch_size=batch)
    demos = load_demonstrations(args.data, ("point_cloud", "state", "action"))
    pcfg, tcfg = resolve_configs(args, demos)
    torch.manual_seed(0)
    policy = build_policy(pcfg)
    policy.set_normalizer(MinMaxNormalizer().fit(demos.arrays))
    arrays, observed = demos.arrays, "point_cloud"
    if encoder_mode != "scratch":
        policy.encoder.freeze()
    if encoder_mode == "frozen-cached":
        arrays, observed = with_cached_features(policy, arrays, device), VISUAL_FEATURE
    sampler = SequenceSampler(arrays, demos.episode_ends, pcfg.horizon, pcfg.n_obs_steps - 1,
                              pcfg.n_action_steps - 1, key_steps={observed: pcfg.n_obs_steps, "state": pcfg.n_obs_steps})
    return policy.to(device), sampler, tcfg.batch_size


def train_throughput(data: Path, preset: str, steps: int, batch: int | None, device: str = "cpu",
                     encoder_mode: str = "scratch") -> float:
    from dynarep.training.loop import EMA, to_device

    policy, sampler, B = training_setup(data, preset, batch, device, encoder_mode)
    opt = torch.optim.AdamW([q for q in policy.parameters() if q.requires_grad], lr=1e-4, weight_decay=1e-6)
    ema = EMA(policy, 0.75, 0.9999)
    rng = np.random.default_rng(0)
    for i in range(steps + 2):
        if i == 2:
            synchronize(device)
            t0 = time.perf_counter()
        batch = to_device(sampler.sample_batch(rng.integers(0, len(sampler), B)), torch.device(device))
        loss = policy(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        ema.update(policy)
    synchronize(device)
    return steps * B / (time.perf_counter() - t0)


def synchronize(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def training_flops_per_sample(data: Path, preset: str, device: str = "cpu") -> float:
    """Floating-point operations of one training sample (forward + backward), counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode

    from dynarep.training.loop import to_device

    policy, sampler, _ = training_setup(data, preset, 8, device)
    batch = to_device(sampler.sample_batch(np.arange(8) % len(sampler)), torch.device(device))
    with FlopCounterMode(display=False) as counter:
        policy(batch)["loss"].backward()
    return counter.get_total_flops() / 8


def chunk_latencies(preset: str, repeats: int, device: str = "cpu", backend: str = "torch") -> np.ndarray:
    """Seconds from one observation to one action chunk, `repeats` times after 3 warm-up calls;
    `backend` runs the denoiser in PyTorch or ONNX Runtime (see dynarep.policies.onnx_denoiser)."""
    from dynarep.data.normalizer import MinMaxNormalizer
    from dynarep.policies.base import build_policy
    from dynarep.training.train_policy import policy_preset

    pcfg, _ = policy_preset(preset)
    policy = build_policy(pcfg).eval()
    rng = np.random.default_rng(0)
    policy.set_normalizer(MinMaxNormalizer().fit({"point_cloud": rng.random((64, 512, 3)), "state": rng.random((64, 9)),
                                                  "action": rng.random((64, 4))}))
    policy.to(device)
    policy.use_inference_backend(backend, torch.get_num_threads())
    obs = {"point_cloud": torch.rand(1, 2, 512, 3, device=device), "state": torch.rand(1, 2, 9, device=device)}
    times = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            t0 = time.perf_counter()
            policy.predict_action(obs)
            synchronize(device)
            if i >= 3:
                times.append(time.perf_counter() - t0)
    return np.asarray(times)


def chunk_latency(preset: str, repeats: int, backend: str = "torch") -> tuple[float, float]:
    times = chunk_latencies(preset, repeats, backend=backend)
    return float(np.median(times) * 1e3), float(np.percentile(times, 90) * 1e3)


def episode_split(data: Path, steps: int) -> dict[str, float]:
    """Time of one evaluation episode split into physics, rendering, point-cloud making (back-projection,
    crop, farthest-point sampling) and policy, with a cpu-preset policy (untrained: the split does
    not depend on the weights)."""
    import tempfile

    from dynarep.evaluation.rollout import PolicyRunner, observation_config, run_episode
    from dynarep.sim.scene import EVAL_STREAM, MetaWorldScene, episode_seed
    from dynarep.training.export import load_policy_and_meta
    from dynarep.training.train_policy import TrainPolicyArgs, train_policy

    with tempfile.TemporaryDirectory() as tmp:
        train_policy(TrainPolicyArgs(data=(data,), out=Path(tmp), steps=1, batch_size=2, device="cpu"))
        policy, meta = load_policy_and_meta(Path(tmp))
    task = meta["data"][0]["tasks"][0]
    obs_cfg = observation_config(meta)
    obs_cfg.store_images = False
    scene = MetaWorldScene(task, obs_cfg, max_steps=steps)
    runner = PolicyRunner(policy, "cpu", 0)
    t0 = time.perf_counter()
    act, observe = runner.episode_callbacks()
    _, length, timing, _ = run_episode(scene, episode_seed(0, EVAL_STREAM, task, 0), steps, act, observe=observe)
    total = time.perf_counter() - t0
    scene.close()
    return {"steps": length, "total_s": total, **{f"{k}_s": v for k, v in timing.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--presets", nargs="+", default=["cpu", "paper"])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=None, help="override the preset's batch size")
    p.add_argument("--episode-steps", type=int, default=80)
    p.add_argument("--malloc-tuning", choices=["on", "off"], default="on")
    p.add_argument("--train-only", action="store_true", help="skip latency and the episode split")
    p.add_argument("--encoder-modes", nargs="+", choices=ENCODER_MODES, default=["scratch"],
                   help="training throughput with the encoder trained (scratch), frozen, or frozen with its "
                        "features cached (--cache-features); alternated in this order")
    a = p.parse_args()
    if a.malloc_tuning == "on":
        from dynarep.runtime import tune_allocator

        tune_allocator()
    from dynarep.runtime import allocator

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {allocator()}, malloc tuning {a.malloc_tuning}")
    for preset in a.presets:
        steps = a.steps if preset == "cpu" else max(2, a.steps // 3)
        for mode in a.encoder_modes:
            sps = train_throughput(a.data, preset, steps, a.batch, encoder_mode=mode)
            print(f"{preset:6s} train, encoder {mode:13s} {sps:7.1f} samples/s", flush=True)
        if a.train_only:
            continue
        for backend in ("torch", "onnxruntime"):
            med, p90 = chunk_latency(preset, 20 if preset == "cpu" else 5, backend)
            print(f"{preset:6s} action chunk ({backend:11s}) median {med:7.1f} ms, p90 {p90:7.1f} ms")
    if a.train_only:
        return
    split = episode_split(a.data, a.episode_steps)
    print("evaluation episode ({steps} steps): {total_s:.2f} s = simulation {simulation_s:.2f} s + rendering "
          "{rendering_s:.2f} s + point cloud {point_cloud_s:.2f} s + policy {policy_s:.2f} s".format(**split))


if __name__ == "__main__":
    main()
