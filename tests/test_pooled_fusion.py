"""baselines/feature_fusion/models/pooled.py: masked attentive statistics pooling fusion.

All tests use tiny random models and data (named so); the end-to-end one goes through train.py
on the tiny random streams dataset of test_feature_fusion.
"""
from __future__ import annotations

import json

import numpy as np
import torch

from baselines.feature_fusion import train as ff_train
from baselines.feature_fusion.models.pooled import AttentiveStatsPool, PooledFusion
from baselines.feature_fusion.registry import FEATURE_MODELS

LAYOUT = {  # face_au 6-d (stream 0), audio_lld 4-d (stream 1)
    "streams": ["face_au", "audio_lld"], "dims": {"face_au": 6, "audio_lld": 4},
    "offsets": {"face_au": (0, 6), "audio_lld": (6, 10)},
    "modalities": {"face": [0], "voice": [1]},
    "modality_streams": {"face": ["face_au"], "voice": ["audio_lld"]},
}


def tiny_model(**kw) -> PooledFusion:
    torch.manual_seed(0)
    return PooledFusion(LAYOUT, 3, [8, 8], kernel_size=3, dropout=0.0, attention=8, mlp=16, **kw).eval()


def tiny_batch(b=3, t=7):
    torch.manual_seed(1)
    feats = torch.randn(b, t, 10)
    masks = torch.ones(b, t, 2, dtype=torch.bool)
    masks[0, 2:4, 1] = False  # voice missing at two frames
    masks[1, :, 0] = False  # no face at all in this window
    masks[2, 5:, :] = False  # nothing at the last frames
    feats[~masks[..., 0], :6] = 0
    feats[~masks[..., 1], 6:] = 0
    return feats, masks


def test_registry_has_pooled():
    assert "pooled" in FEATURE_MODELS.names()


def test_tiny_random_pooled_shapes_and_logits_repeat_over_frames():
    model = tiny_model()
    feats, masks = tiny_batch()
    out = model(feats=feats, masks=masks, labels=torch.zeros(3, 7, dtype=torch.long))
    assert out["logits"].shape == (3, 7, 3) and torch.isfinite(out["logits"]).all()
    assert torch.equal(out["logits"], out["logits"][:, :1].expand(-1, 7, -1))
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])


def test_tiny_random_pooled_masked_values_and_padding_do_not_change_the_output():
    model = tiny_model()
    feats, masks = tiny_batch()
    ref = model.clip_logits(feats, masks)
    noisy = feats.clone()
    noisy[~masks[..., 0], :6] = 50.0  # garbage under the masks
    noisy[~masks[..., 1], 6:] = -50.0
    assert torch.allclose(model.clip_logits(noisy, masks), ref, atol=1e-5)
    pad = 5  # collate-style trailing padding (masked, zero)
    pf = torch.cat([feats, torch.randn(3, pad, 10)], dim=1)
    pm = torch.cat([masks, torch.zeros(3, pad, 2, dtype=torch.bool)], dim=1)
    assert torch.allclose(model.clip_logits(pf, pm), ref, atol=1e-5)
    changed = feats.clone()
    changed[0, 0, 6:] += 3.0  # a present frame does change the decision
    assert not torch.allclose(model.clip_logits(changed, masks)[0], ref[0], atol=1e-4)


def test_tiny_random_pool_ignores_masked_steps_and_empty_windows_give_zeros():
    pool = AttentiveStatsPool(4, 8)
    h = torch.randn(2, 6, 4)
    present = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    out = pool(h, present)
    assert torch.allclose(out, pool(torch.cat([h[:, :3], torch.randn(2, 3, 4)], dim=1), present), atol=1e-6)
    assert torch.equal(out[1], torch.zeros(8))
    one = torch.tensor([[0, 0, 1, 0, 0, 0]], dtype=torch.bool)  # one frame: mean = that frame
    assert torch.allclose(pool(h[:1], one)[0, :4], h[0, 2], atol=1e-6)


def test_tiny_random_pooled_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = PooledFusion(LAYOUT, 3, [8, 8], kernel_size=3, dropout=0.0, attention=8, mlp=16)
    g = torch.Generator().manual_seed(2)
    y = torch.arange(24) % 3
    feats = torch.randn(24, 8, 10, generator=g)
    feats[..., 7] += 1.5 * y[:, None].float()  # the class shows in one voice dimension
    masks = torch.ones(24, 8, 2, dtype=torch.bool)
    labels = y[:, None].expand(-1, 8).clone()
    losses = adam_losses(model, 30, feats=feats, masks=masks, labels=labels)
    assert losses[-1] < 0.5 * losses[0]


def adam_losses(model, steps: int, lr: float = 1e-2, **batch) -> list[float]:
    """The training loss of ``steps`` full-batch Adam steps on one batch (a fusion model's forward)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = model(**batch)["loss"]
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_tiny_random_pooled_trains_through_train_py(tmp_path):
    from tests.test_feature_fusion import TINY, write_tiny_random_dataset

    ds = write_tiny_random_dataset(tmp_path / "d")
    out = tmp_path / "run"
    argv = ["--dataset", str(ds), "--model", "pooled", "--output_dir", str(out), "--use_cpu", "true",
            *TINY, "--window", "12", "--hop", "8", "--num_train_epochs", "3", "--pool_mlp", "16", "--pool_attention", "8"]
    assert ff_train.main(argv) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["model"] == "pooled" and info["model_info"]["parameters"] > 0
    assert info["config"]["model"] == {"pool_attention": 8, "pool_mlp": 16, "pool_raw": True}
    rows = [json.loads(line) for line in (out / "predictions" / "test.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and all(np.isclose(sum(r["probs"].values()) if isinstance(r["probs"], dict) else sum(r["probs"]), 1.0) for r in rows)
