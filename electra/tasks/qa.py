"""Extractive question answering: SQuAD v1.1 / v2.0 JSON and CMRC 2018 (Chinese, SQuAD layout), with the official
answer rules: SQuAD's normalised exact match and token F1, and CMRC 2018's character-level variant.

    electra finetune --task squad  --model DIR --data squad/     # train-v1.1.json, dev-v1.1.json
    electra finetune --task squad2 --model DIR --data squad2/    # train-v2.0.json, dev-v2.0.json (no-answer)
    electra finetune --task cmrc2018 --model DIR --data ../shared/data/zh/cmrc2018   # trial file, split 90/10

Features: `[CLS] question [SEP] context window [SEP]`; the question is cut to --max-query-len tokens and long
contexts are covered by windows whose starts are --doc-stride tokens apart (the official BERT/ELECTRA meaning of
doc_stride). A window without the answer (and every window of a no-answer question) targets [CLS]. Decoding takes
the --n-best start and end logits of each window, keeps spans inside the context of at most --max-answer-len tokens,
maps them back to the original text through the tokenizer's character offsets and picks the best over windows; for
SQuAD v2 the answer is empty when the [CLS] score beats it by more than --null-threshold.

Scoring: the official scripts' rules, in electra/metrics.py: `squad` as evaluate-v1.1.py, `squad2` as
evaluate-v2.0.py (with HasAns / NoAns splits), `cmrc2018` as cmrc2018_evaluate.py (its own punctuation list and
mixed segmentation). EM and F1 are means over questions, in points.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from electra.errors import ElectraError
from electra.metrics import cmrc_em_f1, squad_v1_em_f1, squad_v2_em_f1
from electra.files import read_utf8
from electra.tasks.base import Task, find_split


@dataclass
class Example:
    id: str
    question: str
    context: str
    answers: list[dict] = field(default_factory=list)  # [{"text", "answer_start"}]; empty = no answer (v2)
    is_impossible: bool = False


# ---------------------------------------------------------------------------------------------------------------
# Reading


def read_squad(path: Path, stats: Counter | None = None, train: bool = False) -> list[Example]:
    """Questions of a SQuAD-layout JSON file. Malformed structure is an ElectraError naming the place. For training,
    an `answer_start` that does not point at the answer text is moved to the nearest occurrence (counted), and
    answers absent from the context drop the question (counted)."""
    stats = stats if stats is not None else Counter()
    if not path.is_file():
        raise ElectraError(f"data file {path} not found")
    try:
        doc = json.loads(read_utf8(path))
    except json.JSONDecodeError as e:
        raise ElectraError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise ElectraError(f"{path}: not valid JSON (nested too deeply)") from None

    def need(obj, key, kind, where):
        value = obj.get(key) if isinstance(obj, dict) else None
        if not isinstance(value, kind):
            name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ElectraError(f"{path}: {where} needs '{key}' as a {name} (SQuAD layout: data[].paragraphs[]."
                               f"qas[] with id, question, answers[].text / answer_start)")
        return value

    examples = []
    for a, article in enumerate(need(doc, "data", list, "the top level")):
        for p, paragraph in enumerate(need(article, "paragraphs", list, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = need(paragraph, "context", str, where)
            for q, qa in enumerate(need(paragraph, "qas", list, where)):
                here = f"{where}.qas[{q}]"
                qid = need(qa, "id", (str, int), here)
                question = need(qa, "question", str, here)
                impossible = bool(qa.get("is_impossible", False))
                answers = []
                if not isinstance(qa.get("answers") or [], list):
                    need(qa, "answers", list, here)  # raises: the place and the expected layout
                for k, ans in enumerate(qa.get("answers") or []):
                    text = need(ans, "text", str, f"{here}.answers[{k}]")
                    start = need(ans, "answer_start", int, f"{here}.answers[{k}]")
                    answers.append({"text": text, "answer_start": start})
                if not answers and not impossible:
                    raise ElectraError(f"{path}: {here} has no answers and is not marked is_impossible")
                example = Example(id=str(qid), question=question, context=context, answers=answers,
                                  is_impossible=impossible)
                if train and answers and not _locate(example, stats):
                    stats["answers not found in context (skipped)"] += 1
                    continue
                examples.append(example)
    return examples


def _locate(example: Example, stats: Counter) -> bool:
    """Make the first answer's answer_start point at its text (nearest occurrence); False if the text is absent."""
    ans = example.answers[0]
    text, start = ans["text"], ans["answer_start"]
    if text and example.context[start:start + len(text)] == text:
        return True
    found = [m.start() for m in re.finditer(re.escape(text), example.context)] if text.strip() else []
    if not found:
        return False
    ans["answer_start"] = min(found, key=lambda s: abs(s - start))
    stats["answer_start corrected"] += 1
    return True


def read_split(data_dir: Path, split: str, cfg, stats: Counter, files: dict | None = None) -> list[Example]:
    """DATA/<files[split]>, or --train-file / --dev-file / --test-file."""
    path = find_split(data_dir, split, cfg, (files or {}).get(split, ()))
    return read_squad(path, stats, train=split == "train")


# ---------------------------------------------------------------------------------------------------------------
# Encoding: question + context windows


def encode(examples: list[Example], tokenizer, labels, cfg) -> tuple[list[dict], Counter]:
    from electra.tokenizer import special_ids

    stats = Counter()
    ids = special_ids(tokenizer)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    questions = tokenizer.encode_batch([e.question for e in examples], add_special_tokens=False)
    contexts = tokenizer.encode_batch([e.context for e in examples], add_special_tokens=False)
    features = []
    for i, (e, q, c) in enumerate(zip(examples, questions, contexts)):
        q_ids = q.ids[:cfg.qa.max_query_len]
        c_ids, c_offsets = c.ids, c.offsets  # properties that build a new list on every access: read once
        stats["questions truncated"] += len(q.ids) > cfg.qa.max_query_len
        room = cfg.max_seq_len - len(q_ids) - 3
        if room < 1:
            raise ElectraError(f"--max-seq-len {cfg.max_seq_len} leaves no room for the context after a "
                               f"{len(q_ids)}-token question; raise it or lower --max-query-len")
        answer = None
        if e.answers and not e.is_impossible:
            a_start = e.answers[0]["answer_start"]
            a_end = a_start + len(e.answers[0]["text"])
            inside = [t for t, (s, t_end) in enumerate(c_offsets) if t_end > a_start and s < a_end]
            answer = (inside[0], inside[-1]) if inside else None
        starts = list(range(0, max(1, len(c_ids) - room + cfg.qa.doc_stride), cfg.qa.doc_stride))
        starts = [s for s in starts if s == 0 or s + room - cfg.qa.doc_stride < len(c_ids)]
        stats["contexts split into windows"] += len(starts) > 1
        for w in starts:
            window = range(w, min(w + room, len(c_ids)))
            offset = len(q_ids) + 2  # [CLS] question [SEP]
            f = {
                "input_ids": [ids["cls"], *q_ids, ids["sep"], *c_ids[window.start:window.stop], ids["sep"]],
                "token_type_ids": [0] * offset + [1] * (len(window) + 1),
                "example": i,
                "offsets": [None] * offset + c_offsets[window.start:window.stop] + [None],
                "start_positions": 0,
                "end_positions": 0,
            }
            if answer is not None and answer[0] in window and answer[1] in window:
                f["start_positions"] = answer[0] - w + offset
                f["end_positions"] = answer[1] - w + offset
            features.append(f)
    return features, stats


# ---------------------------------------------------------------------------------------------------------------
# Decoding: the best span over windows


def decode(examples, features, outputs, labels, cfg, allow_no_answer: bool = False) -> list[dict]:
    """(T, 2) start/end logits per window -> {"answer", "start", "score", "n_best": [{text, score, probability}]}.
    allow_no_answer (SQuAD v2): the [CLS] score competes as the empty answer."""
    by_example: dict[int, list] = {}
    for f, logits in zip(features, outputs):
        by_example.setdefault(f["example"], []).append((f, np.asarray(logits, dtype=np.float64)))
    predictions = []
    for i, e in enumerate(examples):
        candidates, null_score = {}, None
        for f, logits in by_example.get(i, []):
            start_logits, end_logits = logits[:, 0], logits[:, 1]
            null = start_logits[0] + end_logits[0]
            null_score = null if null_score is None else min(null_score, null)
            top_starts = np.argsort(-start_logits)[:cfg.qa.n_best]
            top_ends = np.argsort(-end_logits)[:cfg.qa.n_best]
            offsets = f["offsets"]
            for s in top_starts:
                for t in top_ends:
                    if offsets[s] is None or offsets[t] is None or t < s or t - s + 1 > cfg.qa.max_answer_len:
                        continue
                    char_start, char_end = offsets[s][0], offsets[t][1]
                    score = float(start_logits[s] + end_logits[t])
                    key = (char_start, char_end)
                    if key not in candidates or candidates[key] < score:
                        candidates[key] = score
        ranked = sorted(candidates.items(), key=lambda kv: -kv[1])[:cfg.qa.n_best]
        nbest = [{"text": e.context[a:b], "start": a, "score": s} for (a, b), s in ranked]
        if allow_no_answer and null_score is not None:
            nbest.append({"text": "", "start": -1, "score": float(null_score)})
            nbest.sort(key=lambda d: -d["score"])
        if nbest:
            scores = np.array([d["score"] for d in nbest])
            probs = np.exp(scores - scores.max())
            for d, p in zip(nbest, probs / probs.sum()):
                d["probability"] = float(p)
        best = next((d for d in nbest if d["text"]), {"text": "", "start": -1, "score": float("-inf")})
        if allow_no_answer and null_score is not None \
                and null_score - best["score"] > cfg.qa.null_threshold:
            best = {"text": "", "start": -1, "score": float(null_score)}
        predictions.append({"answer": best["text"], "start": best["start"], "score": best["score"],
                            "n_best": nbest})
    return predictions


# ---------------------------------------------------------------------------------------------------------------
# Scoring: the official rules live in electra/metrics.py


def score(examples: list[Example], predictions: list[dict], rule) -> dict:
    """Mean EM and F1 in points; for data with unanswerable questions also HasAns / NoAns splits."""
    rows = [(e, rule(p["answer"], [a["text"] for a in e.answers] if not e.is_impossible else [""]))
            for e, p in zip(examples, predictions)]
    out = {"em": 100.0 * float(np.mean([em for _, (em, _) in rows])),
           "f1": 100.0 * float(np.mean([f1 for _, (_, f1) in rows]))}
    if any(e.is_impossible for e in examples):
        for name, keep in (("has_ans", False), ("no_ans", True)):
            part = [r for e, r in rows if e.is_impossible == keep]
            if part:
                out[f"{name}_em"] = 100.0 * float(np.mean([em for em, _ in part]))
                out[f"{name}_f1"] = 100.0 * float(np.mean([f1 for _, f1 in part]))
    return out


def from_input(item) -> Example:
    if isinstance(item, dict) and isinstance(item.get("question"), str) and isinstance(item.get("context"), str):
        return Example(id=str(item.get("id", "")), question=item["question"], context=item["context"])
    if isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(t, str) for t in item):
        return Example(id="", question=item[0], context=item[1])
    raise ElectraError(f"cannot read a QA input from {str(item)[:60]!r}: give {{\"question\": ..., \"context\": ...}}")


def to_output(example: Example, prediction: dict) -> dict:
    return {"id": example.id, "answer": prediction["answer"], "start": prediction["start"],
            "score": prediction["score"], "n_best": prediction["n_best"][:5]}


def _task(name, description, files, rule, epochs=2, no_answer=False, dev_from_train=0.0):
    return Task(name=name, kind="span", description=description, read=partial(read_split, files=files),
                encode=encode, decode=partial(decode, allow_no_answer=no_answer), metric=partial(score, rule=rule),
                from_input=from_input, to_output=to_output, main_metric="f1", epochs=epochs, max_seq_len=384,
                files=files, dev_from_train=dev_from_train)


TASKS: dict[str, Task] = {t.name: t for t in [
    _task("squad", "SQuAD v1.1 extractive QA (EM / F1)",
          {"train": ("train-v1.1.json", "train.json"), "dev": ("dev-v1.1.json", "dev.json")}, squad_v1_em_f1),
    _task("squad2", "SQuAD v2.0 extractive QA with unanswerable questions (EM / F1)",
          {"train": ("train-v2.0.json", "train.json"), "dev": ("dev-v2.0.json", "dev.json")}, squad_v2_em_f1,
          no_answer=True),
    _task("cmrc2018", "CMRC 2018 Chinese extractive QA (character-level EM / F1); without a dev file the train "
          "file (e.g. the trial set) is split 90/10", {"train": ("cmrc2018_train.json", "cmrc2018_trial.json"),
                                                       "dev": ("cmrc2018_dev.json",)}, cmrc_em_f1,
          dev_from_train=0.1),
]}
