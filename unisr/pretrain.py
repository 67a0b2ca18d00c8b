"""Self-supervised pre-training of the encoder (USR stage 1), on unlabelled clips only.

The student encoder sees the clip with spans of frames zeroed: the same span mask on video and
audio (upsampled x640 for audio samples), for all three streams (v, a, av). An EMA teacher (the
student's moving average) sees the unmasked audio-visual clip; its targets are the average of
its encoder blocks' outputs, instance-normalised over time. A small Transformer predictor,
shared by the three streams, maps the student's outputs to the targets; the loss is the negative
cosine similarity on masked frames only, weighted 0.3 v / 0.7 a / 0.7 av. The student's decoder
and CTC heads are not trained: ``unisr train ... init.encoder_only=true`` takes the encoder.

Everything else (DDP, exact resume, atomic checkpoints, logs, progress, bad-sample skipping) is
the trainer's (``train.py``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .dataset import Batch
from .ema import set_teacher_mode
from .errors import UnisrError
from .masks import length_mask
from .media import SAMPLES_PER_FRAME
from .model import LAYER_NORM_EPS, EncoderLayer, UnifiedModel, relative_positions
from .sampler import BatchLoader, FrameBatchSampler, TrainIterator
from .step import (
    ONE_PROCESS,
    Hooks,
    Learner,
    StepResult,
    TrainBatch,
    apply_gradients,
    seed_step,
    teacher_momentum,
)
from .tokenizer import Tokenizer
from .train import TrainStream, USRDataModule, USRModule, global_rank, train, train_cli
from .train_config import PretrainSection, TrainConfig, load_config


def span_mask(lengths: Tensor, prob: float, span: int, frames: int) -> Tensor:
    """(B, frames) bool: about ``prob * length / span`` spans of ``span`` frames per utterance,
    starting at distinct random frames (fairseq's ``compute_mask_indices``); never past the
    utterance's end. Drawn from the global RNG, which the trainer seeds per step."""
    mask = torch.zeros(len(lengths), frames, dtype=torch.bool)
    for row, length in enumerate(lengths.tolist()):
        width = min(span, length)
        starts = length - width + 1
        count = min(int(prob * length / span + torch.rand(()).item()), starts)
        for start in torch.randperm(starts)[:count].tolist():
            mask[row, start : start + width] = True
    return mask.to(lengths.device)


def mask_inputs(video: Tensor, audio: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Zero the masked frames of the video and their 640 samples each of the audio."""
    video = video.masked_fill(mask[:, : video.shape[1], None, None], 0.0)
    samples = mask.repeat_interleave(SAMPLES_PER_FRAME, dim=1)[:, : audio.shape[1]]
    return video, audio.masked_fill(samples, 0.0)


def instance_norm(x: Tensor, valid: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise every channel of each utterance over its valid frames (B, T, D)."""
    weight = valid[..., None].to(x.dtype)
    count = weight.sum(1, keepdim=True).clamp(min=1)
    mean = (x * weight).sum(1, keepdim=True) / count
    var = ((x - mean).square() * weight).sum(1, keepdim=True) / count
    return (x - mean) / (var + eps).sqrt() * weight


@torch.no_grad()
def teacher_targets(teacher: UnifiedModel, video: Tensor, audio: Tensor, lengths: Tensor) -> Tensor:
    """The teacher's average encoder-block output on the unmasked AV clip, instance-normalised."""
    blocks: list[Tensor] = []
    teacher.encode(video, audio, lengths, streams=("av",), blocks=blocks)
    average = torch.stack(blocks).float().mean(0)  # float32 targets under autocast too
    return instance_norm(average, length_mask(lengths, average.shape[1]))


def masked_cosine_loss(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Negative cosine similarity averaged over the masked frames only."""
    cosine = F.cosine_similarity(prediction.float(), target.float(), dim=-1)
    return -(cosine * mask).sum() / mask.sum().clamp(min=1)


class Predictor(nn.Module):
    """A small relative-position Transformer from student outputs to teacher targets; masked
    frames get a learned mask embedding added to their input."""

    def __init__(self, cfg: ModelConfig, layers: int):
        super().__init__()
        self.d_model = cfg.d_model
        self.input = nn.Linear(cfg.d_model, cfg.d_model)
        self.mask_embed = nn.Parameter(torch.randn(cfg.d_model) * 0.02)
        self.blocks = nn.ModuleList(EncoderLayer(cfg, 0.0) for _ in range(layers))
        self.norm = nn.LayerNorm(cfg.d_model, eps=LAYER_NORM_EPS)
        self.output = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: Tensor, mask: Tensor, valid: Tensor) -> Tensor:
        x = self.input(x) + mask[..., None] * self.mask_embed
        pos_emb = relative_positions(x.shape[1], self.d_model, x)
        for block in self.blocks:
            x = block(x, pos_emb, valid)
        return self.output(self.norm(x))


def pretrain_losses(
    student: UnifiedModel,
    teacher: UnifiedModel,
    predictor: Predictor,
    batch: Batch,
    cfg: PretrainSection,
) -> dict[str, Tensor]:
    """Per-stream masked-prediction losses of one batch of clean clips, and their weighted sum
    under "total"."""
    video, audio, lengths = batch.video, batch.audio, batch.lengths
    mask = span_mask(lengths, cfg.mask_prob, cfg.mask_span, video.shape[1])
    set_teacher_mode(teacher)
    targets = teacher_targets(teacher, video, audio, lengths)
    masked_video, masked_audio = mask_inputs(video, audio, mask)
    streams = tuple(cfg.stream_weights)
    encoded = student.encode(masked_video, masked_audio, lengths, streams)
    valid = length_mask(lengths, video.shape[1])
    out = {}
    for stream in streams:
        prediction = predictor(encoded[stream], mask, valid)
        out[stream] = masked_cosine_loss(prediction, targets, mask & valid)
    out["total"] = sum(cfg.stream_weights[s] * out[s] for s in streams)
    out["masked_share"] = (mask & valid).sum() / valid.sum().clamp(min=1)
    return out


def pretrain_step(
    learner: Learner,
    batch: TrainBatch,
    step: int,
    total_steps: int,
    cfg: TrainConfig,
    predictor: Predictor,
    hooks: Hooks = ONE_PROCESS,
) -> StepResult:
    """One pre-training step, with the hooks of :func:`unisr.step.training_step`: masked
    prediction on the batch of unlabelled clips (``batch.labelled``, the data module's one
    stream), clipping, AdamW, and the teacher's EMA."""
    seed_step(cfg.trainer.seed, step, hooks.rank)
    clips, losses = batch.labelled, None
    if clips is not None:
        losses = pretrain_losses(learner.model, learner.teacher, predictor, clips, cfg.pretrain)
    finite = hooks.backward(None if losses is None else losses["total"])
    momentum = teacher_momentum(cfg, step, total_steps)
    norm = apply_gradients(learner, finite, momentum, cfg.optim.grad_clip, hooks.any_rank_bad)
    if norm is None or losses is None:
        return StepResult(applied=norm is not None, logs={})
    logs = {f"pretrain/{k}": v.detach() for k, v in losses.items()}
    logs["train/grad_norm"], logs["train/momentum"] = norm, momentum
    logs["train/lr"] = learner.optimizer.param_groups[0]["lr"]
    return StepResult(applied=True, logs=logs, frames=clips.frames)


class PretrainData(USRDataModule):
    """One stream of batches: the unlabelled clips (their clean views), by their frame budget."""

    def load_datasets(self) -> None:
        d = self.data_cfg
        if not d.unlabelled:
            raise UnisrError("data.unlabelled is not set (the clips to pre-train on)")
        if self.datasets is None:
            self.datasets = (self._dataset(d.unlabelled, False, True), None, None)

    def setup(self, stage: str) -> None:
        self.load_datasets()
        if self.stream is None:
            d, clips = self.data_cfg, self.datasets[0]
            sampler = FrameBatchSampler(
                clips.lengths, d.frames_per_batch_unlabelled, seed=self.cfg.trainer.seed
            )
            loader = BatchLoader(clips, sampler, workers=d.workers, name="unlabelled")
            self.stream = TrainStream(TrainIterator(loader))


class PretrainModule(USRModule):
    """Student encoder + predictor trained against the EMA teacher's targets."""

    def __init__(self, cfg: TrainConfig, model_config: ModelConfig, tokenizer: Tokenizer):
        super().__init__(cfg, model_config, tokenizer)
        self.predictor = Predictor(model_config, cfg.pretrain.predictor_layers)

    def trainable(self) -> list[nn.Parameter]:
        return list(self.model.encoder.parameters()) + list(self.predictor.parameters())

    def training_step(self, batch: TrainBatch, batch_idx: int) -> None:
        result = self.run_step(partial(pretrain_step, predictor=self.predictor), batch)
        self.log_dict(result.logs, batch_size=1)
        if result.applied:
            self.log("loss", result.logs["pretrain/total"], prog_bar=True, batch_size=1)

    def validation_step(self, batch, batch_idx) -> None:
        return None


def pretrain(cfg: TrainConfig, resume: str | None = None, overwrite: bool = False, callbacks=()):
    """Run (or resume) a pre-training run; returns the trained module. A missing
    ``data.unlabelled`` is refused before anything is written (``PretrainData``)."""
    return train(cfg, resume, callbacks, overwrite, module_class=PretrainModule,
                 data_class=PretrainData)  # fmt: skip


def pretrain_cli(args) -> int:
    code = train_cli(args, run=pretrain)
    if not args.print_config and global_rank() == 0:
        cfg = load_config(args.config, args.overrides, "pretrain")
        model = Path(cfg.trainer.out_dir) / "model.pt"
        print(f"use its encoder: unisr train ... init.checkpoint={model} init.encoder_only=true")
    return code
