"""Convolutional front-ends: one feature vector per 25 fps video frame for each modality.

Video: a 3-D convolutional stem (5 frames x 7 x 7) followed by a 2-D ResNet-18 applied to every
frame. Audio: a 1-D ResNet-18 on the raw 16 kHz waveform with a total stride of 640 samples.
With ``width=64`` both are exactly the official USR front-ends (512-d outputs); smaller widths
give cheap CPU models. Parameter names follow the official checkpoints.

Given per-utterance ``lengths`` the front-ends zero every activation beyond an utterance's end
before each convolution, so a padded batch computes exactly what each utterance would alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .masks import length_mask
from .media import SAMPLE_RATE, SAMPLES_PER_FRAME


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions) with SiLU, in 1-D or 2-D."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.conv1 = conv(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = norm(out_ch)
        self.conv2 = conv(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = norm(out_ch)
        self.act = nn.SiLU()
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                conv(in_ch, out_ch, 1, stride, bias=False), norm(out_ch)
            )

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        """``valid`` (B,) counts valid output positions (1-D only); the rest are zeroed."""
        out = self.act(self.bn1(self.conv1(x)))
        mask = None if valid is None else length_mask(valid, out.shape[-1])[:, None, :]
        if mask is not None:
            out = out * mask
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act(out + shortcut)
        return out if mask is None else out * mask


class ResNetTrunk(nn.Module):
    """Four stages of two basic blocks, widths w, 2w, 4w, 8w and strides 1, 2, 2, 2."""

    def __init__(self, dims: int, width: int):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        in_ch = width
        for i, (out_ch, stride) in enumerate(zip(widths, [1, 2, 2, 2]), start=1):
            blocks = nn.ModuleList(
                [BasicBlock(dims, in_ch, out_ch, stride), BasicBlock(dims, out_ch, out_ch, 1)]
            )
            setattr(self, f"layer{i}", blocks)
            in_ch = out_ch
        self.out_dim = in_ch

    def stages(self) -> list[nn.ModuleList]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]


class VideoFrontend(nn.Module):
    """(B, T, H, W) normalised grayscale frames -> (B, T, 8*width) features."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, width, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            nn.SiLU(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        self.trunk = ResNetTrunk(2, width)
        self.out_dim = self.trunk.out_dim

    def forward(self, video: Tensor, lengths: Tensor | None = None) -> Tensor:
        batch, frames = video.shape[:2]
        video = video.to(self.frontend3D[0].weight.dtype)  # float32 frames into a half model
        if lengths is not None:  # padded frames must look like the stem's own zero padding
            video = video * length_mask(lengths, frames)[:, :, None, None].to(video.dtype)
        x = self.frontend3D(video.unsqueeze(1))  # (B, C, T, H', W')
        x = x.transpose(1, 2).flatten(0, 1)  # (B*T, C, H', W'): frames are independent now
        for stage in self.trunk.stages():
            for block in stage:
                x = block(x)
        return x.mean(dim=(2, 3)).view(batch, frames, -1)


class AudioFrontend(nn.Module):
    """(B, S) raw 16 kHz waveform -> (B, S // 640, 8*width) features."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.trunk = ResNetTrunk(1, width)
        self.trunk.conv1 = nn.Conv1d(1, width, 80, 4, 38, bias=False)
        self.trunk.bn1 = nn.BatchNorm1d(width)
        self.act = nn.SiLU()
        self.pool = nn.AvgPool1d(20, 20)
        self.out_dim = self.trunk.out_dim

    def forward(self, audio: Tensor, lengths: Tensor | None = None) -> Tensor:
        frames = audio.shape[1] // SAMPLES_PER_FRAME
        x = audio[:, None, : frames * SAMPLES_PER_FRAME].to(self.trunk.conv1.weight.dtype)
        samples = None if lengths is None else lengths * SAMPLES_PER_FRAME
        if samples is not None:
            x = x * length_mask(samples, x.shape[-1])[:, None, :].to(x.dtype)
        x = self.act(self.trunk.bn1(self.trunk.conv1(x)))
        # valid positions per frame are exact at every stage: 160 after the stem,
        # then 160, 80, 40, 20 after the four stages
        if lengths is not None:
            x = x * length_mask(lengths * 160, x.shape[-1])[:, None, :]
        for stage, per_frame in zip(self.trunk.stages(), [160, 80, 40, 20]):
            for block in stage:
                x = block(x, None if lengths is None else lengths * per_frame)
        return self.pool(x).transpose(1, 2)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> Tensor:
    """(n_fft // 2 + 1, n_mels) triangular HTK-mel filters from 0 Hz to Nyquist."""

    def mel(hz: Tensor) -> Tensor:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)

    def hz(m: Tensor) -> Tensor:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    top = mel(torch.tensor(sample_rate / 2, dtype=torch.float64))
    edges = hz(torch.linspace(0, float(top), n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


class FbankFrontend(nn.Module):
    """(B, S) raw 16 kHz waveform -> (B, S // 640, channels) from log-mel filterbanks.

    80 mel bins over 25 ms Hann windows every 10 ms (four per video frame, centred in its
    quarters), normalised per utterance and mel bin over the valid frames, then two stride-2
    convolutions over time (GELU) to 25 fps. About a tenth of the raw-waveform ResNet's cost and
    much faster to train from scratch. Padding is zeroed before every step, so a padded batch
    computes exactly what each utterance would alone. In training, ``freq_masks`` SpecAugment
    frequency masks per utterance (the teacher, in eval mode, sees unmasked features).
    """

    HOP, WINDOW = 160, 400
    FREQ_MASK_WIDTH = 10  # widest SpecAugment frequency mask, in mel bins

    def __init__(self, channels: int, n_mels: int = 80, freq_masks: int = 0):
        super().__init__()
        self.freq_masks = freq_masks
        self.register_buffer("window", torch.hann_window(self.WINDOW), persistent=False)
        self.register_buffer(
            "filters", mel_filterbank(n_mels, self.WINDOW, SAMPLE_RATE), persistent=False
        )
        self.conv1 = nn.Conv1d(n_mels, channels, 3, 2, 1)
        self.conv2 = nn.Conv1d(channels, channels, 3, 2, 1)
        self.act = nn.GELU()
        self.out_dim = channels

    def log_mel(self, audio: Tensor, lengths: Tensor) -> Tensor:
        """Log-mel energies (B, n_mels, 4 * frames) of the valid samples (the rest are zeroed),
        float32 in any model dtype and under autocast: energies span too many decades for the
        mantissa of bf16 or the range of fp16."""
        frames = audio.shape[1] // SAMPLES_PER_FRAME
        x = audio[:, : frames * SAMPLES_PER_FRAME].float()
        x = x * length_mask(lengths * SAMPLES_PER_FRAME, x.shape[1]).to(x.dtype)
        side = (self.WINDOW - self.HOP) // 2
        with torch.autocast(x.device.type, enabled=False):
            spec = torch.stft(
                nn.functional.pad(x, (side, side)),
                n_fft=self.WINDOW,
                hop_length=self.HOP,
                window=self.window.float(),
                center=False,
                return_complex=True,
            )  # (B, 201, 4 * frames)
            return torch.log(self.filters.float().T @ spec.abs().square() + 1e-6)

    def features(self, audio: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Log-mel energies normalised per utterance and mel bin; padding frames are zero."""
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[1] // SAMPLES_PER_FRAME)
            lengths = lengths.to(audio.device)
        logmel = self.log_mel(audio, lengths)
        valid = length_mask(lengths * 4, logmel.shape[-1])[:, None, :].to(logmel.dtype)
        count = (lengths * 4).clamp(min=1).to(logmel.dtype)[:, None, None]
        mean = (logmel * valid).sum(-1, keepdim=True) / count
        var = ((logmel - mean).square() * valid).sum(-1, keepdim=True) / count
        return (logmel - mean) / (var + 1e-5).sqrt() * valid

    def mask_frequencies(self, x: Tensor) -> Tensor:
        """SpecAugment: ``freq_masks`` bands of 0..10 mel bins per utterance set to the mean."""
        batch, bins = x.shape[0], x.shape[1]
        shape = (batch, self.freq_masks, 1)
        width = torch.randint(0, self.FREQ_MASK_WIDTH + 1, shape, device=x.device)
        start = (torch.rand(shape, device=x.device) * (bins - width)).long()
        index = torch.arange(bins, device=x.device)
        masked = ((index >= start) & (index < start + width)).any(1)  # (B, n_mels)
        return x.masked_fill(masked[:, :, None], 0.0)

    def forward(self, audio: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = self.features(audio, lengths)  # float32 whatever the model's dtype
        if self.training and self.freq_masks:
            x = self.mask_frequencies(x)
        x = x.to(self.conv1.weight.dtype)
        if lengths is None:
            return self.act(self.conv2(self.act(self.conv1(x)))).transpose(1, 2)
        x = self.act(self.conv1(x)) * length_mask(lengths * 2, x.shape[-1] // 2)[:, None, :]
        x = self.act(self.conv2(x)) * length_mask(lengths, x.shape[-1] // 2)[:, None, :]
        return x.transpose(1, 2)
