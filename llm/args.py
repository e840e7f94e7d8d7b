"""Arguments of ``llm/finetune.py``, as dataclasses (help text included) for ``HfArgumentParser``.

``textualize.training.parse_args((ScriptArguments, ModelArguments, TrainingArguments))`` reads
them from ``--config run.yaml`` and the command line (which wins). The fields below are shared by
the encoder (``llm/encoder.py``) and decoder (``llm/decoder.py``) paths (see ``llm/parts.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

METHODS = ("full", "lora", "qlora", "zero-shot")
HEADS = ("classification", "generative")
AGGREGATES = ("vote", "mean_probs", "mean_logits")


@dataclass
class ScriptArguments:
    """What to train on, which model family, how to select and what to predict."""

    dataset: str = field(metadata={"help": "Folder written by `textualize build-dataset` (datasets.load_from_disk)."})
    model: str = field(
        default="minilm-l6-bert",
        metadata={"help": "A name from `textualize models` (minilm-l6-bert, mpnet-base, smollm2-135m-instruct-gguf), "
                          "a hub id (org/name, weights in the local HF cache) or a local folder."},
    )
    method: str = field(default="full", metadata={"help": "full | lora | qlora | zero-shot.", "choices": list(METHODS)})
    head: str = field(
        default="classification",
        metadata={"help": "classification (sequence-classification head) | generative (decoders: the label as "
                          "the chat answer, predicted by scoring every label string).", "choices": list(HEADS)},
    )
    text_field: str = field(
        default="text", metadata={"help": "Dataset column fed to classification heads (generative/zero-shot use 'messages')."}
    )
    max_length: int = field(
        default=512, metadata={"help": "Truncate inputs to this many tokens (padding is dynamic, per batch)."}
    )
    class_weighting: str = field(
        default="auto",
        metadata={"help": "balanced (class-weighted cross-entropy) | sampler (class-balanced sampling) | none | auto "
                          "(default: none when selecting on weighted_f1 or accuracy, which weight classes by their "
                          "frequency; balanced for macro_f1 or uar, which weight every class alike).",
                  "choices": ["auto", "balanced", "sampler", "none"]},
    )
    early_stopping_patience: Optional[int] = field(
        default=3, metadata={"help": "Stop after this many evaluations without a better selection metric (0/None: off)."}
    )
    selection_metric: str = field(
        default="weighted_f1",
        metadata={"help": "Validation metric for model selection and early stopping.",
                  "choices": ["weighted_f1", "macro_f1", "accuracy", "uar"]},
    )
    aggregate: str = field(
        default="mean_probs",
        metadata={"help": "Clip-level predictions when rows are windows/segments of one clip: vote | mean_probs | mean_logits.",
                  "choices": list(AGGREGATES)},
    )
    folds: str = field(
        default="auto",
        metadata={"help": "k-fold cross-validation: 'auto' (when the train split has a 'fold' column), 'none', or a "
                          "column name to leave one group out (e.g. 'speaker'): each value is once the validation fold."},
    )
    fold: Optional[int] = field(default=None, metadata={"help": "Run only this fold (0-based); default: all folds."})
    predict_splits: str = field(default="validation,test", metadata={"help": "Comma list of splits to predict after training."})
    future_turns: str = field(
        default="auto",
        metadata={"help": "Encoders on dialogue corpora: add the next N utterances of the same dialogue (from the "
                          "dataset's own rows, ids '...dia{D}_utt{U}') as a second segment, so the model sees past, "
                          "target and future turns (EmoBERTa-style). Truncation cuts the future first. auto (default): "
                          "2 when most train rows are dialogue turns (MELD), else 0."},
    )
    layerwise_lr_decay: float = field(
        default=1.0,
        metadata={"help": "Encoders: learning rate of layer l = lr * decay^(L-l) (1.0 = off); the head keeps lr."},
    )
    head_learning_rate: Optional[float] = field(
        default=None,
        metadata={"help": "Encoders, full fine-tuning: learning rate of the fresh head (pooler, classifier); default: "
                          "--learning_rate. 12-layer encoders (MPNet) collapsed to the class prior on MELD with one lr "
                          "for all (bench/RESULTS.md); a larger head lr with a small body lr avoids it."},
    )
    pooling: str = field(
        default="auto",
        metadata={"help": "Encoders: what the classification head reads. cls = the model's own head (CLS token and "
                          "pooler); mean = masked mean of the last hidden states, then dropout and a linear layer (the "
                          "pooling sentence-transformers checkpoints such as the offline MiniLM were trained with); "
                          "auto (default) = mean when the model folder declares mean pooling (1_Pooling/config.json), else cls. "
                          "On MELD dev MiniLM-L6 reached 59.4 weighted F1 with mean against 55.3 with cls (bench/RESULTS.md).",
                  "choices": ["cls", "mean", "auto"]},
    )
    label_scoring: str = field(
        default="sum",
        metadata={"help": "Generative/zero-shot decoders: a label's score is the sum or the mean of its tokens' "
                          "log-probabilities.", "choices": ["sum", "mean"]},
    )
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Train on a random N training rows (seeded by --seed; budget runs and debugging)."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Use only the first N rows of each evaluated split (debugging)."})


@dataclass
class ModelArguments:
    """How the model is loaded and adapted (LoRA/QLoRA, dtype, GGUF)."""

    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale alpha/r, or alpha/sqrt(r) with rsLoRA)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    lora_target_modules: str = field(
        default="all-linear", metadata={"help": "'all-linear' or a comma list of module names (e.g. q_proj,v_proj or query,value)."}
    )
    use_rslora: bool = field(default=False, metadata={"help": "Rank-stabilised LoRA (scale alpha/sqrt(r))."})
    load_in_4bit: bool = field(default=False, metadata={"help": "bitsandbytes 4-bit weights (implied by --method qlora)."})
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"help": "nf4 | fp4.", "choices": ["nf4", "fp4"]})
    bnb_4bit_use_double_quant: bool = field(default=True, metadata={"help": "Quantise the quantisation constants too."})
    bnb_4bit_compute_dtype: str = field(default="bfloat16", metadata={"help": "Compute dtype of 4-bit layers."})
    gguf_file: Optional[str] = field(
        default=None, metadata={"help": "GGUF file inside --model's folder (set automatically for smollm2-135m-instruct-gguf)."}
    )
    torch_dtype: str = field(default="auto", metadata={"help": "auto | float32 | bfloat16 | float16."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the model folder (off: never run code from data)."})


def split_list(value: str) -> list[str]:
    return [s.strip() for s in str(value or "").split(",") if s.strip()]
