"""Training on Lightning: supervised joint CTC/attention, and USR 1.0 / USR 2.0 semi-supervised
training with an EMA teacher.

One optimizer step (manual optimisation, as USR): when pseudo-labelling, the teacher labels the
clean view of the unlabelled batch (mode drawn per step, the same on every rank), the student's
unlabelled losses are back-propagated; then the labelled losses are back-propagated; the summed
gradients are clipped and AdamW steps; the teacher follows by EMA. A non-finite loss or gradient
on any rank skips the step on every rank (counted). The global RNG is re-seeded from (seed, step,
rank) at every step and the data position travels with each batch, so a resumed run repeats the
uninterrupted one exactly.

Run folder: ``run.json`` (the run's id), ``config.yaml``, ``checkpoints/step-*.ckpt`` (full
training state, each tagged with the run's id), ``model.pt`` (final student), ``teacher.pt``,
``model_avg.pt`` (average of the last checkpoints), and logs under ``tensorboard/`` and ``csv/``.
A folder that holds a run is continued only with ``--resume`` and replaced only with
``--overwrite`` (the old folder is moved aside, never deleted); everything the config names is
checked before the first file is written; pruning and averaging only ever see checkpoints of the
run being trained.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_warn

from .average import average_checkpoints, step_of, student_state
from .checkpoint import FORMAT, load_state, official_state_dict, read_checkpoint, save_checkpoint
from .config import ModelConfig
from .dataset import AVDataset, Batch
from .decoding import DecodingOptions, decode_encoded
from .ema import make_teacher
from .errors import UnisrError
from .evaluate import word_errors
from .losses import UnlabelledHeads
from .model import UnifiedModel
from .pl_quality import QualityWindow, label_errors
from .sampler import BatchLoader, FrameBatchSampler, train_iterator
from .step import Hooks, Learner, StepResult, TrainBatch, build_optimizer, training_step
from .tokenizer import Tokenizer, load_tokenizer
from .train_config import InitSection, TrainConfig, load_config

warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
STARVED_LR_SHARE = 0.25  # below this mean share of the peak, a pseudo-labelling phase is starved


# ---------------------------------------------------------------- set-up helpers


def initialise(model: UnifiedModel, init: InitSection) -> None:
    """Load a unisr, training or official checkpoint into ``model`` (whole, or the encoder
    without its final norm). Every missing, unexpected or mis-shaped tensor is reported."""
    data = read_checkpoint(init.checkpoint)
    if data.get("format") == FORMAT or "unisr" in data:
        state = student_state(data, init.checkpoint)
    else:
        state = official_state_dict(data)
    encoder = lambda k: k.startswith("encoder.") and not k.startswith("encoder.after_norm.")  # noqa: E731
    load_state(model, state, init.checkpoint, encoder if init.encoder_only else None)


# ---------------------------------------------------------------- data


class TrainStream:
    """The training batches as Lightning sees them: :class:`~unisr.step.TrainBatch` objects,
    whose ``data_state`` (the loader position after the batch) is saved with each checkpoint.
    Each ``iter`` is the next epoch; after ``resume`` it continues the interrupted one."""

    def __init__(self, iterator):
        self.iterator = iterator
        main = iterator.unlabelled or iterator.labelled
        self.length = len(main.sampler.batches(0))  # fixed, so epoch boundaries never drift
        self.epoch = -1
        self.resume: dict | None = None

    def __len__(self) -> int:
        return self.length

    def _epoch(self):
        for labelled, unlabelled in self.iterator:
            state = {"epoch": self.epoch, "loader": self.iterator.state_dict()}
            yield TrainBatch(labelled, unlabelled, state)

    def __iter__(self):
        if self.resume is not None:
            self.epoch = self.resume["epoch"]
            self.iterator.load_state_dict(self.resume["loader"])
            self.resume = None
            produced = False
            for batch in self._epoch():
                produced = True
                yield batch
            if produced:
                return
        self.epoch += 1
        self.iterator.set_epoch(self.epoch)
        yield from self._epoch()


class Batches:
    """A loader seen by Lightning as a plain iterable (it must not treat it as a DataLoader)."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)


class USRDataModule(pl.LightningDataModule):
    """Datasets from the manifests; crops and image size follow the model config."""

    def __init__(self, cfg: TrainConfig, model_config: ModelConfig, tokenizer: Tokenizer):
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        resize = (
            None if model_config.image_size == model_config.crop_size else model_config.image_size
        )
        augment = replace(cfg.data.augment, crop=model_config.crop_size, resize=resize)
        self.data_cfg = replace(cfg.data, augment=augment)
        self.stream: TrainStream | None = None
        self.val: AVDataset | None = None
        self.datasets: tuple[AVDataset, AVDataset | None, AVDataset | None] | None = None

    def _dataset(self, path: str, labelled: bool, train: bool) -> AVDataset:
        d, pl_cfg = self.data_cfg, self.cfg.pl
        oracle = not labelled and train and pl_cfg.mode == "oracle"
        return AVDataset.from_manifest(
            path,
            d,
            roots=d.roots,
            audio_roots=d.audio_roots,
            use_cache=d.use_cache,
            labelled=labelled,
            train=train,
            tokenizer=self.tokenizer,
            seed=self.cfg.trainer.seed,
            oracle_wer=pl_cfg.oracle_wer if oracle else None,
        )

    def load_datasets(self) -> None:
        """Read and check the manifests (and the tokenizer's ids, the noise file): called
        before the run writes anything, so a mistyped path leaves the run folder untouched."""
        d = self.data_cfg
        if not d.labelled:
            raise UnisrError("data.labelled is not set (the labelled training manifest)")
        if self.datasets is None:
            self.datasets = (
                self._dataset(d.labelled, True, True),
                self._dataset(d.unlabelled, False, True) if d.unlabelled else None,
                self._dataset(d.val, True, False) if d.val else None,
            )

    def setup(self, stage: str) -> None:
        self.load_datasets()
        labelled, unlabelled, val = self.datasets
        if self.stream is None:
            iterator = train_iterator(
                labelled, unlabelled, self.data_cfg, seed=self.cfg.trainer.seed
            )
            self.stream = TrainStream(iterator)
        if self.val is None:
            self.val = val

    def train_dataloader(self) -> TrainStream:
        return self.stream

    def val_dataloader(self):
        if self.val is None:
            return []
        sampler = FrameBatchSampler(
            self.val.lengths, self.data_cfg.frames_per_batch_val, shuffle=False
        )
        return Batches(
            BatchLoader(self.val, sampler, workers=self.data_cfg.val_workers, name="val")
        )


# ---------------------------------------------------------------- the module


class USRModule(pl.LightningModule):
    """Student, EMA teacher (semi-supervised runs) and USR 1.0's extra heads (``pl.mode=usr1``);
    each optimizer step is :func:`unisr.step.training_step`."""

    def __init__(self, cfg: TrainConfig, model_config: ModelConfig, tokenizer: Tokenizer):
        super().__init__()
        self.automatic_optimization = False
        self.cfg, self.tokenizer = cfg, tokenizer
        self.model = UnifiedModel(model_config)
        if cfg.init.checkpoint:
            initialise(self.model, cfg.init)
        semi = bool(cfg.data.unlabelled)
        self.teacher = make_teacher(self.model) if semi else None
        usr1 = semi and cfg.pl.mode == "usr1"
        self.heads = (
            UnlabelledHeads(model_config.d_model, model_config.vocab_size) if usr1 else None
        )
        self.total_steps = max(cfg.optim.max_steps, 1)
        self.skipped_steps = 0
        self.data_state: dict | None = None
        self._last_end: float | None = None
        self._val: dict[str, list[int]] = {}
        self.pl_quality = QualityWindow(cfg.trainer.log_every)

    # optimisation set-up
    def trainable(self) -> list[torch.nn.Parameter]:
        heads = list(self.heads.parameters()) if self.heads is not None else []
        return list(self.model.parameters()) + heads

    def configure_optimizers(self):
        o = self.cfg.optim
        self.total_steps = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = o.warmup_steps or round(o.warmup_epochs * self.trainer.num_training_batches)
        optimizer, scheduler = build_optimizer(self.trainable(), o, self.total_steps, warmup)
        self._warn_if_starved(scheduler.lr_lambdas[0])
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _warn_if_starved(self, schedule) -> None:
        """One schedule (``schedule``: step -> share of the peak learning rate) over a
        labelled-only phase and pseudo-labelling (``teacher.start_step`` > 0) can leave the
        second phase a trickle of the learning rate, and then no arm moves: say so, and what to
        do instead."""
        start = self.cfg.teacher.start_step
        if self.teacher is None or not 0 < start < self.total_steps:
            return
        share = statistics.fmean(schedule(s) for s in range(start, self.total_steps))
        if share < STARVED_LR_SHARE:
            rank_zero_warn(
                f"teacher.start_step={start}: one schedule over both phases leaves the "
                f"{self.total_steps - start} pseudo-labelling steps {share:.0%} of the peak "
                "learning rate on average. Train a labelled-only seed, then the semi-supervised "
                "run from its weights with a schedule of its own (init.checkpoint=SEED/model.pt "
                "teacher.start_step=0; docs/cpu_recipe.md)."
            )

    def learner(self) -> Learner:
        return Learner(
            self.model, self.optimizers(), self.lr_schedulers(), self.teacher, self.heads
        )

    # the hooks that let the plain step run under DDP
    def _sync_time(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _backward(self, loss: torch.Tensor | None) -> bool:
        """Back-propagate one part; a missing part (no usable batch on this rank) still joins
        the gradient all-reduce with a zero loss under DDP. Returns whether the loss is finite."""
        if loss is None:
            if self.trainer.world_size == 1:
                return True
            loss = sum(p.sum() for p in self.trainable()) * 0.0
        finite = bool(torch.isfinite(loss.detach()).item())
        self.manual_backward(loss)
        return finite

    def _any_rank_bad(self, bad: bool) -> bool:
        flag = torch.tensor(float(bad), device=self.device)
        return bool(self.trainer.strategy.reduce(flag, reduce_op="sum").item() > 0)

    def run_step(self, step_fn, batch: TrainBatch) -> StepResult:
        """Run one plain step function with this module's hooks; counts a skipped step."""
        self.data_state = batch.data_state
        result = step_fn(
            self.learner(),
            batch,
            self.global_step,
            self.total_steps,
            self.cfg,
            hooks=Hooks(self.global_rank, self._backward, self._any_rank_bad, self._sync_time),
        )
        if not result.applied:
            self.skipped_steps += 1
        return result

    def training_step(self, batch: TrainBatch, batch_idx: int) -> None:
        start = self._sync_time()
        result = self.run_step(training_step, batch)
        logs = {**result.logs, "train/skipped_steps": float(self.skipped_steps)}
        unlabelled = batch.unlabelled
        if result.pseudo_labels is not None and unlabelled.transcripts is not None:
            counts = label_errors(result.pseudo_labels, unlabelled.transcripts,
                                  unlabelled.transcript_lengths, self.tokenizer.decode,
                                  self.model.config.eos)  # fmt: skip
            logs.update(self.pl_quality.add(counts))
        if result.applied:
            logs["train/epoch"] = float(batch.data_state["epoch"])
            logs["speed/frames_per_s"] = (
                result.frames * self.trainer.world_size / result.logs["time/step"]
            )
            if self._last_end is not None:
                logs["time/data"] = start - self._last_end
            self.log_dict({"loss": logs["loss/total"], "lr": logs["train/lr"]}, prog_bar=True,
                          batch_size=1)  # fmt: skip
        self._last_end = self._sync_time()
        self.log_dict(logs, batch_size=1)

    # validation: greedy WER per stream
    def on_validation_epoch_start(self) -> None:
        self._val = {s: [0, 0] for s in self.cfg.trainer.val_streams}

    def validation_step(self, batch: Batch | None, batch_idx: int) -> None:
        if batch is None:
            return
        lengths = batch.lengths
        decode = self.tokenizer.decode
        refs = [decode(t[:n].tolist()) for t, n in zip(batch.targets, batch.target_lengths)]
        encoded = self.model.encode(batch.video, batch.audio, lengths, tuple(self._val))
        options = DecodingOptions(method=self.cfg.trainer.val_method)
        for stream, counts in self._val.items():
            nbests = decode_encoded(self.model, encoded[stream], lengths, stream, options)
            hyps = [decode(nbest[0].tokens) if nbest else "" for nbest in nbests]
            errors, words = word_errors(refs, hyps)
            counts[0] += errors
            counts[1] += words

    def on_validation_epoch_end(self) -> None:
        for stream, counts in self._val.items():
            totals = torch.tensor(counts, dtype=torch.float64, device=self.device)
            totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
            if totals[1] > 0:
                wer = float(100 * totals[0] / totals[1])
                self.log(f"val/wer_{stream}", wer, prog_bar=stream == "av", batch_size=1)

    # checkpoint contents beyond the state dicts
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["unisr"] = {
            "config": self.model.config.to_dict(),
            "tokenizer": self.tokenizer.to_dict(),
            "train_config": plain(self.cfg.to_dict()),
            "data_state": self.data_state,
            "skipped_steps": self.skipped_steps,
            "max_frames": longest_clip(self.trainer),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get("unisr", {})
        self.skipped_steps = meta.get("skipped_steps", 0)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if meta.get("data_state") and datamodule is not None and datamodule.stream is not None:
            datamodule.stream.resume = meta["data_state"]
        state = checkpoint["state_dict"]
        if self.heads is not None and not any(k.startswith("heads.") for k in state):
            self._add_fresh_heads(checkpoint)

    def _add_fresh_heads(self, checkpoint: dict) -> None:
        """Continue a run made without USR 1.0's extra output layers (e.g. the shared
        ``pl-start.ckpt`` of a labelled-only phase) in ``pl.mode=usr1``: the layers start as
        initialised, with no optimizer state, everything else resumes as saved."""
        checkpoint["state_dict"].update(
            {f"heads.{k}": v for k, v in self.heads.state_dict().items()}
        )
        n = len(self.trainable())
        for optimizer in checkpoint.get("optimizer_states", []):
            group = optimizer["param_groups"][-1]
            known = sum(len(g["params"]) for g in optimizer["param_groups"])
            group["params"] = [*group["params"], *range(known, n)]


# ---------------------------------------------------------------- checkpoints


RUN_KEY = "unisr_run"  # the run id stored in every training checkpoint


def run_of(path: Path) -> str | None:
    """The run id a training checkpoint was written by (None: untagged or unreadable). Tensors
    are memory-mapped, not read."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable: belongs to no run we know, so it is never touched
        return "?"
    return data.get(RUN_KEY) if isinstance(data, dict) else "?"


def run_checkpoints(directory: Path, run_id: str | None, _seen: dict | None = None) -> list[Path]:
    """The ``step-*.ckpt`` files of ``directory`` written by run ``run_id``, oldest first.
    ``_seen`` caches ids by (name, size, mtime) across calls."""
    seen = {} if _seen is None else _seen
    mine = []
    for path in sorted(directory.glob("step-*.ckpt"), key=step_of):
        st = path.stat()
        key = (path.name, st.st_size, st.st_mtime_ns)
        if key not in seen:
            seen[key] = run_of(path)
        if seen[key] == run_id:
            mine.append(path)
    return mine


class Checkpoints(pl.Callback):
    """Full training state every ``every`` steps (0 = every epoch) and at the end, keeping the
    newest ``keep`` of this run (``run_id``); at the end also the unisr model files (student,
    teacher, average of this run's last checkpoints). Checkpoints of another run are never
    pruned, averaged or overwritten."""

    def __init__(self, out_dir: Path, every: int, keep: int, average: int, run_id=None):
        self.out_dir, self.dir = out_dir, out_dir / "checkpoints"
        self.every, self.average = every, average
        self.keep = max(keep, average, 1)
        self.last = -1
        self.run_id = run_id
        self._seen: dict = {}

    def mine(self) -> list[Path]:
        return run_checkpoints(self.dir, self.run_id, self._seen)

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint[RUN_KEY] = self.run_id

    def save(self, trainer: pl.Trainer) -> None:
        step = trainer.global_step
        if step == self.last:
            return
        self.last = step
        path = self.dir / f"step-{step:08d}.ckpt"
        if path.exists() and path not in self.mine():  # another run's file: keep it
            path = self.dir / f"step-{step:08d}-{self.run_id}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        if trainer.is_global_zero:
            for old in self.mine()[: -self.keep]:
                old.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every and trainer.global_step and trainer.global_step % self.every == 0:
            self.save(trainer)
        start = module.cfg.teacher.start_step
        if module.teacher is not None and start > 0 and trainer.global_step == start:
            self.save_pl_start(trainer, module)

    def save_pl_start(self, trainer: pl.Trainer, module: USRModule) -> None:
        """The state where pseudo-labelling begins: the labelled-only student
        (``labelled_only.pt``) and the full training state (``checkpoints/pl-start.ckpt``), from
        which a labelled-only continuation can be compared with the semi-supervised run."""
        trainer.save_checkpoint(self.dir / "pl-start.ckpt", weights_only=False)
        if trainer.is_global_zero:
            extra = {"step": trainer.global_step, "train_config": plain(module.cfg.to_dict())}
            path = self.out_dir / "labelled_only.pt"
            save_checkpoint(path, module.model, module.tokenizer, **extra)

    def on_train_epoch_end(self, trainer, module) -> None:
        if not self.every:
            self.save(trainer)

    def on_train_end(self, trainer, module: USRModule) -> None:
        self.save(trainer)
        if not trainer.is_global_zero:
            return
        extra = {"step": trainer.global_step, "train_config": plain(module.cfg.to_dict())}
        longest = longest_clip(trainer)
        if longest:
            extra["max_frames"] = longest
        save_checkpoint(self.out_dir / "model.pt", module.model, module.tokenizer, **extra)
        if module.teacher is not None:
            save_checkpoint(self.out_dir / "teacher.pt", module.teacher, module.tokenizer, **extra)
        recent = self.mine()[-self.average :] if self.average > 0 else []
        if self.average > 1 and len(recent) > 1:
            average_checkpoints(recent, self.out_dir / "model_avg.pt")


# ---------------------------------------------------------------- entry points


def longest_clip(trainer: pl.Trainer) -> int | None:
    """Frames of the longest training clip, stored with the model: long inputs are cut into
    segments no longer than what it learnt from (:mod:`unisr.segment`)."""
    datasets = getattr(trainer.datamodule, "datasets", None)
    return max(datasets[0].lengths) if datasets and datasets[0] is not None else None


def plain(data):
    """Tuples -> lists, for YAML and checkpoints."""
    return json.loads(json.dumps(data))


def world_size_from_env(accelerator: str, devices, num_nodes) -> tuple[int, int]:
    """Resolve "auto" devices / nodes from torchrun or SLURM variables, else every GPU of this
    machine (one process on CPU)."""
    env = os.environ
    if devices == "auto":
        if "LOCAL_WORLD_SIZE" in env:
            devices = int(env["LOCAL_WORLD_SIZE"])
        elif "SLURM_NTASKS_PER_NODE" in env:
            devices = int(env["SLURM_NTASKS_PER_NODE"].split("(")[0])
        else:
            devices = max(torch.cuda.device_count(), 1) if accelerator == "gpu" else 1
    if num_nodes == "auto":
        if "WORLD_SIZE" in env and "LOCAL_WORLD_SIZE" in env:
            num_nodes = int(env["WORLD_SIZE"]) // int(env["LOCAL_WORLD_SIZE"])
        else:
            num_nodes = int(env.get("SLURM_NNODES", 1))
    return int(devices), int(num_nodes)


def build_trainer(cfg: TrainConfig, callbacks: list) -> pl.Trainer:
    t, o = cfg.trainer, cfg.optim
    accelerator = t.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    devices, num_nodes = world_size_from_env(accelerator, t.devices, t.num_nodes)
    strategy = "auto"
    if devices * num_nodes > 1:
        strategy = DDPStrategy(find_unused_parameters=True)
    precision = t.precision
    if precision == "auto":
        bf16 = accelerator == "gpu" and torch.cuda.is_bf16_supported()
        precision = "bf16-mixed" if bf16 else "32-true"
    out = Path(t.out_dir)
    validate = bool(cfg.data.val)
    if t.progress_bar:  # redraw less often when the output is a log file
        callbacks = [*callbacks, TQDMProgressBar(refresh_rate=1 if sys.stderr.isatty() else 100)]
    return pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        max_epochs=-1 if o.max_steps else o.epochs,
        max_steps=o.max_steps or -1,
        logger=[
            TensorBoardLogger(out, name="tensorboard", default_hp_metric=False),
            CSVLogger(out, name="csv"),
        ],
        callbacks=callbacks,
        log_every_n_steps=t.log_every,
        val_check_interval=t.val_every if t.val_every else 1.0,
        check_val_every_n_epoch=None if t.val_every else 1,
        limit_val_batches=1.0 if validate else 0,
        num_sanity_val_steps=0,
        enable_progress_bar=t.progress_bar,
        enable_checkpointing=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        default_root_dir=out,
    )


RUN_FILES = ("run.json", "config.yaml", "checkpoints", "model.pt", "teacher.pt", "model_avg.pt",
             "labelled_only.pt", "tensorboard", "csv")  # fmt: skip


def global_rank() -> int:
    """This process's rank from torchrun or SLURM variables (0 when alone)."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", 0)))


def run_contents(out: Path) -> list[str]:
    """The names of a training run's files that ``out`` holds."""
    return [name for name in RUN_FILES if (out / name).exists()]


def folder_run_id(out: Path) -> str | None:
    """The id in ``out/run.json`` (None without one, e.g. a run of an older version)."""
    try:
        return json.loads((out / "run.json").read_text())["run_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class RunPlan:
    """What a start does to its run folder, decided before anything is written."""

    out: Path
    run_id: str
    ckpt_path: str | None = None  # the checkpoint to continue from
    move_aside: Path | None = None  # where --overwrite moves the earlier run


def find_resume(resume: str | None, out_dir: Path) -> str | None:
    """``auto``: the newest checkpoint of the run in ``out_dir`` (an error when there is none);
    else a path, which must exist."""
    if resume is None:
        return None
    if resume == "auto":
        found = run_checkpoints(out_dir / "checkpoints", folder_run_id(out_dir))
        if not found:
            raise UnisrError(
                f"--resume: nothing to resume in {out_dir} (no checkpoints/step-*.ckpt of its "
                "run); start without --resume"
            )
        return str(found[-1])
    if not Path(resume).is_file():
        raise UnisrError(f"{resume}: checkpoint to resume from not found")
    return resume


def plan_run(out: Path, resume: str | None, overwrite: bool) -> RunPlan:
    """Decide, reading only, what to do with the run folder ``out``: continue its run
    (``resume``), replace it (``overwrite``), or start in a folder that holds no run."""
    if resume is not None and overwrite:
        raise UnisrError("--resume continues the run and --overwrite replaces it: give one")
    if out.exists() and not out.is_dir():
        raise UnisrError(f"trainer.out_dir {out}: exists and is not a folder")
    held = run_contents(out) if out.is_dir() else []
    if resume is not None:
        ckpt = find_resume(resume, out)
        run_id = run_of(Path(ckpt))
        if run_id == "?":
            raise UnisrError(f"{ckpt}: not a readable training checkpoint")
        if held and run_id != folder_run_id(out) and global_rank() == 0:
            raise UnisrError(
                f"--resume {ckpt}: {out} holds another run ({', '.join(held)}); resume into that "
                "checkpoint's own folder or an empty one"
            )
        return RunPlan(out, run_id, ckpt_path=ckpt)
    plan = RunPlan(out, uuid.uuid4().hex)
    if held and global_rank() == 0:  # the other ranks start after rank 0 has written
        if not overwrite:
            raise UnisrError(
                f"{out} holds a training run ({', '.join(held)}): continue it with --resume, or "
                "start again with --overwrite (the earlier run is moved aside, not deleted)"
            )
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = out.with_name(f"{out.name}.replaced-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = out.with_name(f"{out.name}.replaced-{stamp}-{n}")
        plan.move_aside = aside
    return plan


def start_run(plan: RunPlan, cfg: TrainConfig) -> None:
    """Rank 0 writes the run folder: the earlier run moved aside (``--overwrite``), then
    ``run.json`` (kept when continuing) and ``config.yaml``."""
    out = plan.out
    if plan.move_aside is not None:
        os.replace(out, plan.move_aside)
        print(f"unisr train: --overwrite: moved the earlier run {out} to {plan.move_aside}")
    out.mkdir(parents=True, exist_ok=True)
    if plan.ckpt_path is None or not (out / "run.json").is_file():
        info = {"run_id": plan.run_id, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (out / "run.json").write_text(json.dumps(info, indent=1) + "\n")
    (out / "config.yaml").write_text(yaml.safe_dump(plain(cfg.to_dict()), sort_keys=False))


def train(
    cfg: TrainConfig,
    resume: str | None = None,
    callbacks: tuple = (),
    overwrite: bool = False,
    module_class: type[USRModule] = USRModule,
    data_class: type[USRDataModule] = USRDataModule,
) -> USRModule:
    """Run (or resume) a training run; returns the trained module. ``resume``: "auto" (the
    run's newest checkpoint) or a checkpoint path; ``overwrite`` moves an earlier run in the
    folder aside. Everything is checked before the run folder is touched. Pre-training passes
    its own module and data classes (``pretrain.py``)."""
    t = cfg.trainer
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    pl.seed_everything(t.seed, verbose=False)
    out = Path(t.out_dir)
    plan = plan_run(out, resume, overwrite)
    tokenizer = load_tokenizer(cfg.data.tokenizer)
    model_config = cfg.model_config(tokenizer.vocab_size)
    module = module_class(cfg, model_config, tokenizer)
    data = data_class(cfg, model_config, tokenizer)
    data.load_datasets()
    saver = Checkpoints(out, t.ckpt_every, t.keep_checkpoints, t.average_last, plan.run_id)
    trainer = build_trainer(cfg, [saver, *callbacks])
    if trainer.is_global_zero:
        start_run(plan, cfg)
    try:
        trainer.fit(module, datamodule=data, ckpt_path=plan.ckpt_path)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return module


def train_cli(args, run=train) -> int:
    """``unisr train`` (and, with ``run=pretrain``, ``unisr pretrain``)."""
    cfg = load_config(args.config, args.overrides, args.command)
    if args.print_config:
        print(yaml.safe_dump(plain(cfg.to_dict()), sort_keys=False), end="")
        return 0
    module = run(cfg, resume=args.resume, overwrite=args.overwrite)
    out = Path(cfg.trainer.out_dir)
    if module.global_rank == 0:
        print(f"model: {out / 'model.pt'}  (training state: {out / 'checkpoints'})")
        if module.skipped_steps:
            print(f"skipped {module.skipped_steps} step(s) with non-finite loss or gradient")
    return 0
