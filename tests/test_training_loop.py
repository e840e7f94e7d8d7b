"""textualize/training.py: the one Trainer-based loop, on a tiny randomly initialised model."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from textualize.training import build_trainer, class_weights, finish_run, parse_args, write_split_predictions

CLASSES = ["low", "mid", "high"]


class TinyRandomClassifier(torch.nn.Module):
    def __init__(self, dim=4, n=3):
        super().__init__()
        self.lin = torch.nn.Linear(dim, n)

    def forward(self, x, labels=None):
        logits = self.lin(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


class ArrayDataset(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": torch.tensor(self.x[i]), "labels": torch.tensor(int(self.y[i]))}


def _data(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    x = rng.normal(size=(n, 4)).astype(np.float32)
    x[:, 0] += 2.5 * y  # learnable
    return x, y


@pytest.mark.parametrize("metric, expected", [("weighted_f1", "none"), ("eval_accuracy", "none"),
                                              ("macro_f1", "balanced"), ("eval_uar", "balanced")])
def test_auto_class_weighting_matches_the_selection_metric(metric, expected):
    from textualize.training import resolve_class_weighting

    assert resolve_class_weighting("auto", metric) == expected
    assert resolve_class_weighting("sampler", metric) == "sampler"  # an explicit choice is kept
    with pytest.raises(ValueError, match="class_weighting"):
        resolve_class_weighting("inverse", metric)


@pytest.mark.parametrize("weighting", ["balanced", "sampler", "none"])
def test_tiny_random_model_trains_selects_on_weighted_f1_and_writes_run(tmp_path, weighting):
    from transformers import TrainingArguments

    xtr, ytr = _data(300, 0)
    xva, yva = _data(90, 1)
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), num_train_epochs=6, per_device_train_batch_size=32, learning_rate=0.3,
        eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True, metric_for_best_model="weighted_f1",
        greater_is_better=True, report_to=[], use_cpu=True, seed=3, save_total_limit=1, disable_tqdm=True,
    )
    trainer = build_trainer(TinyRandomClassifier(), args, ArrayDataset(xtr, ytr), ArrayDataset(xva, yva), None, CLASSES,
                            train_label_ids=ytr, class_weighting=weighting, early_stopping_patience=2)
    trainer.train()
    logits = trainer.predict(ArrayDataset(xva, yva)).predictions
    probs = torch.softmax(torch.tensor(logits), -1).numpy()
    ids = [f"s{i}" for i in range(len(yva))]
    metrics = write_split_predictions(tmp_path / "run", "validation", ids, [CLASSES[k] for k in yva], probs, CLASSES,
                                      clips=[f"{CLASSES[k]}-{i % 5}" for i, k in enumerate(yva)], logits=logits)
    assert metrics["rows"]["weighted_f1"] > 0.7
    assert "clips" in metrics and metrics["clips"]["n"] == len({(k, i % 5) for i, k in enumerate(yva)})
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(log) >= 2 and "eval_weighted_f1" in log[0]
    finish_run(tmp_path / "run", approach="feature", model="tiny", method="full", dataset_dir=tmp_path, classes=CLASSES,
               seed=3, metrics={"validation": metrics}, config={"lr": 0.05}, timings={"train": 1.0})
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["approach"] == "feature" and info["classes"] == CLASSES
    assert (tmp_path / "run" / "predictions" / "validation.clip.jsonl").exists()


def test_class_weights_balanced_and_absent_class():
    w = class_weights([0, 0, 0, 1], 3)
    assert w[0] == pytest.approx(4 / (2 * 3)) and w[1] == pytest.approx(2.0) and w[2] == 0


@dataclass
class _Args:
    dataset: str = field(metadata={"help": "dataset"})
    lr: float = 1e-3
    tags: str = "a"


def test_parse_args_config_file_and_overrides(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("dataset: data/x\nlr: 0.5\n")
    (a,) = parse_args([_Args], ["--config", str(cfg), "--lr", "0.1"])
    assert a.dataset == "data/x" and a.lr == 0.1 and a.tags == "a"
    cfg.write_text("dataset: d\nlearning_rat: 1\n")
    with pytest.raises(SystemExit, match="unknown arguments"):
        parse_args([_Args], ["--config", str(cfg)])


def test_bf16_flag_on_a_cpu_only_machine_means_cpu_autocast(tmp_path, monkeypatch):
    import textualize.training as training
    from transformers import TrainingArguments

    monkeypatch.setattr(training, "_no_accelerator", lambda: True)
    (t,) = parse_args([TrainingArguments], ["--output_dir", str(tmp_path), "--bf16", "true", "--report_to", "none"])
    assert t.bf16 and t.use_cpu and t.device.type == "cpu"
    (t,) = parse_args([TrainingArguments], ["--output_dir", str(tmp_path), "--use_cpu", "false", "--report_to", "none"])
    assert not t.use_cpu  # an explicit flag still wins


def test_no_evaluation_turns_best_checkpoint_selection_off_instead_of_failing(tmp_path):
    from transformers import TrainingArguments

    from textualize.training import SelectsOnlyWhenEvaluating

    @dataclass
    class _T(SelectsOnlyWhenEvaluating, TrainingArguments):
        load_best_model_at_end: bool = True

    base = ["--output_dir", str(tmp_path), "--report_to", "none", "--save_strategy", "steps", "--save_steps", "5"]
    (t,) = parse_args([_T], [*base, "--eval_strategy", "no"])
    assert not t.load_best_model_at_end
    (t,) = parse_args([_T], [*base, "--eval_strategy", "steps", "--eval_steps", "5"])
    assert t.load_best_model_at_end


def test_training_works_even_if_autograd_was_left_disabled(tmp_path):
    from transformers import TrainingArguments

    x, y = _data(64, 2)
    args = TrainingArguments(output_dir=str(tmp_path / "r"), num_train_epochs=1, per_device_train_batch_size=16,
                             report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
    trainer = build_trainer(TinyRandomClassifier(), args, ArrayDataset(x, y), None, None, CLASSES, train_label_ids=y,
                            compute_metrics=None)
    torch.set_grad_enabled(False)
    try:
        out = trainer.train()
    finally:
        torch.set_grad_enabled(True)
    assert out.training_loss > 0


@pytest.mark.parametrize("config", ["run.yaml", "meld_minilm.yaml", "meld_mpnet.yaml", "meld_smollm2_cls.yaml",
                                    "meld_smollm2_gen.yaml"])
def test_shipped_run_configs_parse_into_the_finetune_arguments(tmp_path, config):
    """The recipes behind the README's figures load as they are: a renamed argument or a YAML
    surprise (an unquoted ``no`` is false) fails here, not an hour into someone's run."""
    from pathlib import Path

    import yaml

    from llm.finetune import ALL_ARGUMENTS

    path = Path(__file__).resolve().parents[1] / "llm" / "configs" / config
    script, model, train = parse_args(ALL_ARGUMENTS, ["--config", str(path), "--output_dir", str(tmp_path), "--report_to", "none"])
    values = yaml.safe_load(path.read_text())
    parsed = {**vars(script), **vars(model), **vars(train)}
    for key, value in values.items():
        got = parsed[key]
        got = getattr(got, "value", got)  # enums (eval_strategy ...)
        assert str(got) == str(value) or got == value, (key, got, value)
