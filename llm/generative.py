"""Generative head for decoders: the label is the assistant's answer, and prediction scores labels.

Training: the chat template renders the row's ``messages`` with the gold label as the assistant's
turn; the loss is the cross-entropy of the answer tokens only (the label's tokens and the
template's end-of-turn token). Prediction: every label string is scored as the answer to the same
prompt, and a softmax over the label scores gives one probability per class, so every prediction
is a valid label.

Scoring (``label_scoring``):
- ``sum`` (default): the summed log-probability of the answer tokens, end-of-turn included, i.e.
  ``log p(answer | prompt)``; the softmax over labels is then the model's own distribution
  restricted to the label set, and it is exactly what the training loss optimises.
- ``mean``: the log-probability per answer token (length-normalised), which favours long labels
  less when labels differ in token count; zero-shot prompts sometimes prefer it.

Efficiency: the prompt goes through the model once; its KV cache is repeated for the K labels and
only the label tokens are run again (one forward of the prompt batch + one of B·K short
continuations), instead of K full forwards. Training keeps one forward per row over prompt +
answer and computes logits only on the answer positions (``logits_to_keep``).

Model selection on weighted F1 works through the ordinary ``Trainer`` loop: in eval mode the model
returns the (B, K) label scores as ``logits`` and the gold class as the label (``class_labels``),
so ``textualize.training``'s default ``compute_metrics`` and ``trainer.predict`` rank labels for the
generative head exactly as for the classification head, and ``eval_loss`` is the answer NLL.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

SENTINEL = "\u2063TEXTUALIZE_ANSWER\u2063"
LABEL_SCORINGS = ("sum", "mean")
CLASS_LABELS = "class_labels"  # batch key of the gold class (kept apart from token labels)


# ---------------------------------------------------------------- prompts and answers


def _fallback_render(messages: Sequence[dict]) -> str:
    """For tokenizers without a chat template (base models): plain turns, then 'Answer: '."""
    return "\n\n".join(str(m["content"]) for m in messages) + "\nAnswer: "


def render_prompt(tokenizer, messages: Sequence[dict]) -> tuple[str, str]:
    """(prompt text, text after the answer) from the chat template, rendered with a sentinel
    answer, so the training sequence is exactly the template's own rendering of the dialogue."""
    if not messages:
        raise ValueError("empty messages: nothing to prompt the model with")
    if messages[-1].get("role") == "assistant":
        raise ValueError("messages already end with an assistant turn; the label is appended as the answer")
    if not getattr(tokenizer, "chat_template", None):
        return _fallback_render(messages), tokenizer.eos_token or ""
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": SENTINEL}], tokenize=False
    )
    k = full.rfind(SENTINEL)
    if k < 0:
        raise ValueError("the chat template dropped the assistant turn; cannot place the answer")
    return full[:k], full[k + len(SENTINEL) :]


def end_of_answer_ids(tokenizer, suffix: str) -> list[int]:
    """Token ids that close the answer (``<|im_end|>``, ``<|eot_id|>``…): the template's text after
    the answer without trailing whitespace, or the EOS token when the template adds nothing."""
    ids = tokenizer(suffix.rstrip(), add_special_tokens=False)["input_ids"] if suffix.strip() else []
    if not ids and tokenizer.eos_token_id is not None:
        ids = [int(tokenizer.eos_token_id)]
    return [int(i) for i in ids]


def label_candidates(tokenizer, classes: Sequence[str], end_ids: Sequence[int]) -> list[list[int]]:
    """Answer token ids of every class: the class name as written, then the end-of-turn ids."""
    cands = [[int(i) for i in tokenizer(c, add_special_tokens=False)["input_ids"]] + list(end_ids) for c in classes]
    seen: dict[tuple, str] = {}
    for c, ids in zip(classes, cands):
        if tuple(ids) in seen:
            raise ValueError(f"classes {seen[tuple(ids)]!r} and {c!r} tokenize identically; cannot score them apart")
        seen[tuple(ids)] = c
    return cands


def row_messages(row: dict, field: str) -> list[dict]:
    """The row's chat messages; a plain-text field becomes one user turn."""
    value = row.get(field)
    if value is None and field != "messages":
        value = row.get("messages")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not value:
        raise ValueError(f"row {row.get('id')!r} has no {field!r} to prompt with")
    return [dict(m) for m in value]


def tokenize_prompts(tokenizer, rows, field: str, max_prompt_tokens: int) -> tuple[dict[str, list], int]:
    """Prompt ids per row (chat template, generation prompt included), left-truncated to
    ``max_prompt_tokens`` so the question at the end survives; returns the count truncated."""
    input_ids, masks, truncated = [], [], 0
    for row in rows:
        prompt, _ = render_prompt(tokenizer, row_messages(row, field))
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) > max_prompt_tokens:
            ids = ids[-max_prompt_tokens:]
            truncated += 1
        input_ids.append(ids)
        masks.append([1] * len(ids))
    return {"input_ids": input_ids, "attention_mask": masks}, truncated


class LeftPadCollator:
    """Left-pads prompts (the answer, or the cached label continuations, follow the last real
    token) and stacks ``class_labels``."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad = int(pad_token_id)
        self.multiple = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        n = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            n = -(-n // self.multiple) * self.multiple
        ids = torch.full((len(features), n), self.pad, dtype=torch.long)
        mask = torch.zeros((len(features), n), dtype=torch.long)
        for i, f in enumerate(features):
            x = torch.as_tensor(f["input_ids"], dtype=torch.long)
            if len(x):
                ids[i, n - len(x) :] = x
                mask[i, n - len(x) :] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if CLASS_LABELS in features[0]:
            batch[CLASS_LABELS] = torch.as_tensor([int(f[CLASS_LABELS]) for f in features], dtype=torch.long)
        return batch


# ---------------------------------------------------------------- scoring


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def candidate_logprobs(
    call: Callable[..., Any], input_ids: torch.Tensor, attention_mask: torch.Tensor, candidates: Sequence[Sequence[int]]
) -> torch.Tensor:
    """(B, K) summed log-probabilities of each candidate answer after each left-padded prompt:
    one prompt forward, its KV cache repeated K times, one forward of the label continuations."""
    b, k = input_ids.shape[0], len(candidates)
    dev = input_ids.device
    out = call(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=_positions(attention_mask),
        use_cache=True, logits_to_keep=1,
    )
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V)
    first_ids = torch.tensor([c[0] for c in candidates], device=dev)
    score = first[:, first_ids]  # (B, K)
    m = max(len(c) for c in candidates) - 1
    if m == 0:
        return score
    cont = torch.zeros((k, m), dtype=torch.long, device=dev)
    target = torch.zeros((k, m), dtype=torch.long, device=dev)
    valid = torch.zeros((k, m), dtype=torch.bool, device=dev)
    for j, c in enumerate(candidates):
        n = len(c) - 1
        if n:
            cont[j, :n] = torch.tensor(c[:-1], device=dev)
            target[j, :n] = torch.tensor(c[1:], device=dev)
            valid[j, :n] = True
    cache = out.past_key_values
    cache.batch_repeat_interleave(k)
    cont_mask = torch.ones((k, m), dtype=attention_mask.dtype, device=dev)  # padded tail is never read
    mask2 = torch.cat([attention_mask.repeat_interleave(k, 0), cont_mask.repeat(b, 1)], dim=1)
    start = attention_mask.sum(-1).repeat_interleave(k)[:, None]
    pos2 = start + torch.arange(m, device=dev)[None, :]
    out2 = call(
        input_ids=cont.repeat(b, 1), attention_mask=mask2, position_ids=pos2, past_key_values=cache, use_cache=True
    )
    lp = torch.log_softmax(out2.logits.float(), dim=-1)  # (B·K, M, V)
    tok = lp.gather(-1, target.repeat(b, 1)[..., None])[..., 0] * valid.repeat(b, 1)
    return score + tok.sum(-1).view(b, k)


class LabelScoringMixin:
    """forward(input_ids, attention_mask, class_labels): answer-only LM loss in training; in eval
    also the (B, K) label scores as ``logits``. Needs ``_lm_call``, ``candidates``,
    ``label_scoring`` and ``class_weight`` (a list, or None for an unweighted loss)."""

    candidates: list[list[int]]
    label_scoring: str = "sum"
    class_weight: list[float] | None = None

    def _lm_call(self, **kw):  # pragma: no cover - provided by the concrete class
        raise NotImplementedError

    def _weights(self, class_labels: torch.Tensor) -> torch.Tensor:
        valid = class_labels >= 0
        w = torch.ones(class_labels.shape, dtype=torch.float32, device=class_labels.device)
        if self.class_weight is not None:
            table = torch.tensor(self.class_weight, dtype=torch.float32, device=class_labels.device)
            w = table[class_labels.clamp(min=0)]
        return w * valid

    def _answer_loss(self, input_ids, attention_mask, class_labels):
        """Weighted mean NLL per answer token of the gold answer: sum_i w_i nll_i / sum_i w_i n_i."""
        dev = input_ids.device
        gold = class_labels.clamp(min=0).tolist()
        lens = [len(self.candidates[g]) for g in gold]
        a = max(lens)
        ans = torch.zeros((len(gold), a), dtype=torch.long, device=dev)
        ans_mask = torch.zeros((len(gold), a), dtype=attention_mask.dtype, device=dev)
        for i, g in enumerate(gold):
            ans[i, : lens[i]] = torch.tensor(self.candidates[g], device=dev)
            ans_mask[i, : lens[i]] = 1
        seq = torch.cat([input_ids, ans], dim=1)
        mask = torch.cat([attention_mask, ans_mask], dim=1)
        out = self._lm_call(
            input_ids=seq, attention_mask=mask, position_ids=_positions(mask), use_cache=False, logits_to_keep=a + 1
        )
        logits = out.logits[:, :a].float()  # position t predicts answer token t
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ans.reshape(-1), reduction="none")
        nll = (nll.view(len(gold), a) * ans_mask).sum(-1)
        w = self._weights(class_labels)
        denom = (w * ans_mask.sum(-1)).sum()
        return (w * nll).sum() / denom.clamp(min=1e-8)

    def _scoring_forward(self, input_ids, attention_mask, class_labels=None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.training:
            if class_labels is None:
                raise ValueError(f"training the generative head needs {CLASS_LABELS!r} in the batch")
            return SequenceClassifierOutput(loss=self._answer_loss(input_ids, attention_mask, class_labels))
        logp = candidate_logprobs(self._lm_call, input_ids, attention_mask, self.candidates)
        lens = torch.tensor([len(c) for c in self.candidates], dtype=logp.dtype, device=logp.device)
        scores = logp / lens if self.label_scoring == "mean" else logp
        loss = None
        if class_labels is not None:
            gold = class_labels.clamp(min=0)
            w = self._weights(class_labels)
            nll = -logp.gather(1, gold[:, None])[:, 0]
            loss = (w * nll).sum() / (w * lens[gold]).sum().clamp(min=1e-8)
        return SequenceClassifierOutput(loss=loss, logits=scores)


class LabelScorer(LabelScoringMixin, torch.nn.Module):
    """A causal LM (no adapters) as a label scorer: zero-shot, or full fine-tuning."""

    def __init__(self, lm, candidates, label_scoring: str = "sum", class_weight=None):
        super().__init__()
        self.lm = lm
        self.candidates = [list(c) for c in candidates]
        self.label_scoring = label_scoring
        self.class_weight = class_weight
        self.config = lm.config
        # state-dict keys that alias another tensor (tied lm_head): dropped on save, re-tied on load
        self._keys_to_ignore_on_save = sorted(set(torch.nn.Module.state_dict(self)) - set(self.state_dict())) or None

    def tie_weights(self):
        self.lm.tie_weights()

    def _lm_call(self, **kw):
        return self.lm(**kw)

    def forward(self, input_ids=None, attention_mask=None, class_labels=None):
        return self._scoring_forward(input_ids, attention_mask, class_labels)

    def gradient_checkpointing_enable(self, **kw):
        self.lm.gradient_checkpointing_enable(**kw)

    def state_dict(self, *args, **kwargs):
        """Without aliases of tied weights (lm_head = embeddings): safetensors refuses shared
        tensors, and loading re-ties them (``Trainer`` saves a plain module's state dict)."""
        sd = super().state_dict(*args, **kwargs)
        seen: set[tuple] = set()
        for k in list(sd):
            t = sd[k]
            key = (t.data_ptr(), tuple(t.shape), t.dtype) if hasattr(t, "data_ptr") and t.numel() else None
            if key is not None and key in seen:
                del sd[k]
            elif key is not None:
                seen.add(key)
        return sd


def peft_label_scorer(lm, lora_config, candidates, label_scoring: str = "sum", class_weight=None):
    """A ``PeftModelForCausalLM`` (so ``Trainer`` saves and reloads only the adapter) whose
    forward is the label-scoring one."""
    from peft import PeftModelForCausalLM

    class PeftLabelScorer(LabelScoringMixin, PeftModelForCausalLM):
        def _lm_call(self, **kw):
            return PeftModelForCausalLM.forward(self, **kw)

        def forward(self, input_ids=None, attention_mask=None, class_labels=None):
            return self._scoring_forward(input_ids, attention_mask, class_labels)

    model = PeftLabelScorer(lm, lora_config)
    model.candidates = [list(c) for c in candidates]
    model.label_scoring = label_scoring
    model.class_weight = class_weight
    return model
