"""Train the subword drafter's byte-level BPE tokenizer on the TRAIN split only.

    python3 train/train_tokenizer.py --corpus ../shared/corpus --vocab 4096 --out checkpoints/subword-drafter/tokenizer.json

Byte-level BPE (GPT-2 style): ByteLevel pre-tokenizer (add_prefix_space=False, GPT-2 split regex),
ByteLevel decoder, the full 256-symbol byte alphabet in the initial vocabulary, so any UTF-8 text
(and, at the byte level, any byte string) round-trips. No normalizer, no special tokens.
"""
import argparse, glob, os, sys
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers


def build(files, vocab):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train(files, trainer)
    return tok


def check_roundtrip(tok, texts):
    for t in texts:
        ids = tok.encode(t).ids
        back = tok.decode(ids)
        assert back == t, "round-trip failed"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="../shared/corpus")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.corpus, "train", "*.txt")))
    assert files, "no train files"
    tok = build(files, a.vocab)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tok.save(a.out)
    check_roundtrip(tok, ["Hello, world!  café — naïve ☃ 漢字\n\tend", " leading space", "\x00\x01\x7f"])
    print("vocab", tok.get_vocab_size(), "->", a.out, file=sys.stderr)
