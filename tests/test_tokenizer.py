"""Token ids follow the official convention; official unit lists decode the fixture's texts."""

import pytest
import torch

from unisr.errors import UnisrError
from unisr.tokenizer import Tokenizer, load_tokenizer, normalize_text


def test_official_units_id_convention(official_dir):
    tok = Tokenizer.from_units(official_dir / "unigram1000_units.txt")
    assert tok.vocab_size == 1049 and tok.sos == tok.eos == 1048 and tok.blank == 0
    assert tok.pieces[0] == "<unk>" and tok.pieces[249] == "\u2581"  # id 250 is the bare marker
    assert not tok.can_encode
    with pytest.raises(UnisrError, match="can decode but not encode"):
        tok.encode("HELLO")


def test_official_texts_decode_exactly(official_dir):
    tok = Tokenizer.from_units(official_dir / "unigram1000_units.txt")
    beams = torch.load(official_dir / "beam_search.pt")
    for key in ("ctc0.1", "ctc0.0"):
        for stream in ("v", "a", "av"):
            yseq = beams[key][stream][0]["yseq"].tolist()
            assert tok.decode(yseq[1:]) == beams["texts"][key][stream]


def test_normalize_text():
    assert normalize_text("Hello, world -- it's 2 o'clock.") == "HELLO WORLD IT'S 2 O'CLOCK"
    assert normalize_text("  ") == ""


def test_trained_sentencepiece_round_trip(tmp_path):
    texts = ["bin blue at f two now", "place red by g nine soon", "set white with p four please"]
    tok = Tokenizer.train(texts * 20, vocab_size=30, out_path=tmp_path / "tok.model")
    ids = tok.encode("Bin blue, at F two now!")
    assert all(1 <= i < tok.eos for i in ids)
    assert tok.decode([tok.sos, *ids, tok.eos, 0]) == "BIN BLUE AT F TWO NOW"
    loaded = Tokenizer.from_sentencepiece(tmp_path / "tok.model")
    assert loaded.encode("place red") == tok.encode("place red")
    assert Tokenizer.from_dict(tok.to_dict()).encode("set white") == tok.encode("set white")
    assert tok.pieces[0] == "<unk>"  # unisr id 1, as in the official list


def test_one_rule_opens_every_tokenizer_file(official_dir, tmp_path):
    """A unit list ends in .txt; anything else is a SentencePiece model, whatever its suffix."""
    assert load_tokenizer(official_dir / "unigram1000_units.txt").vocab_size == 1049
    texts = ["bin blue at f two now", "place red by g nine soon"] * 20
    trained = Tokenizer.train(texts, vocab_size=20, out_path=tmp_path / "tok.spm")
    assert load_tokenizer(tmp_path / "tok.spm").pieces == trained.pieces
    with pytest.raises(UnisrError, match="no tokenizer given"):
        load_tokenizer("")


def test_bad_unit_list_names_the_line(tmp_path):
    bad = tmp_path / "units.txt"
    bad.write_text("<unk> 1\nA 3\n")
    with pytest.raises(UnisrError, match="units.txt:2"):
        Tokenizer.from_units(bad)


def test_impossible_vocabulary_size_is_a_clear_error():
    with pytest.raises(UnisrError, match="cannot train a 3-piece tokenizer"):
        Tokenizer.train(["HELLO WORLD", "GOOD MORNING"], vocab_size=3)
