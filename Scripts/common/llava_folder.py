"""Files every Hugging Face LLaVA-1.5 folder needs, shared by the scripts that write such folders
(Scripts/reference, Scripts/bench, Models/recipe): the Llama-style SentencePiece tokenizer and
CLIPImageProcessor's preprocessor_config.json."""

from __future__ import annotations

import io

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def train_llama_tokenizer(lines, vocab_size: int, character_coverage: float = 1.0, **options) -> bytes:
    """A SentencePiece model set up as Llama's: BPE with byte fallback, identity normalisation, a dummy
    prefix, whitespace kept as it is, digits split, unk 0 / bos 1 / eos 2 and no pad. Trained on `lines`
    (an iterable of str); `options` add or override trainer settings. Returns the serialized model."""
    import sentencepiece as spm  # only for training; the JSON helpers need nothing
    settings = dict(
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=character_coverage,
        byte_fallback=True,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    settings.update(options)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buffer, **settings)
    return buffer.getvalue()


def preprocessor_config(image_size: int) -> dict:
    """CLIPImageProcessor as llava-hf ships it: shortest edge resized (bicubic) to image_size, centre crop
    image_size x image_size, rescale 1/255, CLIP mean and std."""
    return {
        "crop_size": {"height": image_size, "width": image_size},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": CLIP_MEAN,
        "image_processor_type": "CLIPImageProcessor",
        "image_std": CLIP_STD,
        "processor_class": "LlavaProcessor",
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": image_size},
    }


def tokenizer_config(image_token_id: int, pad_token_id: int, model_max_length: int,
                     processor_class: bool = True) -> dict:
    """tokenizer_config.json of a llava-hf folder: LlamaTokenizer with BOS added, unk 0 / bos 1 / eos 2,
    and the `<image>` and `<pad>` tokens appended after the SentencePiece pieces."""

    def added(content: str) -> dict:
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                "single_word": False, "special": True}

    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {"0": added("<unk>"), "1": added("<s>"), "2": added("</s>"),
                                 str(image_token_id): added("<image>"), str(pad_token_id): added("<pad>")},
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": False,
        "model_max_length": model_max_length,
        "pad_token": "<pad>",
        "padding_side": "left",
        "processor_class": "LlavaProcessor",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
    }
    if not processor_class:
        del config["processor_class"]
    return config
