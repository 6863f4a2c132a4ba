"""A stand-in for an external trainer (proxy.command), called as Megatron-LM is: a blend of weights and
data prefixes. It trains a bigram LM (add-k smoothed counts) on --tokens tokens drawn from each prefix's
shard (<prefix>.bin, the run's token parts) by the blend's weights, and writes {"score": -loss on the
target, "loss": ...} to --score-file.

  python tests/stand_in_trainer.py --data-path 0.3 /run/tokens/sc00/00000-00000 0.7 /run/tokens/sc01/00000-00000 \
      --target target.jsonl --tokens 20000 --seed 0 --score-file score.json
"""

import argparse
import json
import os

import numpy as np
from tokenizers import Tokenizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-path", nargs="+", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--tokens", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score-file", required=True)
    args = ap.parse_args()
    weights, prefixes = [float(w) for w in args.data_path[::2]], args.data_path[1::2]
    folder = os.path.dirname(prefixes[0])  # the run's tokens/, above the parts' cluster folders
    if not os.path.exists(os.path.join(folder, "meta.json")):
        folder = os.path.dirname(folder)
    meta = json.load(open(os.path.join(folder, "meta.json")))
    vocab, dtype = int(meta["vocab_size"]), np.dtype(meta["dtype"])
    rng = np.random.default_rng(args.seed)
    counts = np.zeros((vocab, vocab))
    for w, prefix in zip(weights, prefixes):
        shard = np.fromfile(f"{prefix}.bin", dtype=dtype).astype(np.int64)
        n = min(len(shard), int(round(w / sum(weights) * args.tokens)))
        start = int(rng.integers(0, len(shard) - n + 1))
        window = shard[start:start + n]
        np.add.at(counts, (window[:-1], window[1:]), 1.0)
    probs = (counts + 0.1) / (counts + 0.1).sum(axis=1, keepdims=True)
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    texts = [json.loads(line)["text"] for line in open(args.target)][:100]
    nll = []
    for enc in tok.encode_batch(texts):
        ids = np.array(enc.ids)
        nll.extend(-np.log(probs[ids[:-1], ids[1:]]))
    loss = float(np.mean(nll))
    print(f"trained on {args.tokens} tokens of {len(prefixes)} prefixes; target loss {loss:.4f}")
    with open(args.score_file, "w") as out:
        json.dump({"score": -loss, "loss": loss}, out)


if __name__ == "__main__":
    main()
