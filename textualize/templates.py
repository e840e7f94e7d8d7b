"""Prompt templates: Jinja2 files with a YAML front-matter header, in the repository's ``prompts/``.

A template file looks like::

    ---
    id: paper_v1
    version: 1
    description: what this wording is for
    system: system message for chat models (Jinja2 too)
    modalities: [text, face, voice]   # the blocks the body has
    ---
    {% if "text" in modalities %}Transcript: {{ transcript }}{% endif %} ...

The body receives the fragments of ``converters.textualize_sample`` plus ``modalities`` (a set),
``classes`` (list) and ``classes_text`` ("anger, joy or sadness"). Modality ablation is a flag:
blocks whose modality is not requested are left out by the template's own ``if``.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import jinja2
import yaml

MODALITIES: tuple[str, ...] = ("text", "face", "voice")
REQUIRED_HEADER = ("id", "version", "description", "system", "modalities")
PROMPTS_ENV = "TEXTUALIZE_PROMPTS_DIR"
_BLANK_LINES_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


class TemplateError(ValueError):
    """A template file that cannot be used (bad header, syntax error, missing fragment)."""


class UnknownTemplateError(TemplateError):
    """No template with this id: the message lists the available ones."""


def prompt_dirs() -> list[Path]:
    """Where templates are looked up by id: ``$TEXTUALIZE_PROMPTS_DIR`` entries, then the
    repository's ``prompts/`` folder (beside the package)."""
    dirs = [Path(p) for p in os.environ.get(PROMPTS_ENV, "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parent.parent / "prompts")
    return [d for d in dirs if d.is_dir()]


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=False, autoescape=False,
    )


def join_classes(classes: Iterable[str]) -> str:
    """['anger', 'joy', 'sadness'] -> 'anger, joy or sadness'."""
    items = [str(c) for c in classes]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def check_modalities(modalities: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(modalities)
    if not chosen:
        raise ValueError(f"modalities is empty; choose a non-empty subset of {', '.join(MODALITIES)}")
    unknown = sorted(chosen - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; choose a non-empty subset of {', '.join(MODALITIES)}")
    return chosen


def _split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str]:
    if not text.startswith("---"):
        raise TemplateError(f"{path}: a template starts with a '---' YAML front-matter header")
    parts = re.split(r"^---[ \t]*$\n?", text, maxsplit=2, flags=re.MULTILINE)
    if len(parts) < 3:
        raise TemplateError(f"{path}: the YAML front-matter header is not closed by a '---' line")
    try:
        header = yaml.safe_load(parts[1]) or {}
    except yaml.YAMLError as e:
        raise TemplateError(f"{path}: bad YAML front matter: {e}") from None
    if not isinstance(header, dict):
        raise TemplateError(f"{path}: the front matter must be a YAML mapping")
    missing = [k for k in REQUIRED_HEADER if k not in header]
    if missing:
        raise TemplateError(f"{path}: front matter lacks {', '.join(missing)}")
    return header, parts[2]


@dataclass
class Template:
    id: str
    version: str
    description: str
    system_source: str
    modalities: tuple[str, ...]
    path: Path
    source: bytes = field(repr=False)
    body_source: str = field(repr=False, default="")
    header: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        env = _environment()
        try:  # compiled once; rendering reuses the compiled code
            self._body = env.from_string(self.body_source)
            self._system = env.from_string(self.system_source)
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"{self.path}: Jinja2 syntax error line {e.lineno}: {e.message}") from None
        self._checked: dict[Any, frozenset[str]] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> "Template":
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise TemplateError(f"cannot read template file {path}: {e.strerror or e}") from None
        header, body = _split_front_matter(data.decode("utf-8"), path)
        modalities = header["modalities"]
        if isinstance(modalities, str) or not set(modalities) <= set(MODALITIES) or not modalities:
            raise TemplateError(f"{path}: modalities must be a non-empty list from {', '.join(MODALITIES)}")
        return cls(
            id=str(header["id"]), version=str(header["version"]), description=str(header["description"]).strip(),
            system_source=str(header["system"]).strip(), modalities=tuple(modalities), path=path,
            source=data, body_source=body, header=header,
        )

    @property
    def hash(self) -> str:
        """Short SHA-256 of the file bytes (a changed wording is a new prompt set)."""
        return hashlib.sha256(self.source).hexdigest()[:12]

    def _context(self, fragments: Mapping[str, str], modalities: Iterable[str], classes: Iterable[str]) -> dict:
        if isinstance(modalities, str):
            modalities = (modalities,)
        key = modalities if isinstance(modalities, (frozenset, tuple)) else tuple(modalities)
        chosen = self._checked.get(key)
        if chosen is None:
            chosen = check_modalities(key)
            unused = sorted(chosen - set(self.modalities))
            if unused:
                raise ValueError(
                    f"template {self.id} has no block for {', '.join(unused)} (it has: {', '.join(self.modalities)})"
                )
            self._checked[key] = chosen
        classes = list(classes)
        if not classes:
            raise ValueError(f"template {self.id}: classes is empty; pass the dataset's label names")
        ctx = dict(fragments)
        ctx["modalities"] = chosen
        ctx["classes"] = classes
        ctx["classes_text"] = join_classes(classes)
        return ctx

    def _render(self, compiled: jinja2.Template, ctx: dict) -> str:
        try:
            text = compiled.render(ctx)
        except jinja2.UndefinedError as e:
            raise TemplateError(f"template {self.id} ({self.path.name}): missing fragment: {e.message}") from None
        return _BLANK_LINES_RE.sub("\n\n", text).strip()

    def render_text(
        self, fragments: Mapping[str, str], modalities: Iterable[str] = MODALITIES, classes: Iterable[str] = (),
    ) -> str:
        """Plain prompt text (for encoders such as BERT, or completion models)."""
        return self._render(self._body, self._context(fragments, modalities, classes))

    def render_chat(
        self, fragments: Mapping[str, str], modalities: Iterable[str] = MODALITIES, classes: Iterable[str] = (),
    ) -> list[dict[str, str]]:
        """[system, user] messages for instruction-tuned chat models."""
        ctx = self._context(fragments, modalities, classes)
        return [
            {"role": "system", "content": self._render(self._system, ctx)},
            {"role": "user", "content": self._render(self._body, ctx)},
        ]


def _template_files() -> list[Path]:
    seen: dict[str, Path] = {}
    for d in prompt_dirs():
        for p in sorted(d.glob("*.j2")):
            seen.setdefault(p.name, p)
    return list(seen.values())


def list_templates() -> list[Template]:
    """Every template found in ``prompt_dirs()`` (id, version, description, hash...), by id."""
    return sorted((Template.from_file(p) for p in _template_files()), key=lambda t: t.id)


def load_template(id_or_path: str | Path) -> Template:
    """A template by id (looked up in ``prompt_dirs()``) or by file path."""
    s = str(id_or_path)
    p = Path(s)
    if p.suffix == ".j2" or os.sep in s or "/" in s:
        if not p.is_file():
            raise TemplateError(f"template file {p} does not exist")
        return Template.from_file(p)
    for d in prompt_dirs():  # fast path: file named after the id
        candidate = d / f"{s}.j2"
        if candidate.is_file():
            t = Template.from_file(candidate)
            if t.id == s:
                return t
    for f in _template_files():
        t = Template.from_file(f)
        if t.id == s:
            return t
    available = [t.id for t in list_templates()]
    raise UnknownTemplateError(
        f"unknown template id {s!r}; available: {', '.join(available) or '(none found in ' + str(prompt_dirs()) + ')'}"
    )


class TokenCount(int):
    """A token count (an ``int``) that also says how it was counted: ``.method`` is
    'hf:<tokenizer>' or 'whitespace'."""

    method: str

    def __new__(cls, count: int, method: str) -> "TokenCount":
        obj = super().__new__(cls, count)
        obj.method = method
        return obj

    def __repr__(self) -> str:
        return f"TokenCount({int(self)}, {self.method!r})"


def count_tokens(text: str, tokenizer: Any = None) -> TokenCount:
    """Tokens of ``text`` with a Hugging Face tokenizer (special tokens included, as the model
    sees them) or, without one, whitespace-separated words (a rough lower bound)."""
    if tokenizer is None:
        return TokenCount(len(text.split()), "whitespace")
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    name = "/".join(Path(str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)).parts[-2:])
    return TokenCount(len(ids), f"hf:{name}")
