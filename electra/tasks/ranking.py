"""Answer selection / dialogue response ranking as a fine-tuning task: `rank`.

    electra finetune --task rank --model hf/discriminator --data my_ranking/   # train.tsv / dev.tsv:
                                                                               # context, candidate, label (0/1)

Ranking is pointwise, as in the ELECTRA/BERT answer-selection recipe: a binary pair classifier is fine-tuned on
(context, candidate) with label 1 for a correct answer / true response, and its p(label 1) ranks the candidates of
each context. The rows are read and encoded by the generic pair reader of classification.py (columns context,
candidate, label); the metric is MRR and recall@k per context (`electra.metrics.ranking_metrics`). Scoring pairs with
a fine-tuned model outside the loop: `electra.rank.rank_pairs`.
"""
from __future__ import annotations

from functools import partial

from electra.metrics import ranking_metrics
from electra.tasks.base import Task
from electra.tasks.classification import decode, encode, from_input, read_generic, to_output


def rank_metric(examples, predictions, ks=(1, 2, 5)) -> dict:
    """MRR and recall@k (points) of p(label "1") over the contexts (example.text_a) of a split."""
    scores = [p["probabilities"]["1"] for p in predictions]
    labels = [int(e.label == "1") for e in examples]
    metrics = ranking_metrics([e.text_a for e in examples], scores, labels, ks)
    return {k: v for k, v in metrics.items() if not k.startswith("contexts")}


RANK = Task(name="rank", kind="sequence", pair=True, labels=("0", "1"), main_metric="mrr",
            description="answer selection / response ranking: (context, candidate, label 0/1) rows from "
                        "CSV / TSV / JSONL; MRR and recall@k per context",
            read=partial(read_generic, text_a="context", text_b="candidate", label="label"),
            encode=encode, decode=decode, metric=rank_metric, from_input=from_input, to_output=to_output)
TASKS = {RANK.name: RANK}
