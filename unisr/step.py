"""One training step as a plain function: typed batch in, losses and logs out.

:func:`training_step` is what ``unisr train`` does per optimizer step (the Lightning module in
:mod:`unisr.train` only calls it) and what ``benchmarks/train_step.py`` times; it needs no
Lightning. In order:

1. The global RNG is seeded from (seed, step, rank), so dropout and masks repeat on resume.
2. Pseudo-labelling steps (semi-supervised runs from ``teacher.start_step`` on; the teacher is
   reset to the student at that step if asked): the PL mode is drawn for the step, the teacher
   labels the clean audio-visual view of the unlabelled batch, and the student's unlabelled loss
   ``sum_m w_m gamma_m L_u^m`` is back-propagated.
3. The labelled loss is back-propagated: ``sum_m w_m (1 - gamma_m) L_l^m`` while
   pseudo-labelling, ``sum_m w_m L_l^m`` otherwise (paper §2.7; :func:`loss_weights`).
4. :func:`apply_gradients`: the summed gradients are clipped, AdamW and the schedule step, the
   teacher follows by EMA. A non-finite loss or gradient (on any rank) skips the whole step.

Two backward passes instead of one sum keep only one part's activations alive at a time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn

from .dataset import Batch
from .ema import ema_update, momentum_at, set_teacher_mode
from .errors import UnisrError
from .losses import LossConfig, UnlabelledHeads, labelled_losses, unlabelled_losses
from .model import UnifiedModel
from .pseudo_labels import PseudoLabels, draw_mode, generate, oracle
from .train_config import OptimSection, TrainConfig


@dataclass
class TrainBatch:
    """One step's data: the labelled batch, the unlabelled batch (semi-supervised runs; either
    may be None when all its clips were bad) and the loader position after it, which travels
    with the batch into each checkpoint for exact resume."""

    labelled: Batch | None
    unlabelled: Batch | None = None
    data_state: dict = field(default_factory=dict)


@dataclass
class Learner:
    """What a step updates: the student with its optimizer and schedule, the EMA teacher
    (semi-supervised runs) and USR 1.0's extra output layers (``pl.mode=usr1``)."""

    model: UnifiedModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    teacher: UnifiedModel | None = None
    heads: UnlabelledHeads | None = None

    def trainable(self) -> list[nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]


@dataclass
class StepResult:
    """What one step did: ``applied`` is False for a skipped (non-finite) step; ``logs`` are
    floats and 0-d tensors keyed as in the training logs."""

    applied: bool
    logs: dict[str, float | Tensor]
    frames: int = 0  # input frames of this process's batches
    mode: str | None = None  # the PL mode drawn for this step, None without pseudo-labelling
    pseudo_labels: PseudoLabels | None = None  # what the student learnt from, for diagnostics


def lr_factor(step: int, warmup: int, total: int, final: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``final`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(
    params: list[nn.Parameter], optim: OptimSection, total_steps: int, warmup: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and its per-step schedule (linear warm-up, cosine decay to ``final_lr``)."""
    optimizer = torch.optim.AdamW(
        params, lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay
    )
    warmup = max(min(warmup, total_steps), 1)
    schedule = partial(lr_factor, warmup=warmup, total=total_steps, final=optim.final_lr / optim.lr)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def seed_step(seed: int, step: int, rank: int) -> None:
    """Seed the global RNG (dropout, drop path, masks) from (seed, step, rank)."""
    state = np.random.SeedSequence([seed, step, rank]).generate_state(2)
    torch.manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def pl_progress(cfg: TrainConfig, step: int, total_steps: int) -> tuple[int, int]:
    """(step, length) of the pseudo-labelling phase, which the EMA momentum and p_ar follow."""
    start = cfg.teacher.start_step
    return max(step - start, 0), max(total_steps - start, 1)


def teacher_momentum(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The EMA momentum after ``step``: a cosine from ``momentum_start`` to ``momentum_end``
    over the steps from ``teacher.start_step`` on."""
    teacher = cfg.teacher
    return momentum_at(*pl_progress(cfg, step, total_steps), teacher.momentum_start,
                       teacher.momentum_end)  # fmt: skip


def loss_weights(cfg: LossConfig, pseudo_labelling: bool) -> tuple[dict[str, float], dict]:
    """(labelled, unlabelled) weight per stream. While pseudo-labelling the total is
    ``sum_m w_m [gamma_m L_u^m + (1 - gamma_m) L_l^m]``; otherwise ``sum_m w_m L_l^m``."""
    w, gamma = cfg.stream_weights, cfg.unlabelled_share
    if not pseudo_labelling:
        return {s: w[s] for s in cfg.streams}, {}
    labelled = {s: w[s] * (1 - gamma[s]) for s in cfg.streams}
    return labelled, {s: w[s] * gamma[s] for s in cfg.streams}


def weighted_sum(losses: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    return sum(weights[s] * losses[s] for s in weights)


def plain_backward(loss: Tensor | None) -> bool:
    """Back-propagate ``loss`` (nothing to do for None); returns whether it was finite."""
    if loss is None:
        return True
    loss.backward()
    return bool(torch.isfinite(loss.detach()).item())


@dataclass(frozen=True)
class Hooks:
    """How a step meets its process: this rank (for seeding), how to back-propagate one part,
    how the ranks agree that a step is bad (so all skip it), and the clock that times the step
    (a trainer synchronises the GPU first). The defaults run a step in one process."""

    rank: int = 0
    backward: Callable[[Tensor | None], bool] = plain_backward
    any_rank_bad: Callable[[bool], bool] = lambda bad: bad
    clock: Callable[[], float] = time.perf_counter


ONE_PROCESS = Hooks()


def apply_gradients(
    learner: Learner,
    finite: bool,
    momentum: float,
    grad_clip: float,
    any_rank_bad: Callable[[bool], bool] = lambda bad: bad,
) -> Tensor | None:
    """Clip, step AdamW and the schedule, then move the teacher towards the student with
    ``momentum``. Returns the gradient norm, or None when the step is skipped because a loss
    (on any rank, via ``any_rank_bad``) or the gradient is not finite."""
    optimizer = learner.optimizer
    bad = any_rank_bad(not finite)
    norm = torch.nn.utils.clip_grad_norm_(learner.trainable(), grad_clip)
    if bad or not torch.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        return None
    optimizer.step()
    learner.scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    if learner.teacher is not None:
        ema_update(learner.teacher, learner.model, momentum)
    return norm


def teacher_labels(
    teacher: UnifiedModel, batch: Batch, mode: str, cfg: TrainConfig
) -> PseudoLabels:
    """The pseudo-labels of an unlabelled batch: the teacher's on the clean views, or in oracle
    mode the batch's known transcripts in their place."""
    if mode == "oracle":
        if batch.oracle_tokens is None:
            raise UnisrError("pl.mode oracle: the unlabelled batch carries no transcripts")
        return oracle(batch.oracle_tokens, batch.oracle_lengths, teacher.config.eos)
    set_teacher_mode(teacher)
    return generate(teacher, batch.video, batch.audio, batch.lengths, mode, cfg.pl)


def training_step(
    learner: Learner,
    batch: TrainBatch,
    step: int,
    total_steps: int,
    cfg: TrainConfig,
    hooks: Hooks = ONE_PROCESS,
) -> StepResult:
    """One optimizer step (see the module docstring)."""
    clock, backward = hooks.clock, hooks.backward
    start = clock()
    seed_step(cfg.trainer.seed, step, hooks.rank)
    pseudo_labelling = learner.teacher is not None and step >= cfg.teacher.start_step
    lab_weights, unl_weights = loss_weights(cfg.loss, pseudo_labelling)
    logs: dict[str, float | Tensor] = {}
    frames, pl_seconds, finite, mode, pls = 0, 0.0, True, None, None

    if pseudo_labelling:
        teacher = learner.teacher
        if step == cfg.teacher.start_step and cfg.teacher.reset_at_start:
            teacher.load_state_dict(learner.model.state_dict())
        mode = draw_mode(cfg.pl, *pl_progress(cfg, step, total_steps), cfg.trainer.seed)
        unlabelled, total = batch.unlabelled, None
        if unlabelled is not None:
            pls = teacher_labels(teacher, unlabelled, mode, cfg)
            if mode != "oracle":  # the oracle's labels cost no teacher call
                pl_seconds = clock() - start
            losses = unlabelled_losses(learner.model, unlabelled, pls, cfg.loss, learner.heads)
            total = weighted_sum(losses, unl_weights)
            logs.update(pls.stats())
            logs.update({f"loss/unlabelled/{k}": v.detach() for k, v in losses.items()})
            logs["loss/unlabelled"] = total.detach()
            frames += unlabelled.frames
        finite &= backward(total)

    total = None
    if batch.labelled is not None:
        losses = labelled_losses(learner.model, batch.labelled, cfg.loss)
        total = weighted_sum(losses, lab_weights)
        logs.update({f"loss/labelled/{k}": v.detach() for k, v in losses.items()})
        logs["loss/labelled"] = total.detach()
        frames += batch.labelled.frames
    finite &= backward(total)

    momentum = teacher_momentum(cfg, step, total_steps)
    norm = apply_gradients(learner, finite, momentum, cfg.optim.grad_clip, hooks.any_rank_bad)
    if norm is None:
        return StepResult(False, logs, frames, mode, pseudo_labels=pls)
    seconds = clock() - start
    logs.update(
        {
            "loss/total": sum(logs.get(k, 0.0) for k in ("loss/labelled", "loss/unlabelled")),
            "train/lr": learner.optimizer.param_groups[0]["lr"],
            "train/momentum": momentum,
            "train/grad_norm": norm,
            "time/step": seconds,
            "time/pseudo_labels": pl_seconds,
            "time/rest": seconds - pl_seconds,
        }
    )
    return StepResult(True, logs, frames, mode, pseudo_labels=pls)
