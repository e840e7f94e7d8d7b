"""BERT-family encoders with a sequence-classification head: full fine-tuning or LoRA (peft).

The input is the dataset's rendered prompt (``--text_field``, default ``text``). Batches are
padded per batch (``DataCollatorWithPadding``) and, with ``train_sampling_strategy
group_by_length`` (finetune.py's default), drawn from length-grouped buckets, so little compute
goes to padding. Evaluation and prediction run length-sorted and are put back in row order.

``--future_turns N`` (dialogue corpora): the next N utterances of the same dialogue become the
second segment of a sentence pair, so the encoder sees past turns (in the prompt), the target
and the future turns, as EmoBERTa does; truncation cuts that second segment first.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from llm.parts import RunParts, parameter_counts

DIALOGUE_ID = re.compile(r"^(?P<dialogue>.*dia\d+)_utt(?P<utt>\d+)$")
AUTO_FUTURE_TURNS = 2
KEEP_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")


class EncoderInputError(ValueError):
    """The dataset or the options do not fit an encoder run (says what to change)."""


def future_context(dataset, n_turns: int) -> list[str]:
    """For each row, the next ``n_turns`` utterances of its dialogue ("Speaker: words", space-joined).

    Dialogues and order come from the row ids (``…dia{D}_utt{U}``, as the MELD adapter writes
    them) and the words from the ``transcript``/``speaker`` columns of the same split.
    """
    for col in ("id", "transcript", "speaker"):
        if col not in dataset.column_names:
            raise EncoderInputError(f"--future_turns needs a '{col}' column (a dialogue corpus built by build-dataset)")
    ids = dataset["id"]
    parsed = [DIALOGUE_ID.match(str(i)) for i in ids]
    if not any(parsed):
        raise EncoderInputError(
            "--future_turns needs dialogue ids of the form '...dia{D}_utt{U}' (MELD); this dataset has e.g. "
            f"{ids[0]!r}. Use --future_turns 0."
        )
    words = [f"{s}: {t}" if s else str(t) for s, t in zip(dataset["speaker"], dataset["transcript"])]
    by_dialogue: dict[str, list[tuple[int, int]]] = {}
    for row, m in enumerate(parsed):
        if m:
            by_dialogue.setdefault(m["dialogue"], []).append((int(m["utt"]), row))
    nxt: dict[int, list[int]] = {}
    for turns in by_dialogue.values():
        turns.sort()
        rows = [r for _, r in turns]
        for k, r in enumerate(rows):
            nxt[r] = rows[k + 1 : k + 1 + n_turns]
    return [" ".join(words[r] for r in nxt.get(row, [])) for row in range(len(ids))]


def dialogue_ids_share(dataset) -> float:
    """Share of rows whose id names a dialogue turn (``…dia{D}_utt{U}``) and that carry the
    ``transcript``/``speaker`` columns future turns are read from (0.0 when a column is missing)."""
    if any(c not in dataset.column_names for c in ("id", "transcript", "speaker")) or len(dataset) == 0:
        return 0.0
    ids = dataset["id"]
    return sum(bool(DIALOGUE_ID.match(str(i))) for i in ids) / len(ids)


def resolve_future_turns(requested, dd, family: str) -> int:
    """``--future_turns auto``: AUTO_FUTURE_TURNS for encoders on a dialogue corpus (most train
    rows are ``…dia{D}_utt{U}`` turns with transcripts), else 0: the turns after an utterance
    (EmoBERTa's past + future input) are what the MELD runs in bench/RESULTS.md were measured with.
    A number is kept as given."""
    if requested is None or str(requested).strip().lower() == "auto":
        if family != "encoder":
            return 0
        split = dd["train"] if "train" in dd else next(iter(dd.values()))
        return AUTO_FUTURE_TURNS if dialogue_ids_share(split) >= 0.9 else 0
    try:
        n = int(requested)
    except (TypeError, ValueError):
        raise EncoderInputError(f"--future_turns must be 'auto' or a number of turns >= 0, got {requested!r}") from None
    if n < 0:
        raise EncoderInputError(f"--future_turns must be >= 0, got {n}")
    return n


def tokenize_split(dataset, tokenizer, script_args, with_labels: bool = True):
    """input_ids/attention_mask(/token_type_ids), labels and length; other columns dropped."""
    field = script_args.text_field
    if field not in dataset.column_names:
        raise EncoderInputError(f"dataset has no '{field}' column (has: {', '.join(dataset.column_names)}); set --text_field")
    second = int(script_args.future_turns) > 0
    if second and "_future" not in dataset.column_names:  # callers with lone clips pass their own ("")
        dataset = dataset.add_column("_future", future_context(dataset, int(script_args.future_turns)))

    def encode(batch):
        texts = [str(t) for t in batch[field]]
        if second:
            pairs = [f or "(end of the conversation)" for f in batch["_future"]]
            enc = tokenizer(texts, pairs, truncation="longest_first", max_length=script_args.max_length)
        else:
            enc = tokenizer(texts, truncation=True, max_length=script_args.max_length)
        if with_labels:
            enc["labels"] = [int(x) for x in batch["label_id"]]
        enc["length"] = [len(x) for x in enc["input_ids"]]
        return enc

    remove = [c for c in dataset.column_names if c not in KEEP_COLUMNS]
    return dataset.map(encode, batched=True, remove_columns=remove, desc="tokenize")


def layerwise_param_groups(
    model, lr: float, decay: float, weight_decay: float, head_lr: float | None = None
) -> list[dict[str, Any]]:
    """Per-depth learning rates: layer l gets lr·decay^(L-l); embeddings and weights the layers share
    (MPNet's relative attention bias) get lr·decay^(L+1); the head (pooler, classifier) gets
    ``head_lr`` (default lr). A fresh head on a pretrained body wants a far larger step than the
    body: that is what keeps a 12-layer body from being dragged to a constant while the head
    catches up. Biases/LayerNorm: no weight decay."""
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    layer_re = re.compile(r"\.layers?\.(\d+)\.")
    body_prefix = getattr(model, "base_model_prefix", "")
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        m = layer_re.search(name)
        in_body = name.split(".", 1)[0] == body_prefix and "pooler" not in name
        if m and in_body:
            g_lr = lr * decay ** (n_layers - int(m.group(1)))
        elif in_body:
            g_lr = lr * decay ** (n_layers + 1)
        else:
            g_lr = lr if head_lr is None else head_lr
        wd = 0.0 if (p.ndim == 1 or "LayerNorm" in name or "layer_norm" in name) else weight_decay
        groups.setdefault((g_lr, wd), []).append(p)
    return [{"params": ps, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), ps in sorted(groups.items(), key=lambda kv: kv[0])]


def declared_pooling(model_path) -> str | None:
    """'mean' or 'cls' when the model folder is a sentence-transformers checkpoint that says how it
    was trained to pool (``modules.json`` → ``1_Pooling/config.json``); None otherwise."""
    folder = Path(str(model_path))
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return None
    try:
        modes = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    if modes.get("pooling_mode_mean_tokens"):
        return "mean"
    if modes.get("pooling_mode_cls_token"):
        return "cls"
    return None


def resolve_pooling(requested: str, model_path) -> str:
    if requested not in ("cls", "mean", "auto"):
        raise EncoderInputError(f"--pooling must be cls, mean or auto, got {requested!r}")
    if requested != "auto":
        return requested
    return declared_pooling(model_path) or "cls"


def mean_pooling_classifier(encoder, num_labels: int, dropout: float):
    """A classifier on the masked mean of ``encoder``'s last hidden states.

    Sentence-transformers checkpoints (the offline MiniLM, MPNet) were trained to represent a text by
    that mean; their CLS token and BERT pooler were not trained for it, so the stock
    sequence-classification head starts from an untrained summary."""
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MeanPoolingClassifier(torch.nn.Module):
        base_model_prefix = "encoder"  # as transformers' models name their body (layerwise_param_groups)

        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.config = encoder.config
            self.dropout = torch.nn.Dropout(dropout)
            self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **_):
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None and getattr(self.config, "type_vocab_size", 0) > 1:
                inputs["token_type_ids"] = token_type_ids
            hidden = self.encoder(**inputs).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            logits = self.classifier(self.dropout(pooled))
            loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
            return SequenceClassifierOutput(loss=loss, logits=logits)

    return MeanPoolingClassifier()


def prepare_encoder(script_args, model_args, training_args, dataset_dict, classes: Sequence[str]) -> RunParts:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from llm.models import resolve_model

    if script_args.method in ("qlora", "zero-shot"):
        raise EncoderInputError(
            f"--method {script_args.method} is for decoder (LLaMA-family) models; encoders take --method full or lora"
        )
    if script_args.head != "classification":
        raise EncoderInputError("encoders have a classification head only; --head generative needs a decoder model")
    path, _ = resolve_model(script_args.model)
    pooling = resolve_pooling(getattr(script_args, "pooling", "cls"), path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=model_args.trust_remote_code)
        if pooling == "mean":
            from transformers import AutoModel

            body = AutoModel.from_pretrained(path, trust_remote_code=model_args.trust_remote_code)
            if getattr(body, "pooler", None) is not None:
                body.pooler = None  # unused by mean pooling: no dead parameters (DDP) and no wasted matmul
            body.config.id2label = dict(enumerate(classes))
            body.config.label2id = {c: i for i, c in enumerate(classes)}
            model = mean_pooling_classifier(body, len(classes), float(getattr(body.config, "hidden_dropout_prob", 0.1) or 0.1))
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=len(classes),
                id2label=dict(enumerate(classes)),
                label2id={c: i for i, c in enumerate(classes)},
                trust_remote_code=model_args.trust_remote_code,
                ignore_mismatched_sizes=True,
            )
    except OSError as e:  # hub id not in the local cache, unreadable folder
        raise EncoderInputError(f"cannot load --model {script_args.model!r} from {path}: {str(e).splitlines()[0]}") from None
    if model_args.torch_dtype not in ("auto", "float32"):
        model = model.to(getattr(torch, model_args.torch_dtype))

    if script_args.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        targets = model_args.lora_target_modules
        targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
        model = get_peft_model(
            model,
            LoraConfig(
                task_type=TaskType.SEQ_CLS,  # keeps the classifier trainable and saved (modules_to_save)
                r=model_args.lora_r,
                lora_alpha=model_args.lora_alpha,
                lora_dropout=model_args.lora_dropout,
                target_modules=targets,
                use_rslora=model_args.use_rslora,
            ),
        )

    datasets: dict[str, Any] = {}
    orders: dict[str, np.ndarray] = {}
    for split, ds in dataset_dict.items():
        tok = tokenize_split(ds, tokenizer, script_args)
        if split != "train":  # evaluation in length order: far less padding; predict() restores row order
            orders[split] = np.argsort(np.asarray(tok["length"]), kind="stable")
            tok = tok.select(orders[split])
        datasets[split] = tok

    def predict(trainer, split: str) -> np.ndarray:
        """Class probabilities in the dataset's row order."""
        from scipy.special import softmax

        out = trainer.predict(datasets[split], metric_key_prefix=split)
        logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
        probs = softmax(np.asarray(logits, dtype=np.float64), axis=1)
        if split in orders:
            unsorted = np.empty_like(probs)
            unsorted[orders[split]] = probs
            probs = unsorted
        return probs

    trainer_kwargs: dict[str, Any] = {}
    head_lr = getattr(script_args, "head_learning_rate", None)
    if script_args.layerwise_lr_decay != 1.0 or head_lr is not None:
        if script_args.method != "full":
            raise EncoderInputError("--layerwise_lr_decay and --head_learning_rate apply to full fine-tuning (--method full)")
        groups = layerwise_param_groups(
            model, training_args.learning_rate, script_args.layerwise_lr_decay, training_args.weight_decay, head_lr
        )
        # Trainer builds its usual optimizer class from these groups (and its scheduler on top)
        from transformers import Trainer

        optim_cls, optim_kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args, model)
        trainer_kwargs["optimizer_cls_and_kwargs"] = (optim_cls, {**optim_kwargs, "params": groups})

    describe = {"family": "encoder", "model_path": str(path), "pooling": pooling,
                "architecture": type(getattr(model, "base_model", model)).__name__,
                **parameter_counts(model)}
    return RunParts(
        model=model,
        tokenizer=tokenizer,
        datasets=datasets,
        collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=None,
        predict=predict,
        trainable=True,
        describe=describe,
        trainer_kwargs=trainer_kwargs,
    )
