"""Metrics for fine-tuning, in points (0-100): thin wrappers around kept libraries (scikit-learn, scipy) and the
official scorers of SQuAD, CMRC 2018 and CoNLL written out rule by rule (each pinned by tests on hand-made cases
where a looser rule would score differently, and against seqeval / NLTK where they are installed).

    accuracy(gold, pred) -> {"acc": 91.2}
    f1_accuracy(gold, pred, positive="1") -> {"f1": ..., "acc": ..., "acc_and_f1": ...}        MRPC, QQP
    mcc(gold, pred) -> {"mcc": ...}                                                                CoLA
    pearson_spearman(gold, pred) -> {"pearson": ..., "spearman": ..., "corr": ...}                 STS-B
    entity_f1(gold_tags, pred_tags) -> {"precision": ..., "recall": ..., "f1": ..., "acc": ...}    NER (conlleval)
    ranking_metrics(contexts, scores, labels, ks=(1, 2, 5)) -> {"mrr": ..., "recall@1": ..., ...}    ranking
    squad_v1_em_f1(prediction, golds) / squad_v2_em_f1(...) / cmrc_em_f1(...) -> (em, f1) in 0..1, one question

Ranking (answer selection, response ranking) groups rows by their context text. MRR is the mean over contexts of
1 / (rank of the best-ranked positive); with exactly one positive per context it equals scikit-learn's
`label_ranking_average_precision_score` (pinned by a test). recall@k is the fraction of a context's positives ranked
in its top k, averaged over contexts (Ubuntu Dialogue Corpus "R_n@k" with one positive among n candidates). Ties
count against the model: a positive's rank is the number of candidates scoring at least as high (as sklearn).
Contexts without a positive are left out (they have no rank) and counted in `contexts_without_positive`.

The official scorers (sources: conlleval.pl 2004-01-26 of the CoNLL-2000/2003 shared tasks; SQuAD's
evaluate-v1.1.py and evaluate-v2.0.py; ymcui/cmrc2018 cmrc2018_evaluate.py):
  conlleval  a tag is PREFIX-TYPE (split at the first '-'; no '-': the whole tag, no type); a chunk starts / ends
             between two tokens by conlleval's startOfChunk / endOfChunk tables, which read IOB1 and IOB2 alike
             (an I- after O or after another type starts a chunk; B- always does); sentences are separated by an
             O; a chunk is correct when both start together with one type and both end together; accuracy counts
             tokens whose whole tag is right. E-/S- tags are read as conlleval reads them, which is not IOBES: two
             adjacent S-PER are one chunk there (seqeval's default mode makes them two).
  SQuAD      normalize: lower-case, drop string.punctuation, the words a/an/the, collapse whitespace. EM: equal
             normalized strings; F1: bag-of-tokens overlap; max over golds. v1.1: every gold counts, and F1 is 0
             when nothing overlaps (even two empty answers). v2.0: golds that normalize to empty are dropped ([""]
             when none is left: an unanswerable question, which only the empty prediction matches), and an empty
             side scores 1 only when both are empty.
  CMRC 2018  lower-case and strip; only the script's own punctuation list is removed (ASCII - : _ * ^ / \\ ~ ` + =
             and the full-width marks below; not ASCII brackets, quotes, '.', ',' or '!', nor '…' or '‘', so a
             prediction "(北京)" for gold "北京" scores EM 0, F1 2/3). Segments: each CJK character (U+4E00-U+9FA5)
             alone, runs of other characters cut by NLTK's word_tokenize (`word_tokens` below does it without
             NLTK). F1 from the longest common contiguous run of segments; EM: equal strings after removing the
             punctuation (inner spaces kept); max over golds.
"""
from __future__ import annotations

import math
import re
import string

import numpy as np

from electra.errors import ElectraError


def accuracy(gold: list, pred: list) -> dict:
    from sklearn.metrics import accuracy_score

    return {"acc": 100.0 * float(accuracy_score(gold, pred))}


def f1_accuracy(gold: list, pred: list, positive="1") -> dict:
    """Binary F1 of the positive class (GLUE MRPC/QQP convention) and accuracy."""
    from sklearn.metrics import f1_score

    f1 = 100.0 * float(f1_score(gold, pred, pos_label=positive, average="binary", zero_division=0))
    acc = accuracy(gold, pred)["acc"]
    return {"f1": f1, "acc": acc, "acc_and_f1": (f1 + acc) / 2}


def mcc(gold: list, pred: list) -> dict:
    from sklearn.metrics import matthews_corrcoef

    return {"mcc": 100.0 * float(matthews_corrcoef(gold, pred))}


def pearson_spearman(gold: list[float], pred: list[float]) -> dict:
    """Pearson and Spearman correlation; 0 when a side is constant (scipy returns nan there)."""
    from scipy.stats import pearsonr, spearmanr

    def safe(value) -> float:
        value = float(value)
        return 0.0 if math.isnan(value) else 100.0 * value

    if len(set(pred)) < 2 or len(set(gold)) < 2:
        p = s = 0.0
    else:
        p, s = safe(pearsonr(gold, pred)[0]), safe(spearmanr(gold, pred)[0])
    return {"pearson": p, "spearman": s, "corr": (p + s) / 2}


def group_by_context(contexts: list[str]) -> list[list[int]]:
    """Row indices grouped by context text, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(contexts):
        groups.setdefault(c, []).append(i)
    return list(groups.values())


def positive_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For one context: the rank (1 = top) of each positive; ties ranked pessimistically (as scikit-learn)."""
    return np.array([(scores >= s).sum() for s in scores[labels > 0]], dtype=np.int64)


def ranking_metrics(contexts: list[str], scores, labels, ks=(1, 2, 5)) -> dict:
    """MRR and recall@k (points, 0-100) over the contexts that have at least one positive."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if not (len(contexts) == len(scores) == len(labels)):
        raise ElectraError(f"ranking: {len(contexts)} contexts, {len(scores)} scores, {len(labels)} labels")
    reciprocal, recall = [], {k: [] for k in ks}
    skipped = 0
    for rows in group_by_context(contexts):
        ranks = positive_ranks(scores[rows], labels[rows])
        if len(ranks) == 0:
            skipped += 1
            continue
        reciprocal.append(1.0 / ranks.min())
        for k in ks:
            recall[k].append(float((ranks <= k).mean()))
    if not reciprocal:
        raise ElectraError("ranking: no context has a positive candidate (label 1)")
    out = {"mrr": 100.0 * float(np.mean(reciprocal))}
    out.update({f"recall@{k}": 100.0 * float(np.mean(v)) for k, v in recall.items()})
    out["contexts"] = len(reciprocal)
    out["contexts_without_positive"] = skipped
    return out


# ---------------------------------------------------------------------------------------------------------------
# CoNLL entity F1: conlleval.pl's chunk tables and counting


def _split_tag(tag: str) -> tuple[str, str]:
    prefix, dash, kind = tag.partition("-")
    return (prefix, kind) if dash else (tag, "")


_ENDS = {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}
_STARTS = {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}


def _chunk_ends(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    """conlleval endOfChunk: did a chunk end between the previous token and this one? ((prefix, type) pairs)"""
    return ((prev[0], cur[0]) in _ENDS or (prev[0] not in ("O", ".") and prev[1] != cur[1])
            or prev[0] in ("[", "]"))


def _chunk_starts(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    """conlleval startOfChunk: did a chunk start at this token?"""
    return ((prev[0], cur[0]) in _STARTS or (cur[0] not in ("O", ".") and prev[1] != cur[1])
            or cur[0] in ("[", "]"))


def conll_chunks(tags: list[str]) -> list[tuple[str, int, int]]:
    """The chunks of one tag sequence by conlleval's rules: [(type, start, end)], end exclusive."""
    chunks, opened, prev = [], None, ("O", "")
    for i, tag in enumerate([*tags, "O"]):
        cur = _split_tag(tag)
        if opened is not None and (_chunk_ends(prev, cur) or _chunk_starts(prev, cur)):
            chunks.append((opened[0], opened[1], i))
            opened = None
        if i < len(tags) and _chunk_starts(prev, cur):
            opened = (cur[1], i)
        prev = cur
    return chunks


def entity_f1(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Entity-level precision / recall / F1 and token accuracy of tagged sentences, counted as conlleval counts."""
    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ElectraError("entity_f1: gold and predicted tags differ in number of sentences or tokens")
    correct = found_gold = found_pred = right_tags = tokens = 0
    in_correct, last_g, last_p = False, ("O", ""), ("O", "")
    for g_tags, p_tags in zip(gold, pred):
        for k, (g_tag, p_tag) in enumerate([*zip(g_tags, p_tags), ("O", "O")]):  # an O between sentences
            g, p = _split_tag(g_tag), _split_tag(p_tag)
            if in_correct:
                g_end, p_end = _chunk_ends(last_g, g), _chunk_ends(last_p, p)
                if g_end and p_end and last_g[1] == last_p[1]:
                    correct += 1
                    in_correct = False
                elif g_end != p_end or g[1] != p[1]:
                    in_correct = False
            g_start, p_start = _chunk_starts(last_g, g), _chunk_starts(last_p, p)
            in_correct = in_correct or (g_start and p_start and g[1] == p[1])
            found_gold += g_start
            found_pred += p_start
            if k < len(g_tags):
                right_tags += g == p
                tokens += 1
            last_g, last_p = g, p
    correct += in_correct
    precision = 100.0 * correct / found_pred if found_pred else 0.0
    recall = 100.0 * correct / found_gold if found_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "acc": 100.0 * right_tags / max(tokens, 1)}


# ---------------------------------------------------------------------------------------------------------------
# SQuAD v1.1 and v2.0 (evaluate-v1.1.py, evaluate-v2.0.py)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def squad_normalize(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in _ASCII_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _overlap_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    from collections import Counter

    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if not same:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_v1_em_f1(prediction: str, golds: list[str]) -> tuple[float, float]:
    """SQuAD v1.1 exact match and F1 of one prediction, max over its gold answers (0..1)."""
    pred = squad_normalize(prediction)
    em = max(float(pred == squad_normalize(g)) for g in golds)
    f1 = max(_overlap_f1(pred.split(), squad_normalize(g).split()) for g in golds)
    return em, f1


def squad_v2_em_f1(prediction: str, golds: list[str]) -> tuple[float, float]:
    """SQuAD v2.0 exact match and F1 (0..1): empty golds dropped ([""] = unanswerable), empty matches empty."""
    golds = [g for g in golds if squad_normalize(g)] or [""]
    pred = squad_normalize(prediction)
    em = max(float(pred == squad_normalize(g)) for g in golds)
    f1 = 0.0
    for g in golds:
        p_tokens, g_tokens = pred.split(), squad_normalize(g).split()
        f1 = max(f1, float(p_tokens == g_tokens) if not p_tokens or not g_tokens else _overlap_f1(p_tokens, g_tokens))
    return em, f1


# ---------------------------------------------------------------------------------------------------------------
# CMRC 2018 (cmrc2018_evaluate.py)

# The script's list, one character each. Its entry '……' is two characters and never equals one, so '…' stays.
CMRC_PUNCTUATION = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fa5"


def cmrc_remove_punctuation(s: str) -> str:
    return "".join(ch for ch in s.lower().strip() if ch not in CMRC_PUNCTUATION)


# NLTK's word_tokenize (its NLTKWordTokenizer rules: an improved Penn Treebank tokenizer, Apache-2.0) as one ordered
# table of substitutions, without NLTK's Punkt sentence splitter: on lower-cased text Punkt would only cut at a
# period followed by a space, which answer spans almost never hold (tests compare with NLTK on CMRC text).
_WORD_RULES = [(re.compile(pattern), repl) for pattern, repl in (
    (r"([«“‘„]|`+)", r" \1 "),  # opening quotes
    (r'^"', "``"),
    (r"(``)", r" \1 "),
    (r"([ (\[{<])(\"|'')", r"\1 `` "),
    (r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", r"\1 "),
    (r"([^.])(\.)([\]\)}>\"'»”’ ]*)\s*$", r"\1 \2 \3 "),  # the final period, before closing brackets
    (r"([:,])([^\d])", r" \1 \2"),  # ':' and ',' except inside numbers
    (r"([:,])$", r" \1 "),
    (r"\.{2,}", r" \g<0> "),
    (r"[;@#$%&]", r" \g<0> "),
    (r"[\u2012-\u2015]", r" \g<0> "),
    (r"([^.])(\.)([\]\)}>\"']*)\s*$", r"\1 \2\3 "),
    (r"[?!]", r" \g<0> "),
    (r"([^'])' ", r"\1 ' "),
    (r"[*]", r" \g<0> "),
    (r"[\]\[(){}<>]", r" \g<0> "),  # brackets
    (r"--", r" -- "),
)]
_END_RULES = [(re.compile(pattern), repl) for pattern, repl in (
    (r"([»”’])", r" \1 "),  # closing quotes
    (r"''", " '' "),
    (r'"', " '' "),
    (r"\s+", " "),
    (r"([^' ])('[sS]|'[mM]|'[dD]|') ", r"\1 \2 "),  # clitics
    (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
    *((rf"(?i)\b({a})({b}){end}", r" \1 \2 ") for a, b, end in (
        ("can", "not", r"\b"), ("d", "'ye", r"\b"), ("gim", "me", r"\b"), ("gon", "na", r"\b"),
        ("got", "ta", r"\b"), ("lem", "me", r"\b"), ("more", "'n", r"\b"), ("wan", "na", r"(?=\s)"))),
    (r"(?i) ('t)(is)\b", r" \1 \2 "),
    (r"(?i) ('t)(was)\b", r" \1 \2 "),
)]


def word_tokens(text: str) -> list[str]:
    """The words of a run of non-CJK text as NLTK's word_tokenize splits one sentence."""
    for rule, repl in _WORD_RULES:
        text = rule.sub(repl, text)
    text = f" {text} "
    for rule, repl in _END_RULES:
        text = rule.sub(repl, text)
    return text.split()


def cmrc_segments(s: str) -> list[str]:
    """CMRC 2018 mixed segmentation with punctuation removed: CJK characters alone, other runs as word tokens."""
    segments, run = [], ""
    for ch in s.lower().strip():
        if ch in CMRC_PUNCTUATION:
            continue
        if _is_cjk(ch):
            segments += word_tokens(run) if run else []
            segments.append(ch)
            run = ""
        else:
            run += ch
    return segments + (word_tokens(run) if run else [])


def _longest_common_run(a: list[str], b: list[str]) -> int:
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def cmrc_em_f1(prediction: str, golds: list[str]) -> tuple[float, float]:
    """CMRC 2018 exact match and F1 of one prediction, max over its gold answers (0..1)."""
    pred_segments, pred_text = cmrc_segments(prediction), cmrc_remove_punctuation(prediction)
    em = f1 = 0.0
    for gold in golds:
        em = max(em, float(cmrc_remove_punctuation(gold) == pred_text))
        gold_segments = cmrc_segments(gold)
        common = _longest_common_run(gold_segments, pred_segments)
        if common:
            precision, recall = common / len(pred_segments), common / len(gold_segments)
            f1 = max(f1, 2 * precision * recall / (precision + recall))
    return em, f1
