"""Decoding: the official n-best lists on the parity fixture, and batched == one at a time."""

import pytest
import torch
import torch.nn.functional as F

from unisr.config import model_config
from unisr.ctc_prefix import CTCPrefixScorer
from unisr.decoding import DecodingOptions, ctc_greedy, decode_encoded, frame_groups
from unisr.errors import UnisrError
from unisr.model import UnifiedModel

STREAMS = ("v", "a", "av")
WEIGHTS = {"ctc0.1": 0.1, "ctc0.0": 0.0}
EOS = 1048


@pytest.fixture(scope="module")
def official(official_dir, official_model, official_inputs):
    """The fixture's n-best lists and encoder outputs, our encoder outputs of the same input, and
    of the padded batch (lengths 12 and 9) and its second item's 9 valid frames alone."""
    data = {
        name: torch.load(official_dir / f"{name}.pt") for name in ("beam_search", "encoder_outputs")
    }
    inputs = official_inputs
    video, audio = inputs["video_b2"], inputs["audio_b2"]
    with torch.no_grad():
        data["ours"] = official_model.encode(inputs["video"], inputs["audio"])
        data["batch"] = official_model.encode(video, audio, inputs["lengths_b2"])
        data["alone"] = official_model.encode(video[1:, :9], audio[1:, : 9 * 640])
    return data


def official_options(key: str) -> DecodingOptions:
    """The fixture's settings: beam 4, penalty 0, maxlenratio 1, every ended hypothesis."""
    return DecodingOptions(beam_size=4, ctc_weight=WEIGHTS[key], nbest=None)


def yseq(hyp, maxlen: int) -> list[int]:
    """The official token sequence: sos, tokens, eos, and a second eos for a hypothesis that
    chose eos at the length limit."""
    double = hyp.ended and len(hyp.tokens) == maxlen - 1
    return [EOS, *hyp.tokens, EOS] + [EOS] * double


def assert_official(nbest, expected, maxlen: int = 12):
    assert [yseq(h, maxlen) for h in nbest] == [e["yseq"].tolist() for e in expected]
    for hyp, ref in zip(nbest, expected):
        assert hyp.score == pytest.approx(float(ref["score"]), abs=1e-3)
        assert hyp.scores.keys() == ref["scores"].keys()
        for name, value in ref["scores"].items():
            assert hyp.scores[name] == pytest.approx(float(value), abs=1e-3)


@pytest.mark.parametrize("source", ["fixture_encoder", "our_encoder"])
@pytest.mark.parametrize("key", list(WEIGHTS))
@pytest.mark.parametrize("stream", STREAMS)
def test_official_nbest_lists(official_model, official, source, key, stream):
    encoded = official["encoder_outputs" if source == "fixture_encoder" else "ours"][stream]
    [nbest] = decode_encoded(official_model, encoded, None, stream, official_options(key))
    assert_official(nbest, official["beam_search"][key][stream])
    assert nbest[0].text == official["beam_search"]["texts"][key][stream]


@pytest.mark.parametrize("key", list(WEIGHTS))
def test_padded_batch_matches_unbatched(official_model, official_inputs, official, key):
    """Item 0 of the padded batch gives the official unbatched n-best; item 1 (9 valid frames of
    12) gives what its valid frames alone give."""
    lengths, options = official_inputs["lengths_b2"], official_options(key)
    for stream in STREAMS:
        batch = official["batch"][stream]
        first, second = decode_encoded(official_model, batch, lengths, stream, options)
        assert_official(first, official["beam_search"][key][stream])
        [expected] = decode_encoded(
            official_model, official["alone"][stream], None, stream, options
        )
        assert [h.tokens for h in second] == [h.tokens for h in expected]
        assert [h.ended for h in second] == [h.ended for h in expected]
        for got, want in zip(second, expected):
            assert got.score == pytest.approx(want.score, abs=1e-4)


@pytest.fixture(scope="module")
def tiny():
    """A random small model whose hypotheses end at several lengths (eos and blank biased, the
    decoder made to look at its memory), and a padded batch with garbage in the padding."""
    torch.manual_seed(0)
    cfg = model_config("tiny", vocab_size=40, d_model=32, heads=2, ff_units=64, enc_layers=2,
                       audio_frontend="resnet")  # fmt: skip
    model = UnifiedModel(cfg).eval()
    with torch.no_grad():
        for layer in model.decoder.decoders:
            layer.src_attn.linear_q.weight.mul_(6.0)
        for stream in STREAMS:
            getattr(model.decoder, f"out_layer_{stream}").bias[cfg.eos] += 0.3
            getattr(model, f"ctc_{stream}").ctc_lo.bias[0] += 2.0
    lengths = torch.tensor([17, 9, 30, 4, 23])
    encoded = torch.randn(5, 30, 32)
    padding = torch.arange(30)[None, :] >= lengths[:, None]
    encoded[padding] = 7.0
    return model, encoded, lengths


TINY_OPTIONS = [
    DecodingOptions(method="ctc"),
    DecodingOptions(method="greedy"),
    DecodingOptions(method="greedy", maxlenratio=0.3, minlenratio=0.1),
    DecodingOptions(beam_size=4, nbest=None),
    DecodingOptions(beam_size=3, ctc_weight=0.0, nbest=None),
    DecodingOptions(beam_size=5, ctc_weight=1.0, nbest=None),
    DecodingOptions(beam_size=6, ctc_weight=0.3, maxlenratio=0.0, nbest=None),
    DecodingOptions(beam_size=4, ctc_weight=0.5, penalty=0.5, minlenratio=0.2, nbest=None),
    DecodingOptions(beam_size=1, ctc_weight=0.2, nbest=None),
    DecodingOptions(beam_size=8, maxlenratio=-3, nbest=None),
    DecodingOptions(beam_size=4, nbest=None, decode_frames=40),  # in groups of <= 40 frames
]


def test_frame_groups_fit_the_budget_longest_first():
    assert frame_groups([30, 23, 17, 9, 4], 40) == [[0], [1], [2, 3], [4]]
    assert frame_groups([5, 50, 5], 20) == [[1], [0, 2]]  # too long for the budget: alone


@pytest.mark.parametrize("options", TINY_OPTIONS, ids=lambda o: f"{o.method}-{o.beam_size}")
def test_batched_equals_one_at_a_time(tiny, options):
    model, encoded, lengths = tiny
    batched = decode_encoded(model, encoded, lengths, "av", options)
    for nbest, item, n in zip(batched, encoded, lengths.tolist()):
        [single] = decode_encoded(model, item[None, :n], None, "av", options)
        assert [h.tokens for h in nbest] == [h.tokens for h in single]
        assert [h.ended for h in nbest] == [h.ended for h in single]
        for got, want in zip(nbest, single):
            assert got.score == pytest.approx(want.score, abs=1e-4)
            assert got.scores == pytest.approx(want.scores, abs=1e-4)


def test_tiny_model_hypotheses_are_not_degenerate(tiny):
    """The batched == single test means something only if lengths vary."""
    model, encoded, lengths = tiny
    for options in (DecodingOptions(method="greedy"), DecodingOptions(beam_size=4)):
        best = [n[0] for n in decode_encoded(model, encoded, lengths, "av", options)]
        assert len({len(h.tokens) for h in best}) >= 3
        assert any(h.ended for h in best) and not all(h.ended for h in best)


def test_greedy_is_beam_one_pure_attention(tiny):
    model, encoded, lengths = tiny
    greedy = decode_encoded(model, encoded, lengths, "v", DecodingOptions(method="greedy"))
    beam = decode_encoded(model, encoded, lengths, "v", DecodingOptions(beam_size=1, ctc_weight=0))
    for g, b in zip(greedy, beam):
        assert (g[0].tokens, g[0].ended) == (b[0].tokens, b[0].ended)
        assert g[0].score == pytest.approx(b[0].score, abs=1e-5)


def test_ctc_totals_are_ctc_log_likelihoods(tiny):
    """For a hypothesis that chose eos, the CTC total telescopes to log P_ctc(tokens)."""
    model, encoded, lengths = tiny
    options = DecodingOptions(beam_size=4, ctc_weight=0.3, nbest=None)
    results = decode_encoded(model, encoded, lengths, "a", options)
    logp = model.ctc_logits(encoded, "a").log_softmax(-1).detach()
    checked = 0
    for b, nbest in enumerate(results):
        for hyp in nbest:
            if not hyp.ended or not hyp.tokens:
                continue
            nll = F.ctc_loss(
                logp[b : b + 1, : lengths[b]].transpose(0, 1),
                torch.tensor([hyp.tokens]),
                lengths[b : b + 1],
                torch.tensor([len(hyp.tokens)]),
                reduction="sum",
            )
            assert hyp.scores["ctc"] == pytest.approx(-nll.item(), abs=1e-3)
            checked += 1
    assert checked >= 5


def test_ctc_greedy_collapses_within_lengths():
    frames = torch.tensor([[0, 3, 3, 0, 3, 5, 5, 0, 7], [2, 2, 0, 2, 4, 4, 4, 4, 4]])
    logp = F.one_hot(frames, 8).float().mul(5).log_softmax(-1)
    tokens, counts, scores = ctc_greedy(logp, torch.tensor([8, 4]))
    assert counts.tolist() == [3, 2]
    assert tokens.tolist() == [[3, 3, 5], [2, 2, -1]]
    assert scores[0] == pytest.approx(8 * logp[0, 0, 0].item(), rel=1e-6)


def test_nbest_and_minimum_length(tiny):
    model, encoded, lengths = tiny
    every = decode_encoded(model, encoded, lengths, "av", DecodingOptions(beam_size=4, nbest=None))
    two = decode_encoded(model, encoded, lengths, "av", DecodingOptions(beam_size=4, nbest=2))
    for all_hyps, best_two in zip(every, two):
        assert [h.tokens for h in best_two] == [h.tokens for h in all_hyps[:2]]
        assert [h.score for h in all_hyps] == sorted((h.score for h in all_hyps), reverse=True)
    options = DecodingOptions(beam_size=4, minlenratio=0.3, nbest=None)
    for nbest, n in zip(decode_encoded(model, encoded, lengths, "av", options), lengths.tolist()):
        assert all(len(h.tokens) >= int(0.3 * n) for h in nbest)


@pytest.mark.parametrize(
    "bad", [{"method": "viterbi"}, {"beam_size": 0}, {"ctc_weight": 1.5}, {"nbest": 0}]
)
def test_bad_options_are_user_errors(bad):
    with pytest.raises(UnisrError):
        DecodingOptions(**bad)


def naive_state(x, prefix):
    """Forward log-probabilities (r_n, r_b) of a prefix, frame by frame (float64, T x V)."""
    frames = len(x)
    r_n, r_b = torch.full((frames,), -torch.inf, dtype=x.dtype), x[:, 0].cumsum(0)
    for i, token in enumerate(prefix):
        phi = r_b if i and token == prefix[i - 1] else torch.logaddexp(r_n, r_b)
        n, b = torch.full_like(r_n, -torch.inf), torch.full_like(r_b, -torch.inf)
        n[0] = x[0, token] if i == 0 else -torch.inf
        for t in range(1, frames):
            n[t] = torch.logaddexp(n[t - 1], phi[t - 1]) + x[t, token]
            b[t] = torch.logaddexp(n[t - 1], b[t - 1]) + x[t, 0]
        r_n, r_b = n, b
    return r_n, r_b


def naive_psi(x, prefix, token):
    r_n, r_b = naive_state(x, prefix)
    phi = r_b if prefix and token == prefix[-1] else torch.logaddexp(r_n, r_b)
    terms = [phi[t - 1] + x[t, token] for t in range(1, len(x))]
    return torch.logsumexp(torch.stack(terms + ([x[0, token]] if not prefix else [])), 0)


def test_ctc_prefix_scores_match_the_definition():
    """Scores of every token after prefixes built by ``extend``, against the frame-by-frame
    definition; includes a token so unlikely after frame 0 that the matrix product underflows,
    and prefixes longer than the short utterance's valid frames."""
    torch.manual_seed(1)
    lengths, vocab, hyps = torch.tensor([9, 4]), 7, 3
    logits = torch.randn(2, 9, vocab) * 3
    logits[:, 1:, 5] = -2000.0
    logp = logits.log_softmax(-1)
    scorer = CTCPrefixScorer(logp, lengths)
    state = scorer.initial_state(hyps)
    prefixes = [[[3, 3, 2, 6, 4], [2, 4, 4, 1, 6], [6, 1, 3, 3, 2]], [[1, 2, 3, 6, 1]] * 3]
    candidates = torch.arange(vocab).expand(2, hyps, vocab)
    for length in range(5):
        psi, psi_eos = scorer.score(state, candidates, length)
        for b, n in enumerate(lengths.tolist()):
            x = logp[b, :n].double()
            for k in range(hyps):
                prefix = prefixes[b][k][:length]
                want = [naive_psi(x, prefix, c) for c in range(1, vocab)]
                got = psi[b, k, 1:].double()
                finite = torch.stack(want).isfinite()
                torch.testing.assert_close(
                    got[finite], torch.stack(want)[finite], atol=1e-3, rtol=1e-5
                )
                assert (got[~finite] < -1e9).all()
                r_n, r_b = naive_state(x, prefix)
                want_eos = torch.logaddexp(r_n[-1], r_b[-1])
                assert psi_eos[b, k].item() == pytest.approx(max(want_eos.item(), -1e10), abs=1e-3)
        token = torch.tensor([[p[length] for p in rows] for rows in prefixes])
        chosen = psi.gather(2, token[..., None])[..., 0]
        state = scorer.extend(state, torch.arange(hyps).expand(2, hyps), token, chosen, length)


def test_ctc_prefix_scores_of_candidates_and_selected_utterances():
    """Scoring a few candidates per hypothesis, or a selection of the utterances, gives the
    scores of those tokens among all tokens of all utterances (one of them underflows)."""
    torch.manual_seed(2)
    lengths, vocab, hyps = torch.tensor([12, 7, 10]), 50, 4
    logits = torch.randn(3, 12, vocab) * 3
    logits[:, 1:, 7] = -2000.0  # underflows in the matrix product
    scorer = CTCPrefixScorer(logits.log_softmax(-1), lengths)
    state = scorer.initial_state(hyps)
    everything = torch.arange(vocab).expand(3, hyps, vocab)
    for length in range(4):
        full, eos = scorer.score(state, everything, length)
        candidates = torch.rand(3, hyps, vocab).argsort(-1)[..., :6]
        candidates[:, 1:, 1] = 7
        psi, psi_eos = scorer.score(state, candidates, length)
        torch.testing.assert_close(psi, full.gather(2, candidates), rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(psi_eos, eos)
        keep = torch.tensor([2, 0])
        kept, kept_eos = scorer.select(keep).score(state.select(keep), candidates[keep], length)
        torch.testing.assert_close(kept, psi[keep], rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(kept_eos, eos[keep])
        token = candidates[..., 0]
        chosen = psi[..., 0]
        state = scorer.extend(state, torch.arange(hyps).expand(3, hyps), token, chosen, length)
