#!/usr/bin/env bash
# TensorFlow interop: do our exported Hugging Face folders load in TensorFlow (TFElectraForPreTraining,
# TFElectraForSequenceClassification, from_pt=True) and give the same logits as our PyTorch models?
#
#   benchmarks/tf_interop.sh                     # env in ${TMPDIR:-/tmp}/electra-tf-interop (reused if present)
#   TF_INTEROP_ENV=/somewhere/else benchmarks/tf_interop.sh
#
# Steps (each is printed as it runs):
#   1. create a separate virtual environment OUTSIDE the repo and install tensorflow-cpu, tf-keras (transformers 4
#      needs Keras 2 under TF >= 2.16), "transformers<5" (TF classes were removed in 5) and torch==2.13.0 (from_pt
#      reads the PyTorch weights through torch);
#   2. with the repo's .venv: build tiny and small ELECTRA models (random weights, perturbed so every tensor
#      matters), export them with electra.hf (discriminator = ElectraForPreTraining, a 3-label
#      ElectraForSequenceClassification), and save inputs with padding and our PyTorch logits;
#   3. in the TF environment: load each folder with from_pt=True and compare logits at real tokens.
# Prints one JSON line per model and exits non-zero when a difference exceeds 1e-4 or a step fails (pip's own
# message is shown when tensorflow-cpu cannot be installed for this Python / platform).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="$REPO/.venv/bin/python"
ENV_DIR="${TF_INTEROP_ENV:-${TMPDIR:-/tmp}/electra-tf-interop}"
WORK="$ENV_DIR/work"
case "$ENV_DIR" in "$REPO"/*) echo "tf_interop: refusing to create the environment inside the repo" >&2; exit 2;; esac

echo "== 1. environment $ENV_DIR ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
if [ ! -x "$ENV_DIR/bin/python" ]; then
  "$PY" -c 'import sys, venv; venv.create(sys.argv[1], with_pip=True)' "$ENV_DIR"
fi
if ! "$ENV_DIR/bin/python" -c "import tensorflow, transformers, torch" 2>/dev/null; then
  "$ENV_DIR/bin/pip" install --quiet --upgrade pip
  "$ENV_DIR/bin/pip" install --quiet "torch==2.13.0" tensorflow-cpu tf-keras "transformers<5" \
    || { echo "tf_interop: pip could not install tensorflow-cpu / transformers<5 here (message above)" >&2; exit 1; }
fi
"$ENV_DIR/bin/python" -c "import tensorflow as tf, transformers, torch; print('tensorflow', tf.__version__,
'| transformers', transformers.__version__, '| torch', torch.__version__)" 2>/dev/null

echo "== 2. export with electra (repo .venv) into $WORK"
rm -rf "$WORK" && mkdir -p "$WORK"
"$PY" - "$WORK" <<'EOF'
import sys
from pathlib import Path

import numpy as np
import torch

from electra.config import preset
from electra.hf import export_task_model
from electra.model import TaskModel

work = Path(sys.argv[1])
for name in ("tiny", "small"):
    for kind, labels in (("pretraining", 1), ("sequence", 3)):
        torch.manual_seed(0)
        model = TaskModel(preset(name, vocab_size=1000).discriminator, kind, num_labels=labels).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        folder = export_task_model(model, work / f"{name}-{kind}")
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(5, 1000, (3, 24), generator=g)
        am = torch.ones_like(ids)
        am[1, 15:] = 0
        am[2, 6:] = 0
        tt = torch.zeros_like(ids)
        tt[:, 12:] = 1
        with torch.no_grad():
            logits = model(ids, tt, am)[1]
        np.savez(folder / "reference.npz", input_ids=ids.numpy(), attention_mask=am.numpy(),
                 token_type_ids=tt.numpy(), logits=logits.numpy())
        print("exported", folder.name)
EOF

echo "== 3. load in TensorFlow (from_pt=True) and compare"
TF_CPP_MIN_LOG_LEVEL=3 "$ENV_DIR/bin/python" - "$WORK" <<'EOF'
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
import transformers

worst = 0.0
for folder in sorted(p for p in Path(sys.argv[1]).iterdir() if p.is_dir()):
    ref = np.load(folder / "reference.npz")
    cls = (transformers.TFElectraForPreTraining if folder.name.endswith("pretraining")
           else transformers.TFElectraForSequenceClassification)
    model = cls.from_pretrained(str(folder), from_pt=True)
    out = model(input_ids=tf.constant(ref["input_ids"]), attention_mask=tf.constant(ref["attention_mask"]),
                token_type_ids=tf.constant(ref["token_type_ids"]), training=False).logits.numpy()
    diff = np.abs(out - ref["logits"])
    if folder.name.endswith("pretraining"):
        diff = diff[ref["attention_mask"].astype(bool)]  # outputs at padding are unspecified
    worst = max(worst, float(diff.max()))
    print(json.dumps({"model": folder.name, "tf_class": cls.__name__, "shape": list(out.shape),
                      "max_abs_diff": float(diff.max()), "tensorflow": tf.__version__,
                      "transformers": transformers.__version__}))
print(f"worst |TF - PyTorch| = {worst:.2e} ({'OK' if worst <= 1e-4 else 'FAIL'}: tolerance 1e-4)")
sys.exit(0 if worst <= 1e-4 else 1)
EOF
