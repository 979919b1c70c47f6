"""WordPiece tokenizers with Hugging Face `tokenizers`: train one on your corpus, or import an existing vocab.txt.

The pipeline is BERT's: BertNormalizer (clean text, CJK characters split into single tokens, optional lowercase and
accent stripping) -> BertPreTokenizer -> WordPiece (`##` continuation) -> `[CLS] A [SEP] B [SEP]`. A tokenizer
folder holds vocab.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json, which
`transformers.BertTokenizerFast` / `ElectraTokenizerFast` load with `from_pretrained(folder)`.

    electra tokenizer train --input corpus/ --vocab-size 30522 --out runs/tok
    electra tokenizer train --input zhwiki.tar.gz --vocab-size 21128 --opencc t2s --out runs/tok-zh
    electra tokenizer import --vocab ../shared/data/vocab/bert-base-uncased.txt --out runs/tok-bert

In Python: `load_tokenizer(path)` (a folder or a vocab.txt) and `special_ids(tok)`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from electra.errors import ElectraError
from electra.readers import FORMATS, ReadStats, iter_documents, make_converter

SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def build_tokenizer(vocab: dict[str, int] | None = None, lowercase: bool = True,
                    strip_accents: bool | None = None) -> Tokenizer:
    """A BERT-style WordPiece tokenizer around `vocab` (None: empty, to be trained). strip_accents=None follows
    lowercase, as in BERT."""
    tok = Tokenizer(models.WordPiece(vocab or {}, unk_token=SPECIAL_TOKENS["unk"], max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=strip_accents, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    if vocab:
        special_ids(tok)  # before registering them, which would append missing ones to the vocab
        tok.add_special_tokens(list(SPECIAL_TOKENS.values()))  # "[MASK]" typed in text is the token, as in BERT
        _add_post_processor(tok)
    return tok


def _add_post_processor(tok: Tokenizer) -> None:
    ids = special_ids(tok)
    cls, sep = SPECIAL_TOKENS["cls"], SPECIAL_TOKENS["sep"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, ids["cls"]), (sep, ids["sep"])],
    )


def train_tokenizer(inputs: list[str], vocab_size: int, lowercase: bool = True, strip_accents: bool | None = None,
                    min_frequency: int = 2, limit_alphabet: int | None = 1000, fmt: str = "auto",
                    text_field: str = "text", opencc: str | None = None,
                    stats: ReadStats | None = None) -> Tokenizer:
    """Train a WordPiece vocab of `vocab_size` on the inputs (streamed; any format `electra.readers` reads)."""
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ElectraError(f"--vocab-size must be at least {len(SPECIAL_TOKENS) + 1}, got {vocab_size}")
    convert = make_converter(opencc)
    stats = stats if stats is not None else ReadStats()
    tok = build_tokenizer(None, lowercase=lowercase, strip_accents=strip_accents)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS.values()),
        limit_alphabet=limit_alphabet, continuing_subword_prefix="##", show_progress=False,
    )

    def paragraphs():
        for doc in iter_documents(inputs, fmt=fmt, text_field=text_field, stats=stats):
            yield from (convert(p) for p in doc) if convert else doc

    tok.train_from_iterator(paragraphs(), trainer=trainer)
    if stats.documents == 0:
        raise stats.no_text_error(inputs)
    _add_post_processor(tok)
    return tok


def read_vocab(path: str | os.PathLike) -> dict[str, int]:
    """A vocab.txt (one token per line, id = line number) as a dict; ElectraError if unreadable or duplicated."""
    path = Path(path)
    if not path.is_file():
        raise ElectraError(f"vocab file {path} not found")
    try:
        tokens = path.read_text(encoding="utf-8").split("\n")  # not splitlines(): tokens may be U+2028 and kin
    except UnicodeDecodeError as e:
        raise ElectraError(f"vocab file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if tokens and tokens[-1] == "":
        tokens.pop()
    vocab: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if token in vocab:
            raise ElectraError(f"vocab file {path} line {i + 1}: token '{token}' already on line {vocab[token] + 1}")
        vocab[token] = i
    if not vocab:
        raise ElectraError(f"vocab file {path} is empty")
    return vocab


def tokenizer_from_vocab(path: str | os.PathLike, lowercase: bool = True,
                         strip_accents: bool | None = None) -> Tokenizer:
    """A full tokenizer around an existing vocab.txt (e.g. BERT's); ElectraError if a special token is missing."""
    vocab = read_vocab(path)
    try:
        return build_tokenizer(vocab, lowercase=lowercase, strip_accents=strip_accents)
    except ElectraError as e:  # name the file
        raise ElectraError(f"vocab file {path}: {e}") from None


def _normalizer_options(tok: Tokenizer) -> tuple[bool, bool | None]:
    norm = json.loads(tok.to_str()).get("normalizer") or {}
    return bool(norm.get("lowercase", False)), norm.get("strip_accents")


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """A tokenizer from a folder (tokenizer.json, or just vocab.txt + optional tokenizer_config.json) or a vocab.txt."""
    path = Path(path)
    if path.is_file():
        return tokenizer_from_vocab(path)
    if not path.is_dir():
        raise ElectraError(f"tokenizer folder {path} not found (train one with `electra tokenizer train`)")
    if (path / "tokenizer.json").is_file():
        try:
            tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise ElectraError(f"{path / 'tokenizer.json'} is not a valid tokenizer file ({e})") from None
        special_ids(tok)
        return tok
    if (path / "vocab.txt").is_file():
        config = {}
        if (path / "tokenizer_config.json").is_file():
            config = json.loads((path / "tokenizer_config.json").read_text())
        return tokenizer_from_vocab(path / "vocab.txt", lowercase=config.get("do_lower_case", True),
                                    strip_accents=config.get("strip_accents"))
    raise ElectraError(f"tokenizer folder {path} has neither tokenizer.json nor vocab.txt")


def special_ids(tok: Tokenizer) -> dict[str, int]:
    """Ids of pad, unk, cls, sep and mask; ElectraError naming the ones the vocab lacks."""
    ids = {key: tok.token_to_id(token) for key, token in SPECIAL_TOKENS.items()}
    missing = [SPECIAL_TOKENS[k] for k, v in ids.items() if v is None]
    if missing:
        raise ElectraError(f"the vocab lacks the special token(s) {', '.join(missing)}")
    return ids


def fingerprint(tok: Tokenizer) -> str:
    """A short hash of everything that decides token ids (vocab, normalizer, pre-tokenizer, post-processor)."""
    return hashlib.sha256(tok.to_str().encode()).hexdigest()[:16]


def save_tokenizer_folder(tok: Tokenizer, out_dir: str | os.PathLike, lowercase: bool | None = None) -> Path:
    """Write vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json into out_dir (created).

    lowercase=None reads it from the tokenizer's normalizer; it becomes `do_lower_case` for transformers.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    norm_lower, strip_accents = _normalizer_options(tok)
    lowercase = norm_lower if lowercase is None else lowercase
    special_ids(tok)
    vocab = tok.get_vocab(with_added_tokens=True)
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ElectraError("the tokenizer's ids are not contiguous from 0; cannot write vocab.txt")
    (out_dir / "vocab.txt").write_text("".join(t + "\n" for t, _ in by_id), encoding="utf-8")
    tok.save(str(out_dir / "tokenizer.json"))
    specials = {f"{k}_token": v for k, v in SPECIAL_TOKENS.items()}
    config = {
        "tokenizer_class": "ElectraTokenizer", "do_lower_case": lowercase, "strip_accents": strip_accents,
        "tokenize_chinese_chars": True, "model_max_length": 512, "clean_up_tokenization_spaces": True, **specials,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
    return out_dir


def _write_folder_atomically(tok: Tokenizer, out: Path, overwrite: bool) -> None:
    """Write the folder under a temporary name, then rename: an interrupted run leaves no half-written folder."""
    if out.exists() and not overwrite:
        raise ElectraError(f"output folder {out} exists; pass --overwrite to replace it")
    if out.exists() and (not out.is_dir() or any(p.name not in FILES for p in out.iterdir())):
        raise ElectraError(f"refusing to overwrite {out}: it is not a tokenizer folder")
    tmp = out.with_name(f"{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        save_tokenizer_folder(tok, tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = sub.add_parser("train", help="train a WordPiece vocab on a corpus",
                           description="Train a BERT-style WordPiece tokenizer on text, JSONL or WikiExtractor "
                                       "files (also .gz, folders, globs, tar archives).")
    train.add_argument("--input", nargs="+", required=True, metavar="PATH", help="files, folders, globs or archives")
    train.add_argument("--vocab-size", type=int, required=True, metavar="N", help="vocab size including specials")
    train.add_argument("--min-frequency", type=int, default=2, metavar="N", help="drop merges seen fewer times (2)")
    train.add_argument("--limit-alphabet", type=int, default=1000, metavar="N",
                       help="keep at most N distinct characters; rarer ones become [UNK] (1000)")
    train.add_argument("--format", choices=FORMATS, default="auto", help="input format (auto: sniff each file)")
    train.add_argument("--text-field", default="text", help="JSONL field holding the text (text)")
    train.add_argument("--opencc", metavar="CONFIG", help="OpenCC conversion before training, e.g. t2s")
    import_ = sub.add_parser("import", help="turn an existing vocab.txt into a tokenizer folder",
                             description="Wrap an existing WordPiece vocab.txt (e.g. BERT's) into a tokenizer "
                                         "folder that electra and transformers load.")
    import_.add_argument("--vocab", required=True, metavar="FILE", help="vocab.txt, one token per line")
    for p in (train, import_):
        p.add_argument("--out", required=True, metavar="DIR", help="output tokenizer folder")
        p.add_argument("--no-lowercase", dest="lowercase", action="store_false",
                       help="keep case (default: lowercase, as BERT uncased and Chinese BERT)")
        accents = p.add_mutually_exclusive_group()
        accents.add_argument("--strip-accents", dest="strip_accents", action="store_true", default=None,
                             help="strip accents (default: strip when lowercasing)")
        accents.add_argument("--keep-accents", dest="strip_accents", action="store_false",
                             help="keep accents even when lowercasing")
        p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ElectraError(f"output folder {out} exists; pass --overwrite to replace it")
    if args.action == "train":
        stats = ReadStats()
        tok = train_tokenizer(args.input, args.vocab_size, lowercase=args.lowercase, strip_accents=args.strip_accents,
                              min_frequency=args.min_frequency, limit_alphabet=args.limit_alphabet, fmt=args.format,
                              text_field=args.text_field, opencc=args.opencc, stats=stats)
        for line in stats.warnings():
            print(line, file=sys.stderr)
        source = f"{stats.documents:,} documents, {stats.text_chars / 1e6:.1f} M characters"
    else:
        tok = tokenizer_from_vocab(args.vocab, lowercase=args.lowercase, strip_accents=args.strip_accents)
        source = args.vocab
    _write_folder_atomically(tok, out, args.overwrite)
    print(f"wrote {out}: vocab {tok.get_vocab_size():,} from {source} (fingerprint {fingerprint(tok)})")
    return 0
