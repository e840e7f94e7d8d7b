"""Training throughput of the text encoder: length-grouped dynamic padding vs naive padding.

Real optimisation steps (forward, backward, AdamW) of the default BERT (MiniLM-L6) on MELD
prompts, timed per batching strategy on the same training rows:

- ``pad-512``: every input padded to ``max_length`` 512 (tokenizer ``padding="max_length"``);
- ``pad-longest-in-data``: padded to the longest prompt of the training split (a tight static pad);
- ``dynamic-random``: ``DataCollatorWithPadding`` on randomly drawn batches (Trainer's default);
- ``dynamic-grouped``: the same collator on ``LengthGroupedSampler`` batches (finetune.py's default).

Effective tokens/s counts non-padding tokens only. Usage::

    OMP_NUM_THREADS=2 python bench/bench_text_speed.py --dataset data/meld --batches 6 --out bench/text_speed.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np
    import torch
    from datasets import load_from_disk
    from torch.utils.data import RandomSampler
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from llm.models import resolve_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="build-dataset folder (MELD prompts)")
    ap.add_argument("--model", default="minilm-l6-bert")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=6, help="timed optimisation steps per strategy (after 1 warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    path, _ = resolve_model(args.model)
    tok = AutoTokenizer.from_pretrained(path)
    train = load_from_disk(args.dataset)["train"]
    classes = int(max(train["label_id"])) + 1
    enc = tok(list(train["text"]), truncation=True, max_length=512)
    lengths = [len(x) for x in enc["input_ids"]]
    longest = max(lengths)
    labels = list(train["label_id"])
    rows = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
             "token_type_ids": enc["token_type_ids"][i], "labels": labels[i]} for i in range(len(train))]
    dynamic = DataCollatorWithPadding(tok)

    def static(pad_to):
        def collate(batch):
            return tok.pad(batch, padding="max_length", max_length=pad_to, return_tensors="pt")
        return collate

    g = torch.Generator().manual_seed(0)
    random_order = list(RandomSampler(range(len(rows)), generator=g))
    grouped_order = list(LengthGroupedSampler(args.batch_size, lengths=lengths, generator=torch.Generator().manual_seed(0)))

    def batches(order):
        bs = args.batch_size
        return [[rows[i] for i in order[k : k + bs]] for k in range(0, (args.batches + 1) * bs, bs)]

    strategies = {
        "pad-512": (static(512), batches(random_order)),
        "pad-longest-in-data": (static(longest), batches(random_order)),
        "dynamic-random": (dynamic, batches(random_order)),
        "dynamic-grouped": (dynamic, batches(grouped_order)),
    }
    results = {}
    for name, (collate, bl) in strategies.items():
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=classes)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
        real = padded = 0
        seconds = 0.0
        for k, b in enumerate(bl):
            batch = collate(b)
            t0 = time.perf_counter()
            out = model(**batch)
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            dt = time.perf_counter() - t0
            if k == 0:
                continue  # warm-up step
            seconds += dt
            real += int(batch["attention_mask"].sum())
            padded += int(batch["attention_mask"].numel())
        results[name] = {
            "effective_tokens_per_s": round(real / seconds, 1),
            "padded_tokens_per_s": round(padded / seconds, 1),
            "padding_fraction": round(1 - real / padded, 4),
            "seconds_per_step": round(seconds / args.batches, 3),
            "steps": args.batches,
        }
        print(name, json.dumps(results[name]), flush=True)
    base = results["pad-512"]["effective_tokens_per_s"]
    for name in results:
        results[name]["speedup_vs_pad_512"] = round(results[name]["effective_tokens_per_s"] / base, 2)
    total_tokens = int(np.sum(lengths))
    grouped = results["dynamic-grouped"]["effective_tokens_per_s"]
    summary = {
        "dataset": args.dataset, "model": args.model, "batch_size": args.batch_size, "threads": args.threads,
        "train_rows": len(rows), "train_tokens": total_tokens, "median_tokens": float(np.median(lengths)),
        "longest_tokens": longest, "strategies": results,
        "estimated_epoch_seconds_dynamic_grouped": round(total_tokens / grouped, 1),
        "estimated_epoch_seconds_pad_512": round(total_tokens / base, 1),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        from textualize.manifest import atomic_write_json

        atomic_write_json(args.out, summary)


if __name__ == "__main__":
    main()
