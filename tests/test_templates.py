"""Prompt templates: the three shipped files render, modality ablation, chat shape, hashes, errors."""
from __future__ import annotations

import itertools
import shutil

import pytest

from textualize.templates import (
    MODALITIES, Template, TemplateError, UnknownTemplateError, count_tokens,
    join_classes, list_templates, load_template,
)

SHIPPED = ("dialogue_v1", "paper_v1", "speech_cues_v1")
CLASSES = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
FRAGMENTS = {
    "transcript": "You're a genius!",
    "context": "Ross: Or, we could go to the bank, close our accounts and cut them off at the source.",
    "face": "sustained strong lip corner puller (AU12), moderate cheek raiser (AU06)",
    "voice": "high pitch, very high pitch variation, high loudness, fast speaking rate, no pauses",
    "speaker": "Chandler",
}
# A piece of each block that only that block's modality may show.
MARKS = {
    "text": ("You're a genius!",),
    "face": ("lip corner puller",),
    "voice": ("very high pitch variation",),
}


def subsets():
    for r in range(1, 4):
        yield from itertools.combinations(MODALITIES, r)


def test_shipped_templates_are_listed_and_described():
    infos = {t.id: t for t in list_templates()}
    assert set(SHIPPED) <= set(infos)
    for tid in SHIPPED:
        t = infos[tid]
        assert t.description and t.version == "1" and len(t.hash) == 12 and t.path.name == f"{tid}.j2"
        assert set(t.modalities) == set(MODALITIES) and t.system_source


@pytest.mark.parametrize("tid", SHIPPED)
def test_every_modality_subset_renders_and_omits_the_other_blocks(tid):
    t = load_template(tid)
    for subset in subsets():
        text = t.render_text(FRAGMENTS, subset, CLASSES)
        for modality, marks in MARKS.items():
            for mark in marks:
                assert (mark in text) == (modality in subset), (tid, subset, modality, text)
        # the question and every class are always there
        assert "anger, disgust, fear, joy, neutral, sadness or surprise" in text
        assert "\n\n\n" not in text and text == text.strip()
        # the dialogue history and the speaker's name are text: hidden without "text"
        assert ("Ross:" in text) == (tid == "dialogue_v1" and "text" in subset)
        assert ("Chandler" in text) == ("text" in subset and tid != "paper_v1"), (tid, subset, text)


def test_paper_template_wording():
    text = load_template("paper_v1").render_text(FRAGMENTS, MODALITIES, CLASSES)
    assert text.splitlines() == [
        "Transcript: You're a genius!;",
        "Activated AUs: sustained strong lip corner puller (AU12), moderate cheek raiser (AU06);",
        "Prosody: high pitch, very high pitch variation, high loudness, fast speaking rate, no pauses;",
        "Which emotion among anger, disgust, fear, joy, neutral, sadness or surprise is expressed?",
    ]


def test_dialogue_template_marks_the_start_of_a_conversation():
    t = load_template("dialogue_v1")
    text = t.render_text({**FRAGMENTS, "context": ""}, ("text",), CLASSES)
    assert "(start of the conversation)" in text
    assert 'Target utterance - Chandler: "You\'re a genius!"' in text


@pytest.mark.parametrize("tid", SHIPPED)
def test_chat_messages_shape(tid):
    t = load_template(tid)
    messages = t.render_chat(FRAGMENTS, ("text", "voice"), CLASSES)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert all(set(m) == {"role", "content"} and m["content"].strip() for m in messages)
    assert "sadness or surprise" in messages[0]["content"]  # system message is templated too
    assert messages[1]["content"] == t.render_text(FRAGMENTS, ("text", "voice"), CLASSES)
    assert "lip corner puller" not in messages[1]["content"]


def test_bad_modalities_and_classes_are_clear_errors():
    t = load_template("paper_v1")
    with pytest.raises(ValueError, match="modalities is empty"):
        t.render_text(FRAGMENTS, (), CLASSES)
    with pytest.raises(ValueError, match="unknown modalities"):
        t.render_text(FRAGMENTS, ("text", "gesture"), CLASSES)
    with pytest.raises(ValueError, match="classes is empty"):
        t.render_text(FRAGMENTS, ("text",), [])
    with pytest.raises(TemplateError, match="missing fragment"):
        t.render_text({"transcript": "hi"}, ("text", "face"), CLASSES)
    # a fragment of a modality left out is not needed
    assert "hi" in t.render_text({"transcript": "hi"}, ("text",), CLASSES)


def test_unknown_id_lists_the_available_ones():
    with pytest.raises(UnknownTemplateError) as e:
        load_template("paper_v9")
    for tid in SHIPPED:
        assert tid in str(e.value)


def test_hash_is_stable_and_follows_the_file_bytes(tmp_path):
    a = load_template("paper_v1")
    assert a.hash == load_template("paper_v1").hash == load_template(a.path).hash
    copy = tmp_path / "mine.j2"
    shutil.copy(a.path, copy)
    assert load_template(str(copy)).hash == a.hash
    copy.write_text(a.path.read_text().replace("is expressed?", "is expressed here?"))
    changed = load_template(copy)
    assert changed.hash != a.hash and changed.id == "paper_v1"
    assert changed.render_text(FRAGMENTS, ("face",), CLASSES).endswith("is expressed here?")


def test_template_files_are_validated(tmp_path):
    bad = tmp_path / "bad.j2"
    bad.write_text("Transcript: {{ transcript }}")
    with pytest.raises(TemplateError, match="front-matter"):
        load_template(bad)
    bad.write_text("---\nid: x\nversion: 1\n---\nbody")
    with pytest.raises(TemplateError, match="lacks description, system, modalities"):
        load_template(bad)
    bad.write_text("---\nid: x\nversion: 1\ndescription: d\nsystem: s\nmodalities: [text]\n---\n{% if %}")
    with pytest.raises(TemplateError, match="syntax error"):
        load_template(bad)
    with pytest.raises(TemplateError, match="does not exist"):
        load_template(tmp_path / "nope.j2")


def test_text_only_template_rejects_face(tmp_path):
    p = tmp_path / "text_only.j2"
    p.write_text("---\nid: text_only\nversion: 1\ndescription: d\nsystem: s\nmodalities: [text]\n---\n"
                 "{{ transcript }} ({{ classes_text }})")
    t = Template.from_file(p)
    assert t.render_text(FRAGMENTS, ["text"], ["a", "b"]) == "You're a genius! (a or b)"
    with pytest.raises(ValueError, match="has no block for face"):
        t.render_text(FRAGMENTS, ["text", "face"], ["a", "b"])


def test_prompts_dir_env_var(tmp_path, monkeypatch):
    p = tmp_path / "extra.j2"
    p.write_text("---\nid: extra_v1\nversion: 1\ndescription: d\nsystem: s\nmodalities: [voice]\n---\n{{ voice }}")
    monkeypatch.setenv("TEXTUALIZE_PROMPTS_DIR", str(tmp_path))
    assert "extra_v1" in [t.id for t in list_templates()]
    assert load_template("extra_v1").render_text(FRAGMENTS, ["voice"], ["a"]) == FRAGMENTS["voice"]


def test_join_classes():
    assert join_classes(["a"]) == "a"
    assert join_classes(["a", "b", "c"]) == "a, b or c"


@pytest.mark.slow
def test_count_tokens_whitespace_and_real_bert_tokenizer():
    n = count_tokens("Transcript: You're a genius!")
    assert n == 4 and n.method == "whitespace" and isinstance(n, int)
    from textualize.models import ModelUnavailableError, require_model

    try:
        path = require_model("minilm-l6-bert")
    except ModelUnavailableError as e:
        pytest.skip(str(e))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    m = count_tokens("Transcript: You're a genius!", tok)
    # [CLS] transcript : you ' re a genius ! [SEP]
    assert m == 10 and m.method.startswith("hf:")
