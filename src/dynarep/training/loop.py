"""The one training loop, for policies and pre-training objectives alike.

A model plugs in by having `forward(batch) -> {"loss": tensor, ...}` (its compute_loss) and
`parameter_groups(lr, encoder_lr) -> [param groups]`; it may define `on_step_end(step, total)`
(AFRO's EMA teacher does). The loop brings: accelerate (one CPU, one GPU, or DDP through
`accelerate launch`/`torchrun`), AdamW with warm-up + cosine, gradient clipping, EMA weights,
progress bar with loss and throughput, periodic validation, TensorBoard scalars and a JSONL log,
atomic safetensors checkpoints, and exact resume.

Exact resume: batches are a pure function of (seed, step): epoch e uses the permutation drawn from
`seed + e`, so a resumed run sees the same batches, and the torch RNG state (diffusion noise and
steps) is checkpointed. A resumed CPU run reproduces an uninterrupted one bit for bit.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dynarep.data.sampler import SequenceSampler
from dynarep.errors import ConfigError
from dynarep.runtime import release_free_memory, resident_memory_mb
from dynarep.training.checkpoint import (
    CheckpointError,
    flatten_optimizer,
    load_checkpoint,
    load_matching,
    save_checkpoint,
    unflatten_optimizer,
)


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping; the sizes of the model live in its own config."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-4
    encoder_lr: float | None = None
    """Separate learning rate for a fine-tuned encoder (AFRO: 1e-5); None means lr."""
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.95, 0.999)
    warmup_steps: int = 500
    grad_clip: float = 1.0
    """Max gradient norm; 0 disables (DP3 does not clip)."""
    ema: bool = True
    """Keep an EMA of the weights (Diffusion Policy's schedule: power 0.75, max 0.9999) and export it."""
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    val_every: int = 500
    val_batches: int = 8
    checkpoint_every: int = 500
    log_every: int = 10
    release_memory_every: int = 50
    """Return freed memory to the OS every this many steps (0: never); see runtime.release_free_memory."""
    seed: int = 0
    device: str = "auto"
    """'auto' (CUDA if available), 'cpu' or 'cuda'."""
    progress: bool = True

    def validate(self) -> None:
        if self.steps <= 0 or self.batch_size <= 0:
            raise ConfigError(f"steps and batch_size must be positive, got {self.steps}, {self.batch_size}")


class BatchStream:
    """Deterministic batches: a pure function of (seed, step, rank)."""

    def __init__(self, sampler: SequenceSampler, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if len(sampler) == 0:
            raise ConfigError("the training split has no window; use more episodes or a shorter horizon")
        self.sampler, self.batch_size, self.seed, self.rank, self.world = sampler, batch_size, seed, rank, world
        self.per_epoch = max(1, len(sampler) // (batch_size * world))
        self._perm_epoch, self._perm = -1, None

    def indices(self, step: int) -> np.ndarray:
        epoch, pos = divmod(step, self.per_epoch)
        if epoch != self._perm_epoch:
            n = len(self.sampler)
            perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            if n < self.batch_size * self.world:  # tiny datasets: sample with wrap-around
                perm = np.resize(perm, self.batch_size * self.world)
            self._perm, self._perm_epoch = perm, epoch
        start = (pos * self.world + self.rank) * self.batch_size
        return self._perm[start : start + self.batch_size]

    def batch(self, step: int, device: torch.device) -> dict[str, torch.Tensor]:
        return to_device(self.sampler.sample_batch(self.indices(step)), device)


def to_device(arrays: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device, non_blocking=True).float()
            if v.dtype != np.bool_ else torch.from_numpy(v).to(device) for k, v in arrays.items()}


class EMA:
    """Exponential moving average of parameters with Diffusion Policy's warm-up schedule:
    decay = 1 - (1 + step)^-power, capped at max_decay. Kept by parameter name (checkpointable)."""

    def __init__(self, model: nn.Module, power: float, max_decay: float):
        self.power, self.max_decay, self.step = power, max_decay, 0
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def decay(self) -> float:
        return 0.0 if self.step == 0 else min(self.max_decay, 1 - (1 + self.step) ** -self.power)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay()
        params = dict(model.named_parameters())
        torch._foreach_lerp_(list(self.shadow.values()), [params[n].detach() for n in self.shadow], 1 - d)
        self.step += 1

    def weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with EMA values in place of the trained parameters."""
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state.update({k: v.clone() for k, v in self.shadow.items()})
        return state


def cosine_with_warmup(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    from diffusers.optimization import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total)


PROVENANCE_KEYS = ("command", "versions")


def settings_only(run_config: dict) -> dict:
    """What decides a run's results: its configuration without how it was invoked or with which versions."""
    return {k: v for k, v in run_config.items() if k not in PROVENANCE_KEYS}


class Trainer:
    """Runs `cfg.steps` optimisation steps of `model` on `train` windows, writing into `out`."""

    def __init__(self, model: nn.Module, train: SequenceSampler, val: SequenceSampler | None, cfg: TrainConfig,
                 out: Path, run_config: dict[str, Any], callbacks: list | None = None):
        from accelerate import Accelerator

        cfg.validate()
        self.cfg, self.out, self.run_config = cfg, Path(out), run_config
        self.callbacks = callbacks or []  # called as fn(trainer) after every step, on the main process
        cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
        self.acc = Accelerator(cpu=cpu)
        torch.manual_seed(cfg.seed + self.acc.process_index)
        self.model = model
        groups = model.parameter_groups(cfg.lr, cfg.encoder_lr)
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        self.scheduler = cosine_with_warmup(self.optimizer, cfg.warmup_steps, cfg.steps)
        self.model.to(self.acc.device)
        self.ema = EMA(model, cfg.ema_power, cfg.ema_max_decay) if cfg.ema else None
        self.wrapped, self.optimizer = self.acc.prepare(self.model, self.optimizer)
        self.stream = BatchStream(train, cfg.batch_size, cfg.seed, self.acc.process_index, self.acc.num_processes)
        self.val = val if val is not None and len(val) else None
        self.step = 0
        self._seconds_before = 0.0  # training time of earlier sessions of this run (resume)
        self._fit_start = None
        self._callback_seconds = 0.0
        self.ckpt_dir = self.out / "checkpoints" / "latest"
        self._log_file = None
        self._tb = None

    # --- checkpoints ---------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.shadow.items()})
        opt_tensors, self._opt_meta = flatten_optimizer(self.optimizer.state_dict())
        tensors.update(opt_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        return tensors

    def save(self) -> None:
        if not self.acc.is_main_process:
            return
        tensors = self.state_tensors()
        meta = {"kind": "training_state", "step": self.step, "train_seconds": self.train_seconds, "config": self.run_config,
                "optimizer": self._opt_meta, "scheduler": _jsonable(self.scheduler.state_dict()),
                "ema_step": self.ema.step if self.ema else None}
        save_checkpoint(self.ckpt_dir, tensors, meta)

    def try_resume(self) -> bool:
        """Continue from `out/checkpoints/latest` when it exists and was made by the same config."""
        if not (self.ckpt_dir / "checkpoint.json").exists():
            return False
        tensors, meta = load_checkpoint(self.ckpt_dir)
        before, now = settings_only(meta.get("config") or {}), settings_only(self.run_config)
        if before != now:
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise CheckpointError(
                f"{self.ckpt_dir}: was written by a run with another configuration ({', '.join(changed)} differ); "
                "use a new --out to start afresh"
            )
        load_matching(self.model, tensors, "model.", self.ckpt_dir)
        if self.ema is not None:
            for k in self.ema.shadow:
                self.ema.shadow[k].copy_(tensors[f"ema.{k}"])
            self.ema.step = meta["ema_step"]
        self.optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
        self.scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        self.step = int(meta["step"])
        self._seconds_before = float(meta.get("train_seconds", 0.0))
        return True

    # --- logging ---------------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        if not self.acc.is_main_process:
            return
        if self._log_file is None:
            self.out.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.out / "log.jsonl", "a")
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out / "tb"))
        self._log_file.write(json.dumps(record) + "\n")
        self._log_file.flush()
        for k, v in record.items():
            if k != "step" and isinstance(v, (int, float)):
                self._tb.add_scalar(k, v, record["step"])

    @torch.no_grad()
    def validate(self) -> float | None:
        if self.val is None:
            return None
        self.wrapped.eval()
        rng = np.random.default_rng([self.cfg.seed, 10_000])
        losses = []
        cpu_state = torch.get_rng_state()  # validation noise must not shift the training stream
        torch.manual_seed(self.cfg.seed + 99)
        for _ in range(self.cfg.val_batches):
            idx = rng.integers(0, len(self.val), size=min(self.cfg.batch_size, len(self.val)))
            losses.append(float(self.model(to_device(self.val.sample_batch(idx), self.acc.device))["loss"]))
        torch.set_rng_state(cpu_state)
        self.wrapped.train()
        return float(np.mean(losses))

    # --- the loop --------------------------------------------------------------------------
    def fit(self) -> nn.Module:
        from tqdm.auto import tqdm

        cfg = self.cfg
        resumed = self.try_resume()
        self._fit_start = time.perf_counter()
        self.wrapped.train()
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", dynamic_ncols=True,
                   disable=not (cfg.progress and self.acc.is_main_process))
        t0, seen, losses = time.perf_counter(), 0, []
        self.log({"step": self.step, "event": "resumed" if resumed else "start", "world_size": self.acc.num_processes,
                  "device": str(self.acc.device), "distributed": str(self.acc.distributed_type)})
        while self.step < cfg.steps:
            batch = self.stream.batch(self.step, self.acc.device)
            out = self.wrapped(batch)  # forward == compute_loss; through the DDP wrapper so gradients sync
            self.optimizer.zero_grad(set_to_none=True)
            self.acc.backward(out["loss"])
            if cfg.grad_clip > 0:
                self.acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model)
            if hasattr(self.model, "on_step_end"):
                self.model.on_step_end(self.step, cfg.steps)
            self.step += 1
            seen += cfg.batch_size * self.acc.num_processes
            losses.append({k: float(v.detach()) for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1})
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                rate = seen / (time.perf_counter() - t0)
                record = {"step": self.step, "lr": self.scheduler.get_last_lr()[0], "samples_per_s": rate,
                          "memory_mb": resident_memory_mb(),
                          **{k: float(np.mean([x[k] for x in losses])) for k in losses[0]}}
                self.log(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", sps=f"{rate:.0f}")
                losses = []
            if self.val is not None and (self.step % cfg.val_every == 0 or self.step == cfg.steps):
                self.log({"step": self.step, "val_loss": self.validate()})
            if self.acc.is_main_process and self.callbacks:
                started = time.perf_counter()
                for callback in self.callbacks:
                    callback(self)
                self._callback_seconds += time.perf_counter() - started
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self.save()
            if cfg.release_memory_every and self.step % cfg.release_memory_every == 0:
                release_free_memory()
            bar.update(1)
        bar.close()
        self.acc.wait_for_everyone()
        return self.model

    @property
    def train_seconds(self) -> float:
        """Wall time spent training this run over all its sessions, without callbacks (periodic evaluation)."""
        now = 0.0 if self._fit_start is None else time.perf_counter() - self._fit_start - self._callback_seconds
        return round(self._seconds_before + now, 1)

    def final_weights(self) -> dict[str, torch.Tensor]:
        """EMA weights when kept (what is evaluated and exported), else the trained ones."""
        return self.ema.weights(self.model) if self.ema is not None else self.model.state_dict()


def _jsonable(state: dict) -> dict:
    return json.loads(json.dumps(state, default=lambda o: None))

