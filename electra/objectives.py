"""The objective registry: every pretraining objective by its `kind`, and the one way to build one.

    from electra.objectives import build_objective
    model = build_objective(preset("small", kind="electra-15"), special_ids)   # an nn.Module, forward -> dict

`electra` and `mlm` are in objective.py, the paper's variants in variants.py. This module sits above both, so
neither imports the other's registry (and nothing is added to it at run time). To add an objective: write the class
(the contract is in objective.py's docstring), add a row here and its name to config.OBJECTIVES, the tuple the
config layer validates `kind` against without importing torch.
"""
from __future__ import annotations

import torch.nn as nn

from electra.config import ElectraConfig
from electra.errors import ElectraError
from electra.objective import Electra, MaskedLM
from electra.variants import GDES, Adversarial, AllTokensMLM, Electra15, ReplaceMLM, TwoStage

OBJECTIVES: dict[str, type[nn.Module]] = {
    "electra": Electra,
    "mlm": MaskedLM,
    "electra-15": Electra15,
    "replace-mlm": ReplaceMLM,
    "all-tokens-mlm": AllTokensMLM,
    "adversarial": Adversarial,
    "gdes": GDES,
    "two-stage": TwoStage,
}


def build_objective(cfg: ElectraConfig, special_ids: dict) -> nn.Module:
    """The objective `cfg.objective.kind` names, with fresh weights (seed torch first for repeatable ones)."""
    kind = cfg.objective.kind
    if kind not in OBJECTIVES:
        raise ElectraError(f"objective '{kind}' is not available; available: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[kind](cfg, special_ids)
