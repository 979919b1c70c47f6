"""Using pretrained models directly: fill-mask and infilling with the generator, replaced-token detection with the
discriminator. Three commands and their Python equivalents:

    electra fill-mask --model hf/generator "The capital of France is [MASK]."          # top-k fillers per [MASK]
    electra detect --model hf/discriminator "The cat sat on the moon." --html out.html  # p(replaced) per token
    electra infill --model hf/generator "The [MASK] [MASK] of France is Paris."        # iterative mask-predict

    from electra.usage import load_model, fill_mask, detect, infill
    gen = load_model("hf/generator", "generator")
    fill_mask(gen, "The capital of France is [MASK].", top_k=5)   # [[("paris", 0.41), ...]], one list per [MASK]
    disc = load_model("hf/discriminator", "discriminator")
    detect(disc, ["The cat sat on the moon."])[0].words()          # [("the", 0.01), ..., ("moon", 0.93)]
    infill(gen, "The [MASK] [MASK] of France is Paris.", iterations=4).text

`--model` takes an HF folder (ElectraForMaskedLM for the generator, ElectraForPreTraining for the discriminator) or
one of our pretraining runs or checkpoints (the right half is picked, through `electra.checkpoint`).

Infilling here is an encoder filling blanks, not left-to-right language modelling: the number of blanks is fixed by
the input, and every blank is predicted from both sides at once. `infill` is mask-predict (Ghazvininejad et al.,
2019): predict every blank, re-mask the n least confident (n falls linearly to 0 over the iterations), predict those
again; with a discriminator, the tokens it finds most likely "replaced" are re-masked instead.
"""
from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from electra.errors import ElectraError
from electra.files import write_text

MASK_TEXT = "[MASK]"
WHICH_KIND = {"generator": "masked-lm", "discriminator": "pretraining"}


@dataclass
class LoadedModel:
    """A task model in eval mode with its tokenizer and special ids."""

    model: torch.nn.Module  # electra.model.TaskModel
    tokenizer: object  # tokenizers.Tokenizer
    special: dict  # pad, unk, cls, sep, mask -> id
    path: Path

    @property
    def max_len(self) -> int:
        return self.model.cfg.max_position_embeddings


def load_model(path, which: str, tokenizer=None) -> LoadedModel:
    """Load the generator ("generator": ElectraForMaskedLM) or discriminator ("discriminator": ElectraForPreTraining)
    of `path`; the tokenizer comes from the model folder unless `tokenizer` (a folder or vocab.txt) is given."""
    from electra.checkpoint import resolve_model_dir
    from electra.hf import KIND_OF_CLASS, load_task_model, read_config
    from electra.tokenizer import load_tokenizer, special_ids

    folder = resolve_model_dir(path, which)
    kind = WHICH_KIND[which]
    arch = (read_config(folder).get("architectures") or ["?"])[0]
    if KIND_OF_CLASS.get(arch) != kind:
        other = {"masked-lm": "ElectraForMaskedLM, e.g. hf/generator",
                 "pretraining": "ElectraForPreTraining, e.g. hf/discriminator"}[kind]
        raise ElectraError(f"{folder} holds a {arch}; this needs the {which} ({other})")
    tok_source = tokenizer if tokenizer is not None else folder
    if tokenizer is None and not any((folder / n).is_file() for n in ("tokenizer.json", "vocab.txt")):
        raise ElectraError(f"{folder} has no tokenizer.json or vocab.txt; pass --tokenizer DIR")
    tok = load_tokenizer(tok_source)
    model = load_task_model(folder, kind=kind).eval()
    if tok.get_vocab_size() > model.cfg.vocab_size:
        raise ElectraError(f"tokenizer {tok_source} has {tok.get_vocab_size()} entries, the model only "
                           f"{model.cfg.vocab_size}: not the model's tokenizer")
    return LoadedModel(model, tok, special_ids(tok), folder)


# ---------------------------------------------------------------------------------------------------------------
# Encoding text with [MASK] blanks


def _pieces(text: str) -> list[str]:
    """The text around each literal [MASK]: len(pieces) == number of masks + 1."""
    return text.split(MASK_TEXT)


def encode_masked(lm: LoadedModel, text: str) -> tuple[list[int], list[int]]:
    """[CLS] text [SEP] with each literal "[MASK]" as one mask token -> (ids, mask positions). The text between
    masks is tokenized piece by piece, so this works whether or not the tokenizer knows "[MASK]" as a special."""
    ids, positions = [lm.special["cls"]], []
    pieces = _pieces(text)
    for i, piece in enumerate(pieces):
        ids += lm.tokenizer.encode(piece, add_special_tokens=False).ids
        if i < len(pieces) - 1:
            positions.append(len(ids))
            ids.append(lm.special["mask"])
    ids.append(lm.special["sep"])
    if len(ids) > lm.max_len:
        raise ElectraError(f"the text is {len(ids)} tokens; the model takes at most {lm.max_len}")
    return ids, positions


def pad_batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)  # (B, T)
    am = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        am[i, :len(r)] = 1
    return ids, am


# ---------------------------------------------------------------------------------------------------------------
# fill-mask


@torch.no_grad()
def fill_mask(gen: LoadedModel, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each [MASK] in `text`, the generator's top_k (token, probability), all masks predicted in one pass."""
    ids, positions = encode_masked(gen, text)
    if not positions:
        raise ElectraError(f"the text has no {MASK_TEXT} to fill: {text!r}")
    x = torch.tensor([ids])
    _, logits = gen.model(x, torch.zeros_like(x), torch.ones_like(x))  # (1, T, V)
    probs = logits[0, positions].float().softmax(-1)[:, :gen.tokenizer.get_vocab_size()]  # (M, V); ids with text
    p, idx = probs.topk(min(top_k, probs.size(-1)), dim=-1)
    return [[(gen.tokenizer.id_to_token(int(i)), float(q)) for q, i in zip(pr, ir)] for pr, ir in zip(p, idx)]


# ---------------------------------------------------------------------------------------------------------------
# detect


@dataclass
class Detection:
    """The discriminator's p(replaced) for every token of `text` ([CLS]/[SEP] left out)."""

    text: str
    tokens: list[str]
    offsets: list[tuple[int, int]]  # character span of each token in `text`
    probs: list[float]

    def words(self) -> list[tuple[str, float]]:
        """Whole words (WordPiece "##" continuations joined) with the highest p(replaced) of their pieces."""
        out: list[tuple[str, float]] = []
        for t, p in zip(self.tokens, self.probs):
            if t.startswith("##") and out:
                out[-1] = (out[-1][0] + t[2:], max(out[-1][1], p))
            else:
                out.append((t, p))
        return out

    def flagged(self, threshold: float = 0.5) -> list[tuple[str, float]]:
        return [(w, p) for w, p in self.words() if p >= threshold]


@torch.no_grad()
def detect(disc: LoadedModel, texts: list[str], batch_size: int = 32) -> list[Detection]:
    """p(replaced) per token for each text, batched."""
    results = []
    for s in range(0, len(texts), batch_size):
        chunk = texts[s:s + batch_size]
        encs = [disc.tokenizer.encode(t, add_special_tokens=False) for t in chunk]
        rows = [[disc.special["cls"], *e.ids, disc.special["sep"]] for e in encs]
        longest = max(len(r) for r in rows)
        if longest > disc.max_len:
            raise ElectraError(f"a text is {longest} tokens; the model takes at most {disc.max_len}")
        x, am = pad_batch(rows, disc.special["pad"])
        _, logits = disc.model(x, torch.zeros_like(x), am)  # (B, T)
        probs = torch.sigmoid(logits.float())
        for i, (text, e) in enumerate(zip(chunk, encs)):
            n = len(e.ids)
            results.append(Detection(text, list(e.tokens), [tuple(o) for o in e.offsets],
                                     probs[i, 1:n + 1].tolist()))
    return results


# Terminal colours: 256-colour backgrounds from pale yellow to red, black text (readable on dark and light themes).
_ANSI_STEPS = ((0.75, 196), (0.5, 208), (0.25, 229))


def colour_ansi(d: Detection) -> str:
    """The text with each token's background coloured by p(replaced) (nothing below 0.25)."""
    out, last = [], 0
    for (s, e), p in zip(d.offsets, d.probs):
        out.append(d.text[last:s])
        code = next((c for lo, c in _ANSI_STEPS if p >= lo), None)
        out.append(d.text[s:e] if code is None else f"\x1b[30;48;5;{code}m{d.text[s:e]}\x1b[0m")
        last = e
    out.append(d.text[last:])
    return "".join(out)


def render_html(detections: list[Detection], title: str, threshold: float = 0.5) -> str:
    """A self-contained HTML page: each token's background is red with opacity p(replaced); tokens at or above
    `threshold` are outlined; hovering shows the probability."""
    rows = []
    for d in detections:
        parts, last = [], 0
        for (s, e), p, t in zip(d.offsets, d.probs, d.tokens):
            parts.append(html.escape(d.text[last:s]))
            cls = ' class="flag"' if p >= threshold else ""
            parts.append(f'<span{cls} style="background: rgba(220, 20, 20, {p:.3f})" '
                         f'title="{html.escape(t)}: p(replaced) = {p:.3f}">{html.escape(d.text[s:e])}</span>')
            last = e
        parts.append(html.escape(d.text[last:]))
        flagged = ", ".join(f"{html.escape(w)} ({p:.2f})" for w, p in d.flagged(threshold)) or "none"
        rows.append(f'<div class="text">{"".join(parts)}</div>\n<div class="flagged">flagged: {flagged}</div>')
    body = "\n".join(rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 50em; margin: 2em auto; line-height: 1.9; }}
.text {{ font-size: 1.2em; margin-top: 1.2em; }} .flagged {{ color: #555; font-size: 0.9em; }}
span {{ border-radius: 3px; padding: 1px 0; }} span.flag {{ outline: 2px solid #900; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Background: the discriminator's probability that the token was replaced (white 0, red 1); outlined: p &ge;
{threshold:.2f}. Hover a token for its value.</p>
{body}
</body></html>
"""


def _check_writable(path: Path, overwrite: bool) -> None:
    if not path.parent.is_dir():
        raise ElectraError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise ElectraError(f"{path} already exists; pass --overwrite to replace it")


def _write_text_atomically(path: Path, text: str, overwrite: bool = False) -> None:
    path = Path(path)
    _check_writable(path, overwrite)
    write_text(path, text)  # the temporary is removed on a failure


# ---------------------------------------------------------------------------------------------------------------
# infill: mask-predict


@dataclass
class Infilled:
    """The result of `infill`: the text with blanks filled, the filled tokens and each iteration's state."""

    text: str
    tokens: list[str]
    probs: list[float]  # the generator's probability of each filled token when it was last predicted
    steps: list[list[str]] = field(default_factory=list)  # tokens at the blanks after each iteration


def _remask_count(n: torch.Tensor, t: int, iterations: int) -> torch.Tensor:
    """Mask-predict's linear decay: n * (T - t) / T blanks re-masked before iteration t (t = 1 .. T-1)."""
    return (n * (iterations - t)) // iterations


@torch.no_grad()
def infill_ids(gen: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, blanks: torch.Tensor,
               iterations: int = 10, discriminator: LoadedModel | None = None):
    """Mask-predict on a batch. input_ids (B, T) with [MASK] at `blanks` (B, T) bool. Returns (ids, confidence,
    steps): the filled ids (B, T), the generator's probability of each filled token (B, T), and the ids after each
    iteration. With `discriminator`, the blanks it scores most likely replaced are re-masked instead of the
    generator's least confident ones."""
    if iterations < 1:
        raise ElectraError(f"--iterations must be >= 1, got {iterations}")
    never = torch.tensor(sorted(set(gen.special.values())), dtype=torch.long)
    ids = input_ids.clone()
    tt = torch.zeros_like(ids)
    conf = torch.zeros(ids.shape, dtype=torch.float32)
    n = blanks.sum(1)  # (B,)
    remask = blanks.clone()
    steps = []
    for t in range(iterations):
        if t > 0:
            k = _remask_count(n, t, iterations)  # (B,)
            if int(k.max()) == 0:
                break
            if discriminator is not None:
                _, rtd = discriminator.model(ids, tt, attention_mask)
                score = -torch.sigmoid(rtd.float())  # low score = likely replaced = re-mask first
            else:
                score = conf
            score = score.masked_fill(~blanks, float("inf"))
            rank = score.argsort(1).argsort(1)  # (B, T): 0 = the lowest score of the row
            remask = blanks & (rank < k[:, None])
            ids = ids.masked_fill(remask, gen.special["mask"])
        _, logits = gen.model(ids, tt, attention_mask)  # (B, T, V)
        logits = logits.float()
        logits[..., never] = float("-inf")  # never fill a blank with [CLS], [SEP], [PAD], [MASK] or [UNK]
        logits[..., gen.tokenizer.get_vocab_size():] = float("-inf")  # nor with an id the tokenizer cannot write
        p, best = logits.softmax(-1).max(-1)  # (B, T)
        ids = torch.where(remask, best, ids)
        conf = torch.where(remask, p, conf)
        steps.append(ids.clone())
    return ids, conf, steps


def _join_fills(pieces: list[str], fills: list[str]) -> str:
    """Put the filled tokens back into the text around them; a "##" continuation is glued to the word before."""
    out = pieces[0]
    for token, after in zip(fills, pieces[1:]):
        if token.startswith("##"):
            out = out.rstrip() + token[2:]
        else:
            out += token
        out += after
    return out


def infill(gen: LoadedModel, text: str, iterations: int = 10, discriminator: LoadedModel | None = None) -> Infilled:
    """Fill every [MASK] of `text` (one token each) by mask-predict; see `infill_ids`."""
    ids, positions = encode_masked(gen, text)
    if not positions:
        raise ElectraError(f"the text has no {MASK_TEXT} to fill: {text!r}")
    x = torch.tensor([ids])
    blanks = torch.zeros_like(x, dtype=torch.bool)
    blanks[0, positions] = True
    filled, conf, steps = infill_ids(gen, x, torch.ones_like(x), blanks, iterations, discriminator)
    tokens = [gen.tokenizer.id_to_token(int(filled[0, p])) for p in positions]
    history = [[gen.tokenizer.id_to_token(int(s[0, p])) for p in positions] for s in steps]
    return Infilled(_join_fills(_pieces(text), tokens), tokens, [float(conf[0, p]) for p in positions], history)


# ---------------------------------------------------------------------------------------------------------------
# Command line


def _texts(args) -> list[str]:
    texts = [line.rstrip("\n") for line in sys.stdin] if args.text == ["-"] else list(args.text)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ElectraError("no text given (pass it as an argument, or '-' to read lines from stdin)")
    return texts


def build_parsers(name: str, parser: argparse.ArgumentParser) -> None:
    which = "discriminator" if name == "detect" else "generator"
    parser.add_argument("text", nargs="+", help="text(s) to process; '-' reads one text per line from stdin" +
                        ("" if name == "detect" else f"; write each blank as {MASK_TEXT}"))
    hf_class = "ElectraForPreTraining" if which == "discriminator" else "ElectraForMaskedLM"
    parser.add_argument("--model", required=True, metavar="DIR",
                        help=f"the {which}: an HF folder ({hf_class}) or a pretraining run/checkpoint of ours")
    parser.add_argument("--tokenizer", metavar="DIR",
                        help="tokenizer folder or vocab.txt (default: the one in the model folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per text instead of text")
    if name == "fill-mask":
        parser.add_argument("--top-k", type=int, default=5, metavar="K", help="candidates per [MASK] (5)")
    elif name == "detect":
        parser.add_argument("--threshold", type=float, default=0.5, metavar="P",
                            help="p(replaced) at which a word is listed as flagged (0.5)")
        parser.add_argument("--html", metavar="FILE", help="also write an HTML page with the tokens highlighted")
        parser.add_argument("--overwrite", action="store_true", help="replace the --html file if it exists")
        parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                            help="ANSI colours in the terminal: auto = when stdout is a terminal (auto)")
    else:
        parser.add_argument("--iterations", type=int, default=10, metavar="N",
                            help="mask-predict iterations; 1 = fill every blank at once (10)")
        parser.add_argument("--remask", choices=("generator", "discriminator"), default="generator",
                            help="what picks the blanks to re-mask: the generator's least confident, or the "
                                 "discriminator's most likely replaced (generator)")
        parser.add_argument("--discriminator", metavar="DIR",
                            help="discriminator for --remask discriminator (default: the run's, or the "
                                 "'discriminator' folder beside the generator folder)")
        parser.add_argument("--steps", action="store_true", help="also print the blanks after each iteration")


def _default_discriminator(model_path: str) -> Path:
    from electra.checkpoint import resolve_model_dir

    resolved = resolve_model_dir(model_path, "discriminator")
    if resolved != Path(model_path):
        return resolved
    sibling = Path(model_path).parent / "discriminator"
    if (sibling / "config.json").is_file():
        return sibling
    raise ElectraError(f"no discriminator found next to {model_path}; pass --discriminator DIR")


def run_command(name: str, args: argparse.Namespace) -> int:
    texts = _texts(args)
    if name == "fill-mask":
        if args.top_k < 1:
            raise ElectraError(f"--top-k must be >= 1, got {args.top_k}")
        gen = load_model(args.model, "generator", args.tokenizer)
        for text in texts:
            cands = fill_mask(gen, text, args.top_k)
            if args.json:
                print(json.dumps({"text": text, "masks": [[{"token": t, "prob": round(p, 6)} for t, p in c]
                                                          for c in cands]}, ensure_ascii=False))
                continue
            print(text)
            for m, c in enumerate(cands, 1):
                print(f"  [MASK] {m}: " + "  ".join(f"{t} {p:.3f}" for t, p in c))
        return 0
    if name == "detect":
        if args.html:  # refuse before the work, and again when writing
            _check_writable(Path(args.html), args.overwrite)
        disc = load_model(args.model, "discriminator", args.tokenizer)
        results = detect(disc, texts)
        if args.html:
            _write_text_atomically(Path(args.html), render_html(results, f"electra detect: {disc.path}",
                                                                args.threshold), args.overwrite)
        colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
        for d in results:
            if args.json:
                print(json.dumps({"text": d.text, "tokens": d.tokens, "probs": [round(p, 6) for p in d.probs],
                                  "flagged": [[w, round(p, 6)] for w, p in d.flagged(args.threshold)]},
                                 ensure_ascii=False))
                continue
            print(colour_ansi(d) if colour else d.text)
            flagged = d.flagged(args.threshold)
            print(f"  flagged (p >= {args.threshold:.2f}): " +
                  (", ".join(f"{w} {p:.2f}" for w, p in flagged) if flagged else "none"))
        if args.html and not args.json:
            print(f"wrote {args.html}")
        return 0
    gen = load_model(args.model, "generator", args.tokenizer)
    disc = None
    if args.remask == "discriminator":
        disc = load_model(args.discriminator or _default_discriminator(args.model), "discriminator", args.tokenizer)
        if disc.model.cfg.vocab_size != gen.model.cfg.vocab_size:
            raise ElectraError(f"{disc.path} and {gen.path} have different vocabularies")
    for text in texts:
        result = infill(gen, text, args.iterations, disc)
        if args.json:
            print(json.dumps({"text": text, "filled": result.text, "tokens": result.tokens,
                              "probs": [round(p, 6) for p in result.probs], "steps": result.steps},
                             ensure_ascii=False))
            continue
        print(result.text)
        if args.steps:
            for i, s in enumerate(result.steps, 1):
                print(f"  iteration {i}: {' '.join(s)}")
    return 0
