"""The unified audio / visual / audio-visual model (USR 2.0 architecture).

Three input streams share one Transformer encoder and one decoder:

    video -> VideoFrontend -> linear_v  -\
    audio -> AudioFrontend -> linear_a  --+-> encoder -> ctc_<stream>, decoder + out_layer_<stream>
    [video, audio] features -> linear_av -/

The audio front-end is the official raw-waveform ResNet or, with ``audio_frontend="fbank"``, a
log-mel filterbank with two strided convolutions (CPU presets; trains from scratch much faster).

Module and parameter names match the official ``E2E`` state dict, so official checkpoints load
with no renaming beyond stripping their wrapper prefixes (see ``checkpoint.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .errors import UnisrError
from .frontends import AudioFrontend, FbankFrontend, VideoFrontend
from .masks import length_mask
from .transcribe import decode as decode_function
from .transcribe import transcribe as transcribe_function

STREAMS = ("v", "a", "av")
LAYER_NORM_EPS = 1e-12  # the official model uses 1e-12 in every encoder/decoder LayerNorm


def _check_stream(stream: str) -> None:
    if stream not in STREAMS:
        raise UnisrError(f"unknown stream {stream!r}; use one of {STREAMS}")


def sinusoids(positions: Tensor, dim: int) -> Tensor:
    """Sinusoidal table: entry 2m = sin(p / 10000^(2m/dim)), entry 2m+1 = cos(...)."""
    inv_freq = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device)
        * (-math.log(10000.0) / dim)
    )
    angles = positions.float()[:, None] * inv_freq[None, :]
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)


def relative_positions(length: int, dim: int, like: Tensor) -> Tensor:
    """(1, 2T-1, dim) sinusoids of the distances T-1 .. -(T-1), as the encoder blocks use them."""
    distances = torch.arange(length - 1, -length, -1, device=like.device)
    return sinusoids(distances, dim).to(like.dtype)[None]


class FeedForward(nn.Module):
    def __init__(self, dim: int, units: int, dropout: float):
        super().__init__()
        self.w_1 = nn.Linear(dim, units)
        self.w_2 = nn.Linear(units, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


class DropPath(nn.Module):
    """Stochastic depth: drops a residual branch for a whole sample during training."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - self.rate)
        return x * keep / (1 - self.rate)


class RelPositionAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL relative positions (ESPnet "latest").

    score(i, j) = [(q_i + u) . k_j + (q_i + v) . p(i - j)] / sqrt(d_k), full bidirectional.
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.d_k = heads, dim // heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout = dropout

    def _split(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], -1, self.heads, self.d_k).transpose(1, 2)

    def forward(self, x: Tensor, pos_emb: Tensor, key_mask: Tensor | None) -> Tensor:
        batch, length, _ = x.shape
        q = self._split(self.linear_q(x))  # (B, H, T, d_k)
        k, v = self._split(self.linear_k(x)), self._split(self.linear_v(x))
        p = self._split(self.linear_pos(pos_emb))  # (1, H, 2T-1, d_k), rows for +(T-1) .. -(T-1)
        scores_pos = torch.matmul(q + self.pos_bias_v[:, None, :], p.transpose(-2, -1))
        # row (T-1) - (i - j) of the table holds distance i - j
        index = torch.arange(length, device=x.device)
        index = (length - 1 - index[:, None] + index[None, :]).expand(batch, self.heads, -1, -1)
        # the bias joins q's scores in q's dtype, so padding takes that dtype's own minimum
        bias = (torch.gather(scores_pos, -1, index) / math.sqrt(self.d_k)).to(q.dtype)
        if key_mask is not None:
            bias = bias.masked_fill(~key_mask[:, None, None, :], torch.finfo(bias.dtype).min)
        out = F.scaled_dot_product_attention(
            q + self.pos_bias_u[:, None, :],
            k,
            v,
            attn_mask=bias,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.linear_out(out.transpose(1, 2).reshape(batch, length, -1))


class EncoderLayer(nn.Module):
    """Pre-norm block with layer scale: x += g_mha * MHA(LN(x)); x += g_ff * FFN(LN(x))."""

    def __init__(self, cfg: ModelConfig, drop_path: float):
        super().__init__()
        dim = cfg.d_model
        self.self_attn = RelPositionAttention(dim, cfg.heads, cfg.attn_dropout)
        self.feed_forward = FeedForward(dim, cfg.ff_units, cfg.dropout)
        self.norm_mha = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm_ff = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.gamma_mha = nn.Parameter(torch.full((dim,), cfg.gamma_init))
        self.gamma_ff = nn.Parameter(torch.full((dim,), cfg.gamma_init))
        self.dropout = nn.Dropout(cfg.dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, pos_emb: Tensor, key_mask: Tensor | None) -> Tensor:
        h = self.self_attn(self.norm_mha(x), pos_emb, key_mask)
        x = x + self.drop_path(self.gamma_mha * self.dropout(h))
        h = self.feed_forward(self.norm_ff(x))
        return x + self.drop_path(self.gamma_ff * self.dropout(h))


class Encoder(nn.Module):
    """Front-ends, per-stream projections and the shared relative-position Transformer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.d_model = cfg.d_model
        self.frontend_v = VideoFrontend(cfg.frontend_width)
        if cfg.audio_frontend == "fbank":
            self.frontend_a = FbankFrontend(cfg.d_model, freq_masks=cfg.fbank_freq_masks)
        else:
            self.frontend_a = AudioFrontend(cfg.frontend_width)
        feat_v, feat_a = self.frontend_v.out_dim, self.frontend_a.out_dim
        self.linear_v = nn.Linear(feat_v, cfg.d_model)
        self.linear_a = nn.Linear(feat_a, cfg.d_model)
        self.linear_av = nn.Linear(feat_v + feat_a, cfg.d_model)  # input: [video, audio]
        # drop-path rate grows linearly with depth (0 for the first block)
        rates = [cfg.drop_path * i / max(cfg.enc_layers - 1, 1) for i in range(cfg.enc_layers)]
        self.encoders = nn.ModuleList(EncoderLayer(cfg, rate) for rate in rates)
        self.after_norm = nn.LayerNorm(cfg.d_model, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(cfg.dropout)

    def project(
        self, video: Tensor | None, audio: Tensor | None, lengths: Tensor | None, streams
    ) -> dict[str, Tensor]:
        """Front-end features projected to the model width, one (B, T, D) tensor per stream."""
        need_v = any(s in ("v", "av") for s in streams)
        need_a = any(s in ("a", "av") for s in streams)
        if need_v and video is None:
            raise UnisrError(f"streams {tuple(streams)} need video input")
        if need_a and audio is None:
            raise UnisrError(f"streams {tuple(streams)} need audio input")
        feats_v = self.frontend_v(video, lengths) if need_v else None
        feats_a = self.frontend_a(audio, lengths) if need_a else None
        if feats_v is not None and feats_a is not None and feats_v.shape[1] != feats_a.shape[1]:
            raise UnisrError(
                f"video has {feats_v.shape[1]} frames but audio gives {feats_a.shape[1]} "
                f"(audio must hold 640 samples per video frame)"
            )
        projected = {}
        for stream in streams:
            if stream == "v":
                projected[stream] = self.linear_v(feats_v)
            elif stream == "a":
                projected[stream] = self.linear_a(feats_a)
            else:
                projected[stream] = self.linear_av(torch.cat([feats_v, feats_a], dim=-1))
        return projected

    def transformer(
        self, x: Tensor, key_mask: Tensor | None, blocks: list[Tensor] | None = None
    ) -> Tensor:
        """The shared Transformer on projected features (B, T, D); appends each block's output
        to ``blocks`` when given (the pre-training targets)."""
        pos_emb = relative_positions(x.shape[1], self.d_model, x)
        x = self.dropout(x * math.sqrt(self.d_model))
        pos_emb = self.dropout(pos_emb)
        for layer in self.encoders:
            x = layer(x, pos_emb, key_mask)
            if blocks is not None:
                blocks.append(x)
        return self.after_norm(x)


class CTCHead(nn.Module):
    def __init__(self, dim: int, vocab_size: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.ctc_lo = nn.Linear(dim, vocab_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.ctc_lo(self.dropout(x))


class Attention(nn.Module):
    """Plain multi-head attention used by the decoder (no attention dropout, as officially)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.d_k = heads, dim // heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)

    def split(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], -1, self.heads, self.d_k).transpose(1, 2)

    def merge(self, x: Tensor) -> Tensor:
        return self.linear_out(x.transpose(1, 2).flatten(2))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dim = cfg.d_model
        self.self_attn = Attention(dim, cfg.heads)
        self.src_attn = Attention(dim, cfg.heads)
        self.feed_forward = FeedForward(dim, cfg.ff_units, cfg.dropout)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm3 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, memory: tuple[Tensor, Tensor], memory_mask: Tensor | None, causal: bool
    ) -> Tensor:
        """Full-sequence pass; ``memory`` is this layer's (keys, values) of the encoder output."""
        h = self.norm1(x)
        att = self.self_attn
        q, k, v = att.split(att.linear_q(h)), att.split(att.linear_k(h)), att.split(att.linear_v(h))
        x = x + self.dropout(att.merge(F.scaled_dot_product_attention(q, k, v, is_causal=causal)))
        return self._cross_and_ff(x, memory, memory_mask)

    def _cross_and_ff(self, x: Tensor, memory: tuple[Tensor, Tensor], memory_mask) -> Tensor:
        att = self.src_attn
        q = att.split(att.linear_q(self.norm2(x)))
        mem_k, mem_v = memory
        if q.shape[0] != mem_k.shape[0]:  # several hypotheses per utterance: fold them into time
            group = q.shape[0] // mem_k.shape[0]
            q_grouped = q.view(mem_k.shape[0], group, att.heads, -1, att.d_k)
            q_grouped = q_grouped.permute(0, 2, 1, 3, 4).flatten(2, 3)
            out = F.scaled_dot_product_attention(q_grouped, mem_k, mem_v, attn_mask=memory_mask)
            out = out.view(mem_k.shape[0], att.heads, group, -1, att.d_k).permute(0, 2, 1, 3, 4)
            out = out.flatten(0, 1)
        else:
            out = F.scaled_dot_product_attention(q, mem_k, mem_v, attn_mask=memory_mask)
        x = x + self.dropout(att.merge(out))
        return x + self.dropout(self.feed_forward(self.norm3(x)))

    def memory(self, memory: Tensor, frames: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """This layer's keys and values of the encoder output (B, T, D). With ``frames`` (flat
        indices of the valid frames) only those are projected: padding, which attention masks,
        costs no matrix product and stays zero."""
        att = self.src_attn
        if frames is None:
            return att.split(att.linear_k(memory)), att.split(att.linear_v(memory))
        valid = memory.flatten(0, 1).index_select(0, frames)
        keys, values = att.linear_k(valid), att.linear_v(valid)
        # the projections' dtype, which autocast may make lower than the memory's
        keys_values = keys.new_zeros(2, memory.shape[0] * memory.shape[1], memory.shape[2])
        keys_values[0].index_copy_(0, frames, keys)
        keys_values[1].index_copy_(0, frames, values)
        keys, values = keys_values.view(2, *memory.shape)
        return att.split(keys), att.split(values)


@dataclass
class DecoderState:
    """Incremental decoding cache: per-layer self-attention keys/values of the tokens so far and
    the encoder memory's keys/values. Rows are hypotheses; with ``group`` > 1 the rows of one
    utterance are contiguous and share that utterance's memory. ``order`` holds the cache row
    that each hypothesis continues (None: its own row); the next step gathers the cache in that
    order as it appends, so reordering costs no copy of its own."""

    self_kv: list[tuple[Tensor, Tensor]]
    memory_kv: list[tuple[Tensor, Tensor]]
    memory_mask: Tensor | None  # (B, 1, 1, T) bool, True = valid frame
    group: int
    position: int
    order: Tensor | None = None

    def select(self, index: Tensor, utterances: Tensor | slice | None = None) -> DecoderState:
        """Reorder or filter hypothesis rows. The memory keeps ``utterances`` (indices, or a
        slice, which keeps views); with ``group == 1`` rows are utterances and by default the
        memory follows ``index``; with groups, ``index`` must keep every row inside its
        utterance."""
        order = index if self.order is None else self.order.index_select(0, index)
        if utterances is None and self.group == 1:
            utterances = index
        if utterances is None:
            return replace(self, order=order)
        memory_kv = [(_rows(k, utterances), _rows(v, utterances)) for k, v in self.memory_kv]
        mask = None if self.memory_mask is None else _rows(self.memory_mask, utterances)
        return replace(self, order=order, memory_kv=memory_kv, memory_mask=mask)


def _rows(x: Tensor, rows: Tensor | slice) -> Tensor:
    """Rows of ``x``: a view for a slice, one copy for indices."""
    return x[rows] if isinstance(rows, slice) else x.index_select(0, rows)


def _append(past: Tensor, new: Tensor, order: Tensor | None) -> Tensor:
    """Cached keys or values (N', H, t, d) in ``order`` followed by ``new`` (N, H, 1, d) along
    time, written in one copy."""
    if order is None:
        return torch.cat([past, new], dim=2)
    out = new.new_empty(new.shape[0], new.shape[1], past.shape[2] + 1, new.shape[3])
    torch.index_select(past, 0, order, out=out[:, :, :-1])
    out[:, :, -1:] = new
    return out


class Decoder(nn.Module):
    """Shared Transformer decoder with absolute positions and one output layer per stream."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.d_model = cfg.d_model
        self.embed = nn.Sequential(nn.Embedding(cfg.vocab_size, cfg.d_model))
        self.decoders = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        self.after_norm = nn.LayerNorm(cfg.d_model, eps=LAYER_NORM_EPS)
        self.out_layer_v = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.out_layer_a = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.out_layer_av = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.dropout = nn.Dropout(cfg.dropout)

    def _embed(self, tokens: Tensor, start: int) -> Tensor:
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.embed(tokens) * math.sqrt(self.d_model)
        return self.dropout(x + sinusoids(positions, self.d_model).to(x.dtype))

    @staticmethod
    def _mask(memory_mask: Tensor | None) -> Tensor | None:
        return None if memory_mask is None else memory_mask[:, None, None, :]

    def forward(self, tokens: Tensor, memory: Tensor, memory_mask: Tensor | None = None) -> Tensor:
        """Teacher-forced pass: tokens (B, U) -> normed hidden states (B, U, D)."""
        x = self._embed(tokens, 0)
        mask = self._mask(memory_mask)
        for layer in self.decoders:
            x = layer(x, layer.memory(memory), mask, causal=True)
        return self.after_norm(x)

    def output(self, hidden: Tensor, stream: str) -> Tensor:
        _check_stream(stream)
        return getattr(self, f"out_layer_{stream}")(hidden)

    def init_state(
        self, memory: Tensor, memory_mask: Tensor | None = None, group: int = 1
    ) -> DecoderState:
        """Empty cache for ``memory.shape[0] * group`` hypotheses."""
        att = self.decoders[0].self_attn
        frames = None
        if memory_mask is not None and not memory_mask.all():
            frames = memory_mask.flatten().nonzero().squeeze(1)
        memory_kv = [layer.memory(memory, frames) for layer in self.decoders]
        # the cache holds what the projections give (under autocast: its lower precision)
        empty = memory_kv[0][0].new_zeros(memory.shape[0] * group, att.heads, 0, att.d_k)
        return DecoderState(
            self_kv=[(empty, empty) for _ in self.decoders],
            memory_kv=memory_kv,
            memory_mask=self._mask(memory_mask),
            group=group,
            position=0,
        )

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Append one token per row; returns the new position's hidden state (N, D)."""
        x = self._embed(tokens[:, None], state.position)
        new_kv = []
        for layer, (past_k, past_v), memory in zip(self.decoders, state.self_kv, state.memory_kv):
            att = layer.self_attn
            h = layer.norm1(x)
            k = _append(past_k, att.split(att.linear_k(h)), state.order)
            v = _append(past_v, att.split(att.linear_v(h)), state.order)
            new_kv.append((k, v))
            out = F.scaled_dot_product_attention(att.split(att.linear_q(h)), k, v)
            x = x + layer.dropout(att.merge(out))
            x = layer._cross_and_ff(x, memory, state.memory_mask)
        state = replace(state, self_kv=new_kv, position=state.position + 1, order=None)
        return self.after_norm(x[:, 0]), state


class UnifiedModel(nn.Module):
    """One model for ASR ("a"), VSR ("v") and AVSR ("av")."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.ctc_v = CTCHead(config.d_model, config.vocab_size, config.dropout)
        self.ctc_a = CTCHead(config.d_model, config.vocab_size, config.dropout)
        self.ctc_av = CTCHead(config.d_model, config.vocab_size, config.dropout)
        self.decoder = Decoder(config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(
        self,
        video: Tensor | None = None,
        audio: Tensor | None = None,
        lengths: Tensor | None = None,
        streams: tuple[str, ...] | list[str] = STREAMS,
        blocks: list[Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Encoder outputs (B, T, D) for each requested stream, computed in one batched pass.

        video: (B, T, H, W) normalised crops; audio: (B, 640*T) raw 16 kHz samples; lengths: (B,)
        valid frames (None = all valid). Padding never changes the valid frames' outputs.
        ``blocks`` collects every encoder block's output (streams stacked along the batch).
        """
        for stream in streams:
            _check_stream(stream)
        projected = self.encoder.project(video, audio, lengths, streams)
        x = torch.cat([projected[s] for s in streams], dim=0)
        key_mask = None
        if lengths is not None:
            key_mask = length_mask(lengths, x.shape[1]).repeat(len(streams), 1)
        out = self.encoder.transformer(x, key_mask, blocks).chunk(len(streams), dim=0)
        return dict(zip(streams, out))

    def ctc_logits(self, encoded: Tensor, stream: str) -> Tensor:
        _check_stream(stream)
        return getattr(self, f"ctc_{stream}")(encoded)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    decode = decode_function  # n-best hypotheses of videos and/or audios (transcribe.py)
    transcribe = transcribe_function  # best transcripts
