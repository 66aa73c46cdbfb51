"""The `dynarep` command: one entry point, one subcommand per job.

Errors in the user's input or data exit with status 2 and one line on stderr; `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro

from dynarep.errors import DynarepError


@dataclass
class InfoArgs:
    """Summarise a dataset: episodes, steps, keys, shapes, tasks, bytes per step."""

    path: tyro.conf.Positional[Path]
    """A zarr dataset (ours, or DP3's/AFRO's layout)."""
    check: bool = False
    """Also read every point cloud, state and action and fail on NaN or inf."""


@dataclass
class ShowArgs:
    """Draw one step of a dataset as a 3D point cloud, coloured by body, with its 3D flow."""

    path: tyro.conf.Positional[Path]
    """A zarr dataset."""
    out: Path = Path("point_cloud.png")
    """Output image (png, pdf or svg)."""
    episode: int = 0
    step: int = 0
    flow: int = 0
    """Also draw the exact 3D flow of every point to step + FLOW (0: none)."""


def _commands() -> dict[str, type]:
    from dynarep.demo import DemoArgs
    from dynarep.evaluation.probes import ProbeArgs
    from dynarep.evaluation.report import ReportArgs
    from dynarep.evaluation.rollout import EvalArgs
    from dynarep.sim.collect import CollectConfig
    from dynarep.training.pretrain import PretrainArgs
    from dynarep.training.train_policy import TrainPolicyArgs

    return {"demo": DemoArgs, "report": ReportArgs, "collect": CollectConfig, "info": InfoArgs, "show": ShowArgs, "pretrain": PretrainArgs,
            "train": TrainPolicyArgs, "eval": EvalArgs, "probe": ProbeArgs}


def run_demo(args) -> None:
    from dynarep.demo import demo

    out = demo(args)
    if args.report:
        print(f"report: {out / 'report.html'} and {out / 'report.md'}")


def run_report(args) -> None:
    from dynarep.evaluation.report import write_report

    html, md = write_report(args)
    print(f"wrote {html} and {md}")


def run_probe(args) -> None:
    from dynarep.evaluation.probes import format_probe, probe

    print(format_probe(probe(args)))
    print(f"wrote {args.out}")


def run_pretrain(args) -> None:
    from dynarep.training.pretrain import pretrain

    out = pretrain(args)
    print(f"encoder written to {out}")


def run_train(args) -> None:
    from dynarep.training.train_policy import train_policy

    periodic = _periodic_evaluation(args) if args.eval_every > 0 else None
    out = train_policy(args, callbacks=[periodic] if periodic else None)
    if periodic is not None:
        from dynarep.config import save_json

        summary = periodic.summary()
        save_json(summary, out / "eval_dp3_protocol.json")
        print(f"DP3 protocol ({summary['protocol']}): {summary['success_rate']:.2f}")
    print(f"policy written to {out / 'policy'}")


def _periodic_evaluation(args):
    from dynarep.data.store import ZarrDataset
    from dynarep.errors import ConfigError
    from dynarep.evaluation.rollout import PeriodicEvaluation, observation_config
    from dynarep.sim.tasks import canonical_task

    stores = [ZarrDataset.open(path) for path in args.data]
    tasks = sorted({t for ds in stores for t in ds.tasks})
    task = canonical_task(args.eval_task) if args.eval_task else (tasks[0] if len(tasks) == 1 else None)
    if task is None:
        raise ConfigError(f"--eval-task is needed for --eval-every: the data has tasks {tasks or 'without names'}")
    obs_cfg = observation_config({"observation": (stores[0].attrs.get("config") or {}).get("obs")})
    return PeriodicEvaluation(task, obs_cfg, args.eval_every, args.eval_episodes, max_steps=args.eval_max_steps)


def run_eval(args) -> None:
    from dynarep.evaluation.rollout import evaluate, format_result

    report = evaluate(args)
    print(format_result(report))
    print(f"wrote {args.out}")


def run_show(args: ShowArgs) -> None:
    from dynarep.data.store import ZarrDataset
    from dynarep.evaluation.plots import plot_point_cloud

    plot_point_cloud(ZarrDataset.open(args.path), args.episode, args.step, args.flow, out=args.out)
    print(f"wrote {args.out}")


def run_info(args: InfoArgs) -> None:
    from dynarep.data.store import ZarrDataset

    ds = ZarrDataset.open(args.path)
    if args.check:
        for key in ("point_cloud", "state", "action"):
            if key in ds:
                ds.check_finite(key)
    print(ds.format_summary())


def run_collect(cfg) -> None:
    from dynarep.sim.collect import collect

    out = collect(cfg)
    from dynarep.data.store import ZarrDataset

    ds = ZarrDataset.open(out)
    print(ds.format_summary())


def dispatch(cfg: object) -> None:
    handlers = {"DemoArgs": run_demo, "ReportArgs": run_report, "CollectConfig": run_collect, "InfoArgs": run_info, "ShowArgs": run_show,
                "TrainPolicyArgs": run_train, "EvalArgs": run_eval, "PretrainArgs": run_pretrain, "ProbeArgs": run_probe}
    handlers[type(cfg).__name__](cfg)


def main(argv: list[str] | None = None) -> int:
    from dynarep.runtime import reexec_under_jemalloc

    if argv is None:  # a command-line run, not a call from Python
        reexec_under_jemalloc("dynarep.cli", sys.argv[1:])
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    cfg = tyro.extras.subcommand_cli_from_dict(
        _commands(), args=argv, prog="dynarep",
        description="dynarep: dynamics-aware 3D representations for robot manipulation (add --debug for tracebacks)",
    )
    from dynarep.runtime import set_command, tune_allocator

    tune_allocator()
    set_command(argv)
    try:
        dispatch(cfg)
    except DynarepError as e:
        if debug:
            raise
        print(f"dynarep: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("dynarep: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
