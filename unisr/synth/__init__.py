"""The synthetic audio-visual corpus: eSpeak NG speech (:mod:`.speech`), a rendered talking mouth
on the same timeline (:mod:`.mouth`), and the corpus plan, renderer and writer (:mod:`.corpus`)."""

from .corpus import build_corpus, synth_cli

__all__ = ["build_corpus", "synth_cli"]
