"""Fine-tuning input in the formats the Hub serves: the real SST-2 slice written at test time as Parquet, as Arrow and
as a `datasets` save_to_disk DatasetDict fine-tunes to exactly the metrics and predictions of the same rows as TSV
(same seed, tiny model), `electra evaluate` reads the same folders, and a missing column is one line (exit 2) naming
the columns present. CPU, one thread, a few seconds per run.

    .venv/bin/pytest -q tests/test_finetune_formats.py
"""
from __future__ import annotations

import json

import pytest

from electra.cli import main
from electra.tasks.classification import read_records

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sst2(shared_data, tmp_path_factory) -> dict:
    """The first 160 train / 60 dev rows of SST-2 as TSV, Parquet (integer labels), Arrow and a DatasetDict."""
    root = tmp_path_factory.mktemp("sst2")
    tables = {}
    for split, n in (("train", 160), ("dev", 60)):
        lines = (shared_data / f"glue/SST-2/{split}.tsv").read_text(encoding="utf-8").splitlines()
        (root / "tsv").mkdir(exist_ok=True)
        (root / "tsv" / f"{split}.tsv").write_text("\n".join(lines[:n + 1]) + "\n", encoding="utf-8")
        _, rows = read_records(root / "tsv" / f"{split}.tsv")
        tables[split] = pa.table({"sentence": [r[0] for _, r in rows], "label": [int(r[1]) for _, r in rows]})
    for kind in ("parquet", "arrow"):
        (root / kind).mkdir()
    for split, table in tables.items():
        pq.write_table(table, root / "parquet" / f"{split}.parquet", row_group_size=50)  # several row groups
        with pa.ipc.new_file(str(root / "arrow" / f"{split}.arrow"), table.schema) as writer:
            writer.write_table(table)
    datasets = pytest.importorskip("datasets")
    datasets.DatasetDict({"train": datasets.Dataset(tables["train"]),
                          "validation": datasets.Dataset(tables["dev"])}).save_to_disk(str(root / "saved"))
    return {kind: root / kind for kind in ("tsv", "parquet", "arrow", "saved")}


def finetune(capsys, model, data, out, *flags) -> tuple[int, str]:
    code = main(["finetune", "--task", "sst2", "--model", str(model), "--data", str(data), "--out", str(out),
                 "--epochs", "1", "--lr", "1e-3", "--no-predict-test", "--no-progress", "--threads", "1", *flags])
    return code, capsys.readouterr().err


def test_sst2_as_parquet_arrow_and_datasets_folder_fine_tunes_like_tsv(capsys, en_model, sst2, tmp_path):
    assert (sst2["saved"] / "dataset_dict.json").is_file() and (sst2["saved"] / "validation/state.json").is_file()
    results = {}
    for kind, data in sst2.items():
        code, err = finetune(capsys, en_model, data, tmp_path / kind)
        assert code == 0, err
        metrics = json.loads((tmp_path / kind / "metrics.json").read_text())
        predictions = (tmp_path / kind / "predictions.jsonl").read_text().splitlines()
        results[kind] = (metrics["counts"]["train_examples"], metrics["dev"], predictions)
    assert results["tsv"][0] == 160 and len(results["tsv"][2]) == 60
    for kind in ("parquet", "arrow", "saved"):
        assert results[kind] == results["tsv"], kind  # same rows, same seed: the same model and scores
    # electra evaluate reads the same folders (dev.parquet; the DatasetDict's validation split).
    for kind in ("parquet", "saved"):
        assert main(["evaluate", "--model", str(tmp_path / "tsv"), "--data", str(sst2[kind])]) == 0
        assert json.loads(capsys.readouterr().out)["acc"] == pytest.approx(results["tsv"][1]["acc"])


def test_missing_column_in_parquet_is_one_line(capsys, en_model, sst2, tmp_path):
    data = tmp_path / "renamed"
    data.mkdir()
    for split in ("train", "dev"):
        table = pq.read_table(sst2["parquet"] / f"{split}.parquet").rename_columns(["review", "label"])
        pq.write_table(table, data / f"{split}.parquet")
    code, err = finetune(capsys, en_model, data, tmp_path / "out")
    assert code == 2 and err.count("\n") == 1, err
    assert f"{data / 'train.parquet'}: no text column 'sentence' (columns: review, label); choose one with --text-a" \
        in err and not (tmp_path / "out").exists()
    code, err = finetune(capsys, en_model, data, tmp_path / "out", "--text-a", "review")  # the column option
    assert code == 0, err
    code, err = finetune(capsys, en_model, data, tmp_path / "out2", "--text-a", "review", "--label", "stars")
    assert code == 2 and err.count("\n") == 1 and "no label column 'stars' (columns: review, label)" in err
