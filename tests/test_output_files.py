"""What the writers leave behind and what the user reads: weights get the usual file mode (0644 under umask 022, as
every other file; safetensors alone would give 0600), a failed write leaves no temporary file or folder, curves.png
draws the total loss and gives the RTD loss its own axis, and `pretrain --help` lists the model and objective keys.

    .venv/bin/pytest -q tests/test_output_files.py
"""
from __future__ import annotations

import os
import stat

import pytest
import torch

from electra import checkpoint
from electra.cli import main
from electra.config import preset
from electra.files import write_json, write_text
from electra.hf import export_pretraining, write_folder
from electra.objectives import build_objective
from electra.plots import curve_figure
from electra.pretrain_config import MODEL_HINTS, OBJECTIVE_HINTS

SPECIAL = dict(pad=0, unk=1, cls=2, sep=3, mask=4)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def objective():
    torch.manual_seed(0)
    return build_objective(preset("tiny", vocab_size=100), SPECIAL)


def test_weights_get_the_same_mode_as_every_other_file(objective, tmp_path):
    usual = 0o666 & ~_umask()
    ckpt = checkpoint.save_checkpoint(tmp_path / "run", 1, objective, None, {"step": 1},
                                      {"model": {}, "special_ids": SPECIAL, "loader": {}})
    hf = export_pretraining(objective, tmp_path / "hf")
    files = [ckpt / name for name in (*checkpoint.FILES, checkpoint.META)]
    files += [folder / name for folder in hf.values() for name in ("model.safetensors", "config.json")]
    assert {str(f): oct(_mode(f)) for f in files} == {str(f): oct(usual) for f in files}


def test_a_failed_write_leaves_no_temporary(tmp_path):
    (tmp_path / "taken").mkdir()  # os.replace onto a folder fails after the temporary is written
    for write in (lambda p: write_json(p, {"a": 1}), lambda p: write_text(p, "text")):
        with pytest.raises(OSError):
            write(tmp_path / "taken")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    write_text(tmp_path / "taken" / "ok.txt", "whole")
    assert (tmp_path / "taken" / "ok.txt").read_text() == "whole" and len(list(tmp_path.rglob("*"))) == 2


def test_a_failed_hf_folder_write_removes_its_temporary_and_the_folder_it_made(objective, tmp_path):
    with pytest.raises(AttributeError):  # a value that is not a tensor fails inside save_file, mid-folder
        write_folder(tmp_path / "out", {"model_type": "electra"}, {"w": "not a tensor"})
    assert list(tmp_path.iterdir()) == []

    class Broken(torch.nn.Module):  # the second part fails: the first part's folder goes too
        def __init__(self, parts):
            super().__init__()
            self.parts = parts

        def export_parts(self):
            first, second = self.parts
            yield first
            raise KeyboardInterrupt  # Ctrl-C between the two folders

    parts = list(objective.export_parts())
    with pytest.raises(KeyboardInterrupt):
        export_pretraining(Broken(parts), tmp_path / "hf")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "existing").mkdir()
    with pytest.raises(KeyboardInterrupt):  # a folder the caller had is kept, with the parts finished (whole)
        export_pretraining(Broken(parts), tmp_path / "existing")
    assert [p.name for p in tmp_path.rglob("*") if not p.match("existing/discriminator/*")] == \
        ["existing", "discriminator"]


def _records(steps: int = 4) -> list[dict]:
    rows = []
    for s in range(1, steps + 1):
        rows.append({"kind": "train", "step": s, "loss": 30.0 - s, "mlm_loss": 7.0 - s / 2, "rtd_loss": 0.6 - s / 20,
                     "mlm_acc": 0.1 * s, "rtd_acc": 0.8, "lr": 1e-3 * s})
    rows.append({"kind": "eval", "step": steps, "eval_loss": 27.0, "eval_mlm_loss": 5.2, "eval_rtd_loss": 0.41})
    return rows


def test_curves_plot_the_total_loss_and_the_rtd_loss_on_its_own_axis():
    fig = curve_figure(_records())
    loss_ax = next(ax for ax in fig.axes if ax.get_title().startswith("loss"))
    twins = [ax for ax in fig.axes if ax is not loss_ax and ax.get_position().bounds == loss_ax.get_position().bounds]
    assert len(twins) == 1
    left = {line.get_label() for line in loss_ax.lines}
    right = {line.get_label() for line in twins[0].lines}
    assert {"total loss", "held-out total loss", "generator MLM loss"} <= left
    assert right == {"discriminator RTD loss", "held-out RTD loss"} and not right & left
    lo, hi = twins[0].get_ylim()
    assert hi - lo < 1  # scaled to the RTD loss (~0.4-0.55), not to the total loss (~26-29)
    legend = {t.get_text() for t in loss_ax.get_legend().get_texts()}
    assert legend == left | right  # one legend names the lines of both axes


def test_pretrain_help_lists_every_model_and_objective_key(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["pretrain", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    missing = [k for k in [*MODEL_HINTS, *OBJECTIVE_HINTS] if f"{k}=" not in out]
    assert not missing, missing
    assert "mask_prob=0.15" in out and "disc_weight=50.0" in out and "hidden_size=256" in out  # the values too
