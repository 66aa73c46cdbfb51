"""The diffusion policy's denoiser run by ONNX Runtime, for batch-1 inference on CPU.

Why not PyTorch: one action chunk is 10 UNet calls on a (1, 16, action_dim) sequence. At that
size the UNet's convolutions see 4 to 16 time steps, and PyTorch sends a batch-1 Conv1d below its
oneDNN size threshold to the generic im2col + GEMM path, where MKL's small-N GEMM is slow on this
AMD machine (a 256→256, kernel-5 convolution over 4 steps took 0.5 ms idle, about 2.7 GB/s of
weights). ONNX Runtime's own MLAS kernels run the same graph 2.7 to 2.9 times faster
(`bench/policy.py`). The floor is memory bandwidth: every call streams the UNet's weights without its
FiLM layers (about 15.3 MB of float32; the FiLM tables come in as inputs), about 0.64 ms at the
24 GB/s one core reads here.

The exported graph takes the noisy actions and every block's FiLM scale/shift (precomputed once
per chunk by `ConditionalUnet1D.film_tables`). It is exported in memory for each batch size on
first use; nothing is written to disk. The weights are a snapshot: call
`policy.use_inference_backend("onnxruntime")` again after changing them.
"""

from __future__ import annotations

import io
import logging
import warnings

import torch
from torch import nn

from dynarep.errors import ConfigError

BACKENDS = ("torch", "onnxruntime")


class _FilmInputs(nn.Module):
    """The UNet as a function of (noisy actions, all FiLM tables side by side): the graph ONNX sees."""

    def __init__(self, unet: nn.Module, film_dims: tuple[int, ...]):
        super().__init__()
        self.unet, self.film_dims = unet, list(film_dims)

    def forward(self, x: torch.Tensor, films: torch.Tensor) -> torch.Tensor:
        return self.unet(x, None, None, films=list(films.split(self.film_dims, dim=1)))


class OnnxDenoiser:
    """Callable like `unet(x, t, None, films=...)` with `films` given; CPU only. One session per
    batch size, exported on first use: static shapes ran about 1.4 times faster than a dynamic
    batch axis at two threads."""

    def __init__(self, unet: nn.Module, threads: int):
        try:
            import onnxruntime
        except ImportError as e:
            raise ConfigError("the onnxruntime backend needs `pip install onnxruntime onnxscript` "
                              "(dynarep's `fast` extra)") from e
        self.ort, self.unet, self.threads = onnxruntime, unet, threads
        self.sessions: dict[tuple, object] = {}

    def session(self, x: torch.Tensor, films: list[torch.Tensor], films_in: torch.Tensor):
        key = (tuple(x.shape), tuple(f.shape[1] for f in films))
        if key not in self.sessions:
            options = self.ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
            options.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            graph = _FilmInputs(self.unet, key[1]).eval()
            self.sessions[key] = self.ort.InferenceSession(export_onnx(graph, (x, films_in)), options,
                                                           providers=["CPUExecutionProvider"])
        return self.sessions[key]

    def __call__(self, x: torch.Tensor, t, global_cond, films: list[torch.Tensor]) -> torch.Tensor:
        x, films_in = x.detach().float(), torch.cat(films, dim=1).detach().float()
        out = self.session(x, films, films_in).run(None, {"x": x.numpy(), "films": films_in.numpy()})[0]
        return torch.from_numpy(out)


def export_onnx(graph: nn.Module, example: tuple[torch.Tensor, ...]) -> bytes:
    """The ONNX bytes of `graph` at the example's shapes (torch.export-based exporter; about 15 s)."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it warns about every torchvision op it skips
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(graph, example, input_names=["x", "films"], output_names=["out"],
                                        dynamo=True, verbose=False)
            program.save(buffer)
    finally:
        exporter_log.setLevel(level)
    return buffer.getvalue()


def check_backend(backend: str, device: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {BACKENDS}, got '{backend}'")
    if backend == "onnxruntime" and torch.device(device).type != "cpu":
        raise ConfigError(f"--backend onnxruntime runs on the CPU only; the policy is on '{device}'")
