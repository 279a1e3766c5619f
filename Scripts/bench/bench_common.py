"""Prompt construction shared by the benchmark scripts in this folder.

The prompt is built the way the engine builds it (``Sources/LLaVA/ConversationTemplate.swift``):
``system + first_turn`` with ``{question}`` filled in (a ``<image>`` inside the question is
removed), the text split at ``<image>``, every chunk encoded on its own with the checkpoint's
SentencePiece model and its default settings (so each chunk gets the dummy-prefix space), BOS
once at the start, and the placeholder expanded to one image-token id per visual token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = REPO_ROOT / "Prompts" / "templates"
IMAGE_PLACEHOLDER = "<image>"

# Used when Prompts/templates is not available (same content as the files there).
BUILTIN_TEMPLATES = {
    "llava-hf": {"system": "", "first_turn": "USER: <image>\n{question} ASSISTANT:"},
    "llava-v1": {
        "system": "A chat between a curious user and an artificial intelligence assistant. "
                  "The assistant gives helpful, detailed, and polite answers to the user's questions. ",
        "first_turn": "USER: <image>\n{question} ASSISTANT:",
    },
}

# Words appended to the question to reach a target prompt length. Fixed, so the same question,
# tokenizer and target always give the same padded text.
FILLER_TEXT = (
    "Please look carefully at every part of the picture, from the top left corner to the bottom "
    "right corner, and describe the shapes, their colours, their sizes, how they overlap, where "
    "the light comes from, which objects are in the foreground and which are in the background, "
    "whether any text or numbers are visible, and what the whole scene most likely shows. "
    "Mention the largest object first, then the smaller ones, and say how many there are of each "
    "kind. If something is unclear, say so instead of guessing, and keep the answer short."
)
FILLER_WORDS = FILLER_TEXT.split()


def load_template(name_or_path: str) -> dict:
    """A template by name (Prompts/templates/<name>.json) or by path; returns system/first_turn."""
    path = Path(name_or_path)
    if not (name_or_path.endswith(".json") or "/" in name_or_path):
        path = TEMPLATE_DIR / f"{name_or_path}.json"
        if not path.exists():
            if name_or_path in BUILTIN_TEMPLATES:
                return dict(BUILTIN_TEMPLATES[name_or_path], name=name_or_path)
            raise SystemExit(f"unknown template {name_or_path!r} (no {path})")
    data = json.loads(path.read_text(encoding="utf-8"))
    first_turn = data["first_turn"]
    if first_turn.count(IMAGE_PLACEHOLDER) != 1 or "{question}" not in first_turn:
        raise SystemExit(f"{path}: first_turn needs exactly one <image> and a {{question}}")
    return {"name": data.get("name", path.stem), "system": data.get("system", ""), "first_turn": first_turn}


def prompt_text(template: dict, question: str) -> str:
    question = question.replace(IMAGE_PLACEHOLDER, "")
    return template["system"] + template["first_turn"].replace("{question}", question)


def encode_prompt(sp, text: str, image_token_id: int, visual_tokens: int) -> list[int]:
    """Token ids of a prompt: BOS, then each chunk's ids, image-token ids where <image> was."""
    ids = [sp.bos_id()]
    for index, chunk in enumerate(text.split(IMAGE_PLACEHOLDER)):
        if index > 0:
            ids += [image_token_id] * visual_tokens
        if chunk:
            ids += sp.encode(chunk)
    return ids


def pad_question(question: str, target_tokens: int, count: Callable[[str], int]) -> str:
    """Append filler words (cycling through FILLER_WORDS) until ``count(question)`` reaches
    ``target_tokens``. Returns the question unchanged if it is already long enough or the target
    is 0."""
    if target_tokens <= 0 or count(question) >= target_tokens:
        return question
    words: list[str] = []
    while True:
        words.append(FILLER_WORDS[len(words) % len(FILLER_WORDS)])
        padded = question + " " + " ".join(words)
        if count(padded) >= target_tokens:
            return padded
        if len(words) > 100_000:
            raise SystemExit("cannot reach the requested prompt length with filler words")


def build_prompt(sp, template: dict, question: str, image_token_id: int, visual_tokens: int,
                 target_tokens: int = 0) -> tuple[str, list[int]]:
    """The (possibly padded) question and the prompt ids."""
    def count(q: str) -> int:
        return len(encode_prompt(sp, prompt_text(template, q), image_token_id, visual_tokens))

    padded = pad_question(question, target_tokens, count)
    return padded, encode_prompt(sp, prompt_text(template, padded), image_token_id, visual_tokens)
