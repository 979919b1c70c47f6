"""WordPiece tokenizers with Hugging Face `tokenizers`: train one on your corpus, or import an existing vocab.txt.

The pipeline is BERT's: BertNormalizer (clean text, CJK characters split into single tokens, optional lowercase and
accent stripping) -> BertPreTokenizer -> WordPiece (`##` continuation) -> `[CLS] A [SEP] B [SEP]`. A tokenizer
folder holds vocab.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json, which
`transformers.BertTokenizerFast` / `ElectraTokenizerFast` load with `from_pretrained(folder)`.

Normalisation lives in the folder: `--opencc t2s` at training (or import) time puts OpenCC's character table in front
of the BertNormalizer inside tokenizer.json (a `Precompiled` character map), so everything that loads the folder
(prepare, finetune, evaluate, predict, detect, `load_tokenizer`, transformers) converts Traditional to Simplified
with no flag. The alphabet is chosen from the data (`--limit-alphabet auto`), and training ends with a coverage line:
the characters kept and the [UNK] rate on held-out paragraphs of the input (a warning above 1%).

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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from electra.errors import ElectraError
from electra.charmap import opencc_charmap, precompiled_charsmap
from electra.readers import FORMATS, ReadStats, iter_documents

SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
OPENCC_KEY = "electra_opencc"  # in tokenizer_config.json: the OpenCC conversion built into tokenizer.json
HOLDOUT_EVERY = 50  # every 50th paragraph of the input is held out of training to measure [UNK] ...
HOLDOUT_MAX_CHARS = 1_000_000  # ... up to this many characters
UNK_WARN = 0.01  # warn when more than 1% of held-out tokens are [UNK]


def build_tokenizer(vocab: dict[str, int] | None = None, lowercase: bool = True,
                    strip_accents: bool | None = None, opencc: str | None = None) -> Tokenizer:
    """A BERT-style WordPiece tokenizer around `vocab` (None: empty, to be trained). strip_accents=None follows
    lowercase, as in BERT. `opencc` (e.g. t2s) puts that character conversion in front of the BertNormalizer."""
    tok = Tokenizer(models.WordPiece(vocab or {}, unk_token=SPECIAL_TOKENS["unk"], max_input_chars_per_word=100))
    bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents,
                                      lowercase=lowercase)
    tok.normalizer = bert if not opencc else normalizers.Sequence(
        [normalizers.Precompiled(precompiled_charsmap(opencc_charmap(opencc))), bert])
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


@dataclass
class Coverage:
    """What a trained vocab covers: the alphabet kept from the characters seen, and [UNK] on held-out paragraphs."""

    chars_seen: int = 0  # distinct characters in the training text (after normalisation)
    chars_kept: int = 0  # of which the vocab holds
    rule: str = ""  # how the alphabet was chosen
    heldout_paragraphs: int = 0
    heldout_tokens: int = 0
    heldout_unk: int = 0

    @property
    def unk_rate(self) -> float:
        return self.heldout_unk / max(1, self.heldout_tokens)

    def line(self) -> str:
        unk = (f"[UNK] {self.unk_rate:.2%} of {self.heldout_tokens:,} tokens in {self.heldout_paragraphs:,} held-out "
               "paragraphs" if self.heldout_paragraphs else "[UNK] not measured (too little text to hold any out)")
        return f"coverage: alphabet {self.chars_kept:,} of {self.chars_seen:,} characters ({self.rule}); {unk}"

    def warning(self) -> str | None:
        if self.unk_rate <= UNK_WARN:
            return None
        return (f"warning: {self.unk_rate:.1%} of held-out tokens are [UNK]: raise --vocab-size or --limit-alphabet "
                "(Chinese needs several thousand characters), or lower --min-frequency")


def unk_rate(tok: Tokenizer, texts: list[str]) -> tuple[int, int]:
    """(number of [UNK] tokens, number of tokens) when encoding `texts` without [CLS]/[SEP]."""
    unk, total = special_ids(tok)["unk"], 0
    count = 0
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        total += len(enc.ids)
        count += sum(1 for i in enc.ids if i == unk)
    return count, total


def _drop_spaces(counts: Counter) -> Counter:
    for char in [c for c in counts if c.isspace()]:
        del counts[char]
    return counts


def auto_alphabet(counts: Counter, vocab_size: int, min_frequency: int) -> tuple[int, str]:
    """--limit-alphabet auto: every character seen at least min_frequency times (so a Chinese corpus keeps its
    thousands of characters), but at most half the vocab (the most frequent), leaving the rest for words."""
    frequent = sum(1 for n in counts.values() if n >= min_frequency)
    cap = max(1, vocab_size // 2)
    if frequent <= cap:
        return frequent, f"auto: every character seen {min_frequency}+ times"
    return cap, f"auto: the {cap:,} most frequent, half the vocab"


def train_tokenizer(inputs: list[str], vocab_size: int, lowercase: bool = True, strip_accents: bool | None = None,
                    min_frequency: int = 2, limit_alphabet: int | None | str = "auto", fmt: str = "auto",
                    text_field: str = "text", opencc: str | None = None,
                    stats: ReadStats | None = None, coverage: Coverage | None = None) -> Tokenizer:
    """Train a WordPiece vocab of `vocab_size` on the inputs (streamed; any format `electra.readers` reads).

    limit_alphabet: "auto" (see auto_alphabet; costs one extra read of the input), N (the N most frequent
    characters) or None (all). Every HOLDOUT_EVERY-th paragraph is held out of training and `coverage` (if given)
    gets the [UNK] rate on it. `opencc` is built into the tokenizer's normalizer, so it applies at every encode."""
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ElectraError(f"--vocab-size must be at least {len(SPECIAL_TOKENS) + 1}, got {vocab_size}")
    stats = stats if stats is not None else ReadStats()
    coverage = coverage if coverage is not None else Coverage()
    tok = build_tokenizer(None, lowercase=lowercase, strip_accents=strip_accents, opencc=opencc)
    normalize = tok.normalizer.normalize_str

    def paragraphs(read_stats: ReadStats, heldout: list[str] | None, counts: Counter | None):
        held_chars, k = 0, 0
        for doc in iter_documents(inputs, fmt=fmt, text_field=text_field, stats=read_stats):
            for p in doc:
                k += 1
                if k % HOLDOUT_EVERY == 0 and held_chars < HOLDOUT_MAX_CHARS:
                    held_chars += len(p)
                    if heldout is not None:
                        heldout.append(p)
                    continue
                if counts is not None:
                    counts.update(normalize(p))
                yield p

    counts: Counter = Counter()
    counted = limit_alphabet == "auto"
    if counted:  # a first read to count characters
        for _ in paragraphs(ReadStats(), None, counts):
            pass
        limit_alphabet, coverage.rule = auto_alphabet(_drop_spaces(counts), vocab_size, min_frequency)
    else:
        coverage.rule = f"--limit-alphabet {limit_alphabet}" if limit_alphabet is not None else "every character"
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS.values()),
        limit_alphabet=limit_alphabet, continuing_subword_prefix="##", show_progress=False,
    )
    heldout: list[str] = []
    tok.train_from_iterator(paragraphs(stats, heldout, None if counted else counts), trainer=trainer)
    if stats.documents == 0:
        raise stats.no_text_error(inputs)
    _add_post_processor(tok)
    _drop_spaces(counts)
    coverage.chars_seen = len(counts)
    coverage.chars_kept = sum(1 for c in counts if tok.token_to_id(c) is not None)
    coverage.heldout_paragraphs = len(heldout)
    coverage.heldout_unk, coverage.heldout_tokens = unk_rate(tok, heldout)
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


def tokenizer_from_vocab(path: str | os.PathLike, lowercase: bool = True, strip_accents: bool | None = None,
                         opencc: str | None = None) -> Tokenizer:
    """A full tokenizer around an existing vocab.txt (e.g. BERT's); ElectraError if a special token is missing."""
    vocab = read_vocab(path)
    try:
        return build_tokenizer(vocab, lowercase=lowercase, strip_accents=strip_accents, opencc=opencc)
    except ElectraError as e:  # name the file
        raise ElectraError(f"vocab file {path}: {e}") from None


def _normalizer_options(tok: Tokenizer) -> tuple[bool, bool | None]:
    norm = json.loads(tok.to_str()).get("normalizer") or {}
    norm = next((n for n in norm.get("normalizers", []) if n.get("type") == "BertNormalizer"), norm)  # a Sequence
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
        tok.no_truncation()  # a model folder's tokenizer.json may cut and pad (sentence-transformers: 128); we never do
        tok.no_padding()
        special_ids(tok)
        return tok
    if (path / "vocab.txt").is_file():
        config = {}
        if (path / "tokenizer_config.json").is_file():
            config = json.loads((path / "tokenizer_config.json").read_text())
        return tokenizer_from_vocab(path / "vocab.txt", lowercase=config.get("do_lower_case", True),
                                    strip_accents=config.get("strip_accents"), opencc=config.get(OPENCC_KEY))
    raise ElectraError(f"tokenizer folder {path} has neither tokenizer.json nor vocab.txt")


def special_ids(tok: Tokenizer) -> dict[str, int]:
    """Ids of pad, unk, cls, sep and mask; ElectraError naming the ones the vocab lacks."""
    ids = {key: tok.token_to_id(token) for key, token in SPECIAL_TOKENS.items()}
    missing = [SPECIAL_TOKENS[k] for k, v in ids.items() if v is None]
    if missing:
        raise ElectraError(f"the vocab lacks the special token(s) {', '.join(missing)}")
    return ids


def fingerprint(tok: Tokenizer) -> str:
    """A short hash of everything that decides token ids (vocab, normalizer, pre-tokenizer, post-processor): it
    changes with a conversion or a lowercase switch too. Compare vocabularies with vocab_hash."""
    return hashlib.sha256(tok.to_str().encode()).hexdigest()[:16]


def vocab_hash(tok: Tokenizer) -> str:
    """A short hash of the token -> id table (vocab.txt's content, special tokens included): what a model's
    embedding rows mean. Two tokenizers of the same size but different vocabularies differ here."""
    by_id = sorted(tok.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
    return hashlib.sha256("".join(f"{i}\t{t}\n" for t, i in by_id).encode()).hexdigest()[:16]


def check_vocab(tok: Tokenizer, expected: str | None, tokenizer_source, model_source) -> None:
    """ElectraError naming both sides when `tok`'s vocab_hash is not `expected` (None: nothing recorded, pass)."""
    if expected and vocab_hash(tok) != expected:
        raise ElectraError(f"tokenizer {tokenizer_source} (vocab {vocab_hash(tok)}, {tok.get_vocab_size():,} "
                           f"tokens) is not the vocabulary of {model_source} (vocab {expected}); use the tokenizer "
                           "it was trained with")


def save_tokenizer_folder(tok: Tokenizer, out_dir: str | os.PathLike, lowercase: bool | None = None,
                          opencc: str | None = None) -> Path:
    """Write vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json into out_dir (created).

    lowercase=None reads it from the tokenizer's normalizer; it becomes `do_lower_case` for transformers. `opencc`
    names the conversion built into the tokenizer (recorded for readers and for a folder reduced to vocab.txt).
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
    if '"Precompiled"' in tok.to_str():  # a built-in conversion, which transformers' Bert/ElectraTokenizer would
        # drop (they rebuild a plain BertNormalizer): have transformers load tokenizer.json as it is
        config.update({"tokenizer_class": "PreTrainedTokenizerFast",
                       "model_input_names": ["input_ids", "token_type_ids", "attention_mask"]})
    if opencc:
        config[OPENCC_KEY] = opencc
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
    return out_dir


def _write_folder_atomically(tok: Tokenizer, out: Path, overwrite: bool, opencc: str | None = None) -> None:
    """Write the folder under a temporary name, then rename: an interrupted run leaves no half-written folder."""
    if out.exists() and not overwrite:
        raise ElectraError(f"output folder {out} exists; pass --overwrite to replace it")
    if out.exists() and (not out.is_dir() or any(p.name not in FILES for p in out.iterdir())):
        raise ElectraError(f"refusing to overwrite {out}: it is not a tokenizer folder")
    tmp = out.with_name(f"{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        save_tokenizer_folder(tok, tmp, opencc=opencc)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _alphabet_limit(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got '{value}'") from None


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = sub.add_parser("train", help="train a WordPiece vocab on a corpus",
                           description="Train a BERT-style WordPiece tokenizer on text, JSONL or WikiExtractor "
                                       "files (also .gz, folders, globs, tar archives).")
    train.add_argument("--input", nargs="+", required=True, metavar="PATH", help="files, folders, globs or archives")
    train.add_argument("--vocab-size", type=int, required=True, metavar="N", help="vocab size including specials")
    train.add_argument("--min-frequency", type=int, default=2, metavar="N", help="drop merges seen fewer times (2)")
    train.add_argument("--limit-alphabet", type=_alphabet_limit, default="auto", metavar="N",
                       help="keep at most N distinct characters, rarer ones become [UNK] (auto: every character "
                            "seen --min-frequency times, at most half the vocab; a Chinese corpus keeps thousands)")
    train.add_argument("--format", choices=FORMATS, default="auto", help="input format (auto: sniff each file)")
    train.add_argument("--text-field", default="text", help="JSONL field holding the text (text)")
    import_ = sub.add_parser("import", help="turn an existing vocab.txt into a tokenizer folder",
                             description="Wrap an existing WordPiece vocab.txt (e.g. BERT's) into a tokenizer "
                                         "folder that electra and transformers load.")
    import_.add_argument("--vocab", required=True, metavar="FILE", help="vocab.txt, one token per line")
    for p in (train, import_):
        p.add_argument("--out", required=True, metavar="DIR", help="output tokenizer folder")
        p.add_argument("--opencc", metavar="CONFIG",
                       help="build an OpenCC character conversion into the tokenizer, e.g. t2s (Traditional -> "
                            "Simplified): every later use of the folder (prepare, finetune, predict...) applies it")
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
        stats, coverage = ReadStats(), Coverage()
        tok = train_tokenizer(args.input, args.vocab_size, lowercase=args.lowercase, strip_accents=args.strip_accents,
                              min_frequency=args.min_frequency, limit_alphabet=args.limit_alphabet, fmt=args.format,
                              text_field=args.text_field, opencc=args.opencc, stats=stats, coverage=coverage)
        for line in stats.warnings():
            print(line, file=sys.stderr)
        source = f"{stats.documents:,} documents, {stats.text_chars / 1e6:.1f} M characters"
    else:
        tok = tokenizer_from_vocab(args.vocab, lowercase=args.lowercase, strip_accents=args.strip_accents,
                                   opencc=args.opencc)
        source, coverage = args.vocab, None
    _write_folder_atomically(tok, out, args.overwrite, opencc=args.opencc)
    conversion = f", OpenCC {args.opencc} built in" if args.opencc else ""
    print(f"wrote {out}: vocab {tok.get_vocab_size():,} from {source} (vocab {vocab_hash(tok)}{conversion})")
    if coverage is not None:
        print(coverage.line())
        if coverage.warning():
            print(coverage.warning(), file=sys.stderr)
    return 0
