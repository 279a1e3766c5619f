#!/usr/bin/env python3
"""Generate ``Tests/Fixtures/reference/clip-small/``: a small CLIP folder laid out like the one a
user downloads for CDPruner (``openai/clip-vit-large-patch14-336``), and what transformers gives
on it: tokenizer ids, CDPruner's segmented text embeddings and the image embeddings.

Usage (from the repository root; rewrites the fixture folder except its README.md)::

    python3 Scripts/reference/make_clip_text_fixtures.py

Requirements: Python 3.10+, ``pip install 'torch==2.13.0+cpu' transformers safetensors
open_clip_torch`` (made with torch 2.13.0+cpu, transformers 5.25, tokenizers 0.23.3,
open_clip_torch 3.3.0, ftfy 6.3). ``open_clip_torch`` is needed only for the files it ships:
CLIP's BPE merges ``bpe_simple_vocab_16e6.txt.gz`` and OpenAI's original ``SimpleTokenizer``
(``open_clip/tokenizer.py``, loaded by path: importing the package needs a matching torchvision).
Runs in about half a minute (most of it classifying every Unicode code point).

Official code
-------------
CDPruner (Theia-4869/CDPruner, commit 9541616c40fcd5625de1cdb8ea6c33c129eb7864),
``llava/model/multimodal_encoder/clip_encoder.py``, ``CLIPVisionTower.forward``: the question is
tokenized whole (``CLIPTokenizerFast``, no truncation, no padding), ``input_ids`` and
``attention_mask`` are padded with zeros to a multiple of ``max_position_embeddings`` and reshaped
to segments of that length, and ``CLIPTextModelWithProjection`` runs on every segment; the
image side is ``visual_projection(post_layernorm(patch features))``. ``official_text_embeds``
below restates those lines; nothing of the official code is copied here.

What it writes
--------------
``model/``
    The CLIP folder: ``config.json`` and ``model.safetensors`` from ``CLIPModel.save_pretrained``
    (float32), ``vocab.json`` and ``merges.txt``. Text tower: vocab 3514, hidden 64, 2 layers,
    4 heads, FFN 128, 77 positions, ``quick_gelu``, ``eos_token_id`` 2 (the legacy value of
    openai's configs: pooling at the argmax of the ids); projection_dim 32. Vision tower: hidden 96
    (the width of ``llava-small``'s tower), 8 px / patch 4, no encoder layers (the features come
    from the LLaVA tower; only ``post_layernorm`` and ``visual_projection`` are read, and layers
    would only make the folder larger). Weights are drawn with seed 0 (see ``draw_weights``).
``model/vocab.json``, ``model/merges.txt``
    A small CLIP vocabulary laid out as Hugging Face's CLIP files are: merges 1..3000 of
    ``bpe_simple_vocab_16e6.txt.gz`` (line 0 is its header), as OpenAI's ``SimpleTokenizer``
    slices them (``merges[1:49152-256-2+1]`` keeps them all); vocab = the 256 byte symbols of
    ``bytes_to_unicode`` in its order, the same with ``</w>``, one entry per merge, then
    ``<|startoftext|>`` (3512) and ``<|endoftext|>`` (3513). ``merges.txt`` starts with
    ``#version: 0.2``.
``config_first_eos.json``
    ``model/config.json`` with ``text_config.eos_token_id`` = 3513 (the vocabulary's real EOS, so
    transformers pools at the first EOS position) and ``text_config.hidden_act`` = ``gelu``; the
    weights are those of ``model/``. The tests put it next to copies of ``model/``'s files.
``tokenizer_cases.json``
    ``[{"text", "ids"}]`` for 400+ strings (``test_strings``): punctuation, apostrophes, numbers,
    accents composed and decomposed, CJK, emoji, scripts with combining marks, letters new in
    Unicode 17, whitespace of every kind, special-token text, questions of 77+ tokens, VQA
    questions, then seeded mixtures of all of these. ``ids`` are
    ``CLIPTokenizerFast.from_pretrained(model/)(text).input_ids`` (BOS and EOS included, no
    truncation). ``CLIPTokenizerFast(vocab=..., merges=...)`` gives the same ids on every string.
    OpenAI's original ``SimpleTokenizer`` (what the slow ``CLIPTokenizer`` of transformers 4
    reimplemented; transformers 5 has no slow CLIP tokenizer) differs on some strings; the
    script prints how many and the README names the reasons.
``text_embeds.json``
    ``{"first_eos": [...], "legacy_eos": [...]}``, one list per config, the same questions in
    each: ``text``, ``ids`` (the whole tokenized question), ``segments``, ``pooled_positions``
    (the row pooled in each segment), ``text_embeds`` ([segments][32]), from
    ``official_text_embeds`` with ``CLIPTextModelWithProjection.from_pretrained`` (default
    attention, float32). The eager attention implementation agrees within 2e-6.
``image_embeds.safetensors``
    ``features`` [64, 96] float32 (seeded normal draws standing in for the tower's patch tokens)
    and ``image_embeds`` [64, 32] = ``visual_projection(post_layernorm(features))`` of
    ``CLIPVisionModelWithProjection.from_pretrained(model/)``.
``unicode_classes.json``
    ``{"letter", "number", "space"}``: the code points (as inclusive [first, last] ranges) that the
    tokenizer's regular expressions match with ``\\p{L}``, ``\\p{N}`` and ``\\s`` (Oniguruma inside
    ``tokenizers``: Unicode 16.0 tables; ``\\s`` is the White_Space property).

Notes on transformers 5.25
--------------------------
``CLIPTokenizerFast`` is ``CLIPTokenizer`` (tokenizers-backed) and ignores ``vocab_file=`` /
``merges_file=`` keyword arguments: it silently builds a three-token vocabulary. The script loads
the tokenizer with ``from_pretrained`` (as CDPruner does) and checks it against
``CLIPTokenizerFast(vocab=dict, merges=list)``.
``CLIPTextModelWithProjection.from_pretrained`` on a CLIPModel folder reads ``text_config`` alone
(``text_config_dict``, which old openai files also carry, is applied only by ``CLIPConfig``); the
script checks this on a copy of the folder.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

# Not needed here, and a torchvision built for another torch (open_clip_torch may pull one in)
# breaks transformers' model imports: hide it.
sys.modules.setdefault("torchvision", None)

import torch
from safetensors.torch import save_file
from tokenizers import Regex, pre_tokenizers

import transformers
from transformers import (CLIPConfig, CLIPModel, CLIPTextModelWithProjection, CLIPTokenizerFast,
                          CLIPVisionModelWithProjection)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
OUT_DIR = REPO_ROOT / "Tests" / "Fixtures" / "reference" / "clip-small"

MERGES = 3000
VOCAB_SIZE = 2 * 256 + MERGES + 2
BOS_ID, EOS_ID = VOCAB_SIZE - 2, VOCAB_SIZE - 1
TEXT = dict(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32,
            bos_token_id=0, eos_token_id=2, pad_token_id=1)
VISION = dict(hidden_size=96, intermediate_size=96, num_hidden_layers=0, num_attention_heads=4, image_size=8,
              patch_size=4, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32)
PROJECTION_DIM = 32
SEED = 0
IMAGE_ROWS = 64


def open_clip_file(name: str) -> str:
    """A file of the installed open_clip package, found without importing it."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("open_clip_torch is not installed (pip install open_clip_torch)")
    return str(Path(list(spec.submodule_search_locations)[0]) / name)


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map of the 256 byte values to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_vocabulary(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]], list[str]]:
    """vocab.json and merges.txt of the first MERGES merges; returns them and the BPE file's lines
    (header plus those merges) for SimpleTokenizer."""
    lines = gzip.open(open_clip_file("bpe_simple_vocab_16e6.txt.gz")).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:MERGES + 1]]
    assert all(len(m) == 2 for m in merges)
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(tokens) == len(set(tokens)) == VOCAB_SIZE
    vocab = {t: i for i, t in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return vocab, merges, lines[:MERGES + 1]


def string_groups() -> tuple[list[str], ...]:
    """Hand-picked tokenizer cases, by kind."""
    punctuation = ["Hello, world!", "!!!", "?!", "...", "…", "--", "—", "(a)", "[x]", "{y}", "a/b", "C++", "e-mail",
                   "U.S.A.", "$5.99", "50%", "#hashtag", "@user", "a_b", "snake_case_name", "camelCaseWord", "ALLCAPS",
                   "x=y+z", "<b>bold</b>", "http://example.com/path?q=1&r=2", "\"quoted\"", "'single'", "a;b:c",
                   "~`^|\\", "«guillemets»", "¿Qué?", "¡Hola!", "&amp; &lt;", "a.b.c", "end.", ",,,,", "*-*-*"]
    apostrophes = ["it's", "IT'S", "It'S", "can't", "we're", "they've", "I'm", "you'll", "he'd", "'s", "''s", "!'s",
                   "o'clock", "rock'n'roll", "don’t", "l'homme", "'twas", "goin'", "'re 've 'm 'll 'd 't",
                   "'RE'VE'M'LL'D", "a's'b", "''", "' s", "'S"]
    numbers = ["0", "7", "123", "3.14159", "1,000,000", "2024-01-01", "10:30", "1st 2nd 3rd", "½ ¼ ¾", "x² y³",
               "Ⅻ ⅻ", "٣٤٥", "१२३", "①②③", "𝟙𝟚𝟛", "12abc34", "abc123def", "0x1F", "-42", "+7", "1e10", "v2.0.1",
               "9876543210" * 3]
    scripts = ["café", "cafe\u0301", "naïve résumé", "Ångström", "A\u030a", "\u212b", "straße", "STRASSE", "ΟΔΟΣ",
               "Σ", "İstanbul", "ǅemal", "ﬁne ﬂow", "Ｆｕｌｌｗｉｄｔｈ １２３", "日本語のテキスト", "中文字符和标点。",
               "한국어 문장", "\u1100\u1161\u11a8", "العربية", "עברית", "हिन्दी", "ไทย", "Ελληνικά", "Русский текст",
               "q\u0303", "e\u0301\u0301", "Zalgơ̴̡ text", "🙂", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "©®™", "→←↑", "∑∫√",
               "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𐍈", "\U00010940\U00010941", "\u088f", "\ua7ce", "\U00016d40", "\ufffd", "\u200b",
               "a\u200db", "\ufeffbom", "\x00", "bell\x07", "del\x7f", "\U0010ffff", "\ue000private"]
    whitespace = ["a  b", "a\tb", "a\nb", "a\r\nb", "  leading", "trailing  ", "\t\n ", "", " ", "a\u00a0b",
                  "a\u3000b", "a\u2028b", "a\x1cb", "a\x85b", "a\u180eb", "a\u200bb", "a" + " " * 40 + "b",
                  "\n\nWhat\n\n\nis\t\tthis?\n", "a\x0bb\x0cc", "a\u2003b\u202fc\u205fd\u1680e"]
    special = ["<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b", "<|ENDOFTEXT|>", "< |endoftext| >",
               "<|endoftext|><|startoftext|>", "<|endoftext", "<<|endoftext|>>", "x <|endoftext|> y",
               "?<|endoftext|>", "<|startoftext|>hello", "hello <|startoftext|>"]
    vqa = ["What is the color of the bus?", "How many people are in the image?",
           "Is there a dog in the picture? Please answer yes or no.", "What is written on the sign?",
           "What is the man holding in his right hand?", "Where is this photo taken?",
           "What time does the clock show?", "Describe the image in detail.",
           "Provide a one-sentence caption for the provided image.",
           "What brand is the laptop?\nReference OCR token: DELL, Inspiron, 15, Intel",
           "Which of the following is the capital of France?\nA. Berlin\nB. Paris\nC. Rome\nD. Madrid\n"
           "Answer with the option's letter from the given choices directly.",
           "Hint: The diagram below shows a food web.\nQuestion: Which organism is a producer?\nOptions:\n"
           "A. grass\nB. hawk\nC. snake\nD. mouse",
           "Context: Select the best estimate.\nHow long is a pencil?\nA. 19 centimeters\nB. 19 kilometers",
           "Is the person on the left wearing glasses?", "What sport is being played?",
           "Are the lights on in the kitchen?", "What's the name of the restaurant?",
           "Who is the author of this book?", "What is the total amount on the receipt ($)?",
           "Is the surfboard longer than the surfer is tall?"]
    long = ["word " * 100,
            "a " * 75, "a " * 76, "a " * 77, "a " * 153, "a " * 154,
            "a" * 300, "supercalifragilisticexpialidocious" * 4, "!" * 200, "1234567890" * 10,
            ("In this detailed photograph taken at a busy city intersection during the late afternoon, several "
             "pedestrians wait at the crosswalk while a red double-decker bus, two yellow taxis and a cyclist pass "
             "by; what is the number displayed on the front of the bus, and does it match the route shown on the "
             "sign attached to the lamp post on the right-hand side of the street?"),
            ("What is written on the storefront?\nReference OCR token: " + ", ".join(
                f"TOKEN{i}" if i % 3 else f"Word{i}" for i in range(60)))]
    return punctuation, apostrophes, numbers, scripts, whitespace, special, vqa, long


def fixed_strings() -> list[str]:
    return [s for group in string_groups() for s in group]


def test_strings() -> list[str]:
    """The tokenizer cases: the hand-picked strings, then seeded mixtures of their fragments."""
    punctuation, apostrophes, numbers, scripts, whitespace, special, vqa, long = string_groups()
    fixed = fixed_strings()
    rng = random.Random(20251208)
    words = ["the", "a", "photo", "of", "cat", "dog", "What", "is", "COLOR", "red", "blue", "image", "shown", "two",
             "people", "standing", "near", "Building", "sky", "tree"]
    pools = [words, words, punctuation, apostrophes, numbers, scripts, special, vqa[:8]]
    separators = ["", " ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u3000", "\r\n"]
    mixed = []
    while len(mixed) < 300:
        parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 12))]
        text = parts[0]
        for p in parts[1:]:
            text += rng.choice(separators) + p
        if rng.random() < 0.3:
            text = text.upper() if rng.random() < 0.5 else text.title()
        mixed.append(text)
    out = []
    for s in fixed + mixed:
        if s not in out:
            out.append(s)
    return out


def embed_questions() -> list[str]:
    """Questions for the text embeddings: short, typical, one segment exactly full, one token
    into a second segment, two and three segments, special-token text."""
    return ["What is the color of the bus?", "How many people are in the image?", "", "Describe the image in detail.",
            "What brand is the laptop?\nReference OCR token: DELL, Inspiron, 15, Intel",
            "Which of the following is the capital of France?\nA. Berlin\nB. Paris\nC. Rome\nD. Madrid",
            "Is there a dog in the picture? It's hard to tell — café, 日本語, 🙂.",
            "a " * 75, "a " * 76, "a " * 153,
            ("In this detailed photograph taken at a busy city intersection during the late afternoon, several "
             "pedestrians wait at the crosswalk while a red double-decker bus, two yellow taxis and a cyclist pass "
             "by; what is the number displayed on the front of the bus, and does it match the route shown on the "
             "sign attached to the lamp post on the right-hand side of the street?"),
            "What is written on the storefront?\nReference OCR token: " + ", ".join(f"TOKEN{i}" for i in range(90)),
            "x <|endoftext|> y <|startoftext|> z"]


def draw_weights(model: torch.nn.Module, seed: int) -> None:
    """Seeded values for every parameter: matrices ~ N(0, 1/fan_in), norm weights ~ U(0.8, 1.2),
    biases ~ N(0, 0.1^2), token and position embeddings ~ N(0, 0.5^2), class embedding ~ N(0, 1)
    (so attention is far from uniform and every masked key matters)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            shape = param.shape
            if name.endswith("embedding.weight"):
                value = torch.randn(shape, generator=gen) * 0.5
            elif name.endswith("class_embedding"):
                value = torch.randn(shape, generator=gen)
            elif name.endswith(".bias"):
                value = torch.randn(shape, generator=gen) * 0.1
            elif param.dim() == 1:
                value = 0.8 + 0.4 * torch.rand(shape, generator=gen)
            elif name == "logit_scale":
                continue
            else:
                fan_in = int(torch.tensor(shape[1:]).prod())
                value = torch.randn(shape, generator=gen) / fan_in ** 0.5
            param.copy_(value)


def official_text_embeds(tokenizer, text_tower, text: str) -> tuple[list[int], torch.Tensor, list[torch.Tensor]]:
    """CDPruner's ``CLIPVisionTower.forward`` text branch (clip_encoder.py, restated): tokenize the
    whole question, pad ids and mask with zeros to a multiple of max_position_embeddings, reshape
    to segments of that length and run the text tower on all of them. Returns the ids, the
    text_embeds [segments, projection_dim] and the padded segments."""
    max_positions = text_tower.config.max_position_embeddings
    text_inputs = tokenizer(text=text, return_tensors="pt")
    length = text_inputs.input_ids.shape[1]
    text_segment = (length - 1) // max_positions + 1
    text_padding = max_positions * text_segment - length
    text_inputs = {k: torch.cat([v, v.new_zeros((v.shape[0], text_padding))], dim=1).reshape(-1, max_positions)
                   for k, v in text_inputs.items()}
    with torch.no_grad():
        embeds = text_tower(**text_inputs).text_embeds
    return text_inputs["input_ids"].reshape(-1)[:length].tolist(), embeds, [text_inputs["input_ids"]]


def pooled_positions(segments: torch.Tensor, eos_token_id: int) -> list[int]:
    """transformers' pooling rule (CLIPTextModel.forward), for the record."""
    if eos_token_id == 2:
        return segments.to(torch.int).argmax(dim=-1).tolist()
    return (segments.to(torch.int) == eos_token_id).int().argmax(dim=-1).tolist()


def simple_tokenizer(bpe_lines: list[str], folder: Path):
    """OpenAI's SimpleTokenizer (open_clip/tokenizer.py) on the same merges."""
    spec = importlib.util.spec_from_file_location("open_clip_tokenizer", open_clip_file("tokenizer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = folder / "bpe_small.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(bpe_lines))
    return module.SimpleTokenizer(bpe_path=str(path))


def unicode_classes() -> dict[str, list[list[int]]]:
    """Code points matched by \\p{L}, \\p{N} and \\s in the tokenizers library's regex engine."""
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]

    def matching(pattern: str) -> list[list[int]]:
        split = pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True)
        hits = []
        for i in range(0, len(points), 20000):
            chunk = "".join(chr(c) for c in points[i:i + 20000])
            hits += [ord(ch) for piece, _ in split.pre_tokenize_str(chunk) for ch in piece]
        ranges: list[list[int]] = []
        for c in sorted(set(hits)):
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])
        return ranges

    return {"letter": matching(r"\p{L}"), "number": matching(r"\p{N}"), "space": matching(r"\s")}


def write_json(path: Path, data, indent=None) -> None:
    """ASCII JSON: every other character escaped (Foundation's JSON reader drops a raw U+FEFF
    inside a string; escaped, it survives)."""
    path.write_text(json.dumps(data, indent=indent, ensure_ascii=True) + "\n", encoding="utf-8")


def main() -> None:
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for path in OUT_DIR.iterdir():  # everything but README.md, which describes the files
        if path.is_dir():
            shutil.rmtree(path)
        elif path.name != "README.md":
            path.unlink()
    model_dir = OUT_DIR / "model"
    model_dir.mkdir()

    vocab, merges, bpe_lines = write_vocabulary(model_dir)
    config = CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=PROJECTION_DIM)
    model = CLIPModel(config)
    draw_weights(model, SEED)
    model.save_pretrained(model_dir)
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "merges.txt", "model.safetensors", "vocab.json"]

    # The second config: the real EOS id (first-EOS pooling) and exact GELU, same weights.
    first_eos = json.loads((model_dir / "config.json").read_text())
    first_eos["text_config"]["eos_token_id"] = EOS_ID
    first_eos["text_config"]["hidden_act"] = "gelu"
    write_json(OUT_DIR / "config_first_eos.json", first_eos, indent=2)

    tokenizer = CLIPTokenizerFast.from_pretrained(model_dir)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, len(tokenizer)) == (BOS_ID, EOS_ID, VOCAB_SIZE)
    direct = CLIPTokenizerFast(vocab=vocab, merges=merges)

    with tempfile.TemporaryDirectory() as tmp:
        simple = simple_tokenizer(bpe_lines, Path(tmp))
        cases, differences = [], []
        for text in test_strings():
            ids = tokenizer(text).input_ids
            assert direct(text).input_ids == ids, text
            cases.append({"text": text, "ids": ids})
            if simple.encode(text) != ids[1:-1]:
                differences.append(text)
        write_json(OUT_DIR / "tokenizer_cases.json", cases)
        print(f"{len(cases)} tokenizer cases; OpenAI's SimpleTokenizer differs on {len(differences)}, "
              f"{sum(t in differences for t in fixed_strings())} of them hand-picked:")
        for text in fixed_strings():
            if text in differences:
                print("   ", repr(text)[:70])

        # CLIPTextModelWithProjection reads text_config alone, text_config_dict or not.
        probe = Path(tmp) / "probe"
        shutil.copytree(model_dir, probe)
        data = json.loads((probe / "config.json").read_text())
        data["text_config_dict"] = {"hidden_size": 64}
        write_json(probe / "config.json", data)
        assert CLIPTextModelWithProjection.from_pretrained(probe).config.eos_token_id == 2

        embeds = {}
        for name, folder_config in [("legacy_eos", None), ("first_eos", first_eos)]:
            folder = model_dir
            if folder_config is not None:
                folder = Path(tmp) / name
                shutil.copytree(model_dir, folder)
                write_json(folder / "config.json", folder_config)
            tower = CLIPTextModelWithProjection.from_pretrained(folder).eval()
            eager = CLIPTextModelWithProjection.from_pretrained(folder, attn_implementation="eager").eval()
            eos = tower.config.eos_token_id
            assert eos == (2 if folder_config is None else EOS_ID)
            rows = []
            for text in embed_questions():
                ids, text_embeds, (segments,) = official_text_embeds(tokenizer, tower, text)
                _, eager_embeds, _ = official_text_embeds(tokenizer, eager, text)
                assert (text_embeds - eager_embeds).abs().max() <= 2e-6
                rows.append({"text": text, "ids": ids, "segments": segments.shape[0],
                             "pooled_positions": pooled_positions(segments, eos),
                             "text_embeds": text_embeds.tolist()})
            embeds[name] = rows
            print(name, [r["segments"] for r in rows], [r["pooled_positions"] for r in rows if r["segments"] > 1])
        write_json(OUT_DIR / "text_embeds.json", embeds)

    vision = CLIPVisionModelWithProjection.from_pretrained(model_dir).eval()
    features = torch.randn((IMAGE_ROWS, VISION["hidden_size"]), generator=torch.Generator().manual_seed(SEED + 1))
    with torch.no_grad():
        image_embeds = vision.visual_projection(vision.vision_model.post_layernorm(features).float())
    save_file({"features": features.contiguous(), "image_embeds": image_embeds.contiguous()},
              OUT_DIR / "image_embeds.safetensors", metadata={"format": "pt"})

    write_json(OUT_DIR / "unicode_classes.json", unicode_classes())
    total = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    print(f"wrote {OUT_DIR} ({total / 1e6:.2f} MB), transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
