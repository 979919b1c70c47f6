"""The first-GPU-hour check (issue 17): one command, under 9 minutes on one CUDA GPU, everything written to --out.

    python benchmarks/gpu_check.py --out "$OUT"                 # CUDA: the full plan (~8.5 minutes)
    python benchmarks/gpu_check.py --out /tmp/gc --dry-run      # CPU: the same plan, tiny, gloo, fp32 (< 1 minute)

Parts, each a subprocess with its own time box (a failure or a timeout in one is recorded; the others still run):
  env       GPU name and memory, torch, CUDA, cuDNN, NCCL, transformers, Python versions.
  step      ours (bf16 autocast + torch.compile, static shapes) vs a step built from `transformers` classes
            (ElectraForPreTraining + ElectraForMaskedLM, benchmarks/pretrain_step.py's Reference: same sizes, same
            recipe, same batches; eager unless --ref-compile) for the small and base presets: tokens/s, MFU in the
            6N and paper conventions (electra/flops.py), peak memory, ratio ours/transformers.
  fp16      `pretrain()` in fp16 with the grad scaler, 20 steps: skipped steps, final scale, loss.
  torchrun  `torchrun --standalone --nproc_per_node 1 -m electra pretrain ...`, 20 steps, then a 1-process NCCL
            all_reduce + barrier (at world size 1 `electra.dist` does not start a process group, so the collective
            is checked on its own).
  pretrain  ELECTRA-Small from a prepared token subset for ~4 minutes (bf16, compiled, fixed length), evaluated
            8 times: the eval AUC curve. The step count comes from the step part's speed and the time left.

Output: results.json (every number), summary.md (the tables), logs/PART.log, runs/ (the pretraining run folders).

The prepared subset (~28 MB, carried to the GPU machine with the run tool's carry=[".cache/gpu_check/data-128"]):
    mkdir -p .cache/gpu_check && tar -xzf ../shared/data/corpus/enwiki-2015-sample.tar.gz -C .cache/gpu_check \\
        --wildcards 'text/AA/wiki_[0-5]?'                     # 60 files, ~60 MB of Wikipedia text
    electra prepare --input .cache/gpu_check/text/AA --tokenizer ../shared/data/vocab/bert-base-uncased.txt \\
        --out .cache/gpu_check/data-128 --seq-len 128 --workers 2
    du -sh .cache/gpu_check/data-128                          # must stay under 40 MB
--data points elsewhere. --dry-run prepares its own tiny corpus (a 2 MB slice, a 2,000-entry vocab, length 64).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

DEFAULT_DATA = REPO / ".cache/gpu_check/data-128"
PARTS = ("env", "step", "fp16", "torchrun", "pretrain")
# time box per part in seconds: (GPU, --dry-run); the total budget trims the last ones. On a quiet 2-core box the
# dry-run parts take ~5-15 s each; the boxes are failure caps, not estimates
BOXES = {"env": (30, 30), "step": (170, 60), "fp16": (50, 60), "torchrun": (60, 90), "pretrain": (270, 60)}
PRETRAIN_RESERVE_S = 50  # of the pretrain part's box: start-up, compilation, the last evaluation and checkpoint


# ---------------------------------------------------------------------------------------------------------------
# Parts (each runs in its own process: `gpu_check.py --part NAME`; writes OUT/parts/NAME.json as it goes)


def part_env(args) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg()[0], "hostname": platform.node()}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}",
                    cudnn=torch.backends.cudnn.version(), bf16=torch.cuda.is_bf16_supported())
        try:
            info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        except Exception as e:  # noqa: BLE001 - recorded, not fatal
            info["nccl"] = f"unavailable ({e})"
    return info


def part_step(args) -> dict:
    """Ours vs the transformers-built step, alternating steps on the same batches (pretrain_step.py's pieces)."""
    import torch

    from electra.config import preset
    from electra.flops import paper_train_flops_per_example, sixn_train_flops_per_token
    from electra.objectives import build_objective
    from pretrain_step import PEAK_TFLOPS, SPECIAL, Reference, make_batches, make_step, sync

    device = torch.device("cpu" if args.dry_run else "cuda")
    dtype = torch.float32 if args.dry_run else torch.bfloat16
    compile_ours = not args.dry_run
    plan = [("tiny", 8, 64, 2000, 1, 3)] if args.dry_run else \
        [("small", 128, 128, 30522, 5, 30), ("base", 256, 128, 30522, 5, 20)]  # paper batch sizes, seq 128
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else None
    peak_flops = next((v for k, v in PEAK_TFLOPS.items() if gpu and k in gpu), None)
    result = {"device": gpu or "cpu", "dtype": str(dtype).replace("torch.", ""), "compile_ours": compile_ours,
              "compile_reference": bool(args.ref_compile and not args.dry_run), "peak_flops": peak_flops,
              "presets": {}}
    for name, batch, seq, vocab, warmup, steps in plan:
        torch.manual_seed(0)
        cfg = preset(name, vocab_size=vocab)
        ours = build_objective(cfg, SPECIAL).to(device).train()
        ref = Reference(cfg).to(device).train()
        run_ours = torch.compile(ours) if compile_ours else ours
        run_ref = torch.compile(ref) if result["compile_reference"] else ref
        impls = {"ours": make_step(ours, lambda i, t, a: run_ours(i, t, a)["loss"], device, dtype),
                 "transformers": make_step(ref, run_ref, device, dtype)}
        batches = make_batches(warmup + steps, batch, seq, vocab, variable=False)  # static shapes
        row = {"batch": batch, "seq_len": seq, "tokens_per_step": batch * seq}
        for impl, step in impls.items():
            t0 = time.perf_counter()
            for b in batches[:warmup]:
                step(b)
            sync(device)
            row[impl] = {"warmup_s": time.perf_counter() - t0}
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                step(batches[0])
                sync(device)
                row[impl]["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        times = {impl: [] for impl in impls}
        for b in batches[warmup:]:
            for impl, step in impls.items():  # alternate so that noise hits both
                sync(device)
                t0 = time.perf_counter()
                step(b)
                sync(device)
                times[impl].append(time.perf_counter() - t0)
        sixn = sixn_train_flops_per_token(cfg, seq)
        paper = paper_train_flops_per_example(cfg, seq) / seq
        for impl in impls:
            med = statistics.median(times[impl])
            tps = batch * seq / med
            row[impl].update(ms_per_step=1000 * med, tokens_per_s=tps,
                             mfu_6n=tps * sixn / peak_flops if peak_flops else None,
                             mfu_paper=tps * paper / peak_flops if peak_flops else None)
        row["ratio_ours_over_transformers"] = row["transformers"]["ms_per_step"] / row["ours"]["ms_per_step"]
        row["flops_per_token_6n"], row["flops_per_token_paper"] = sixn, paper
        result["presets"][name] = row
        _write_part(args, "step", result)  # partial results survive a timeout in the next preset
        del ours, ref, run_ours, run_ref, impls
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def _pretrain_overrides(args, out: Path, steps: int, *extra: str) -> list[str]:
    if args.dry_run:
        base = ["--model.preset=tiny", "--data.batch_size=16", "--data.eval_batch_size=32", "--train.device=cpu",
                "--train.threads=1"]
    else:
        base = ["--model.preset=small", "--train.device=cuda"]
    return [*base, f"--data.dir={args.data}", f"--run.out={out}", f"--train.steps={steps}",
            "--run.progress=false", "--run.tensorboard=false", "--run.report=false", "--run.export=false",
            "--train.eval_every=0", "--train.eval_batches=4", f"--train.checkpoint_every={steps}",
            f"--train.log_every={max(1, steps // 4)}", f"--optim.warmup_steps={max(1, steps // 10)}", *extra]


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def part_fp16(args) -> dict:
    from electra import checkpoint
    from electra.pretrain import load_pretrain_config, pretrain

    precision = "fp32" if args.dry_run else "fp16"  # the loop refuses fp16 on CPU (no CPU grad-scaler run)
    out = args.out / "runs/fp16"
    cfg = load_pretrain_config(REPO / "configs/small.toml", _pretrain_overrides(
        args, out, 20, f"--train.precision={precision}"))
    t0 = time.perf_counter()
    result = pretrain(cfg, overwrite=True)
    state = checkpoint.load_state(result["checkpoint"])
    train = result["train"] or {}
    return {"precision": precision, "steps": result["step"], "run_s": time.perf_counter() - t0,
            "nonfinite_steps": result["nonfinite_steps"], "final_loss": train.get("loss"),
            "tokens_per_s": train.get("tokens_per_s"), "scaler": {k: v for k, v in state["scaler"].items()
                                                                  if isinstance(v, (int, float))}}


def part_torchrun(args) -> dict:
    out = args.out / "runs/torchrun"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    t0 = time.perf_counter()
    cmd = [*torchrun, "-m", "electra", "pretrain", str(REPO / "configs/small.toml"),
           *_pretrain_overrides(args, out, 20, "--train.precision=" + ("fp32" if args.dry_run else "bf16"))]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    result = {"command": " ".join(cmd[1:]).replace(sys.executable, "python"), "returncode": run.returncode,
              "run_s": time.perf_counter() - t0, "tail": (run.stdout + run.stderr)[-1500:]}
    train = [r for r in _metrics(out) if r.get("kind") == "train"]
    result.update(steps=train[-1]["step"] if train else 0, final_loss=train[-1]["loss"] if train else None)
    collective = subprocess.run([*torchrun, str(Path(__file__).resolve()), "--collective",
                                 *(["--dry-run"] if args.dry_run else [])],
                                cwd=REPO, env=env, capture_output=True, text=True)
    result["collective"] = {"returncode": collective.returncode,
                            "output": (collective.stdout + collective.stderr).strip()[-800:]}
    if run.returncode or collective.returncode:
        raise RuntimeError(f"torchrun failed (pretrain rc {run.returncode}, collective rc {collective.returncode})"
                           f": {result['tail'][-400:]} {result['collective']['output'][-300:]}")
    return result


def collective_check(dry_run: bool) -> int:
    """Inside torchrun: a process group on the real backend, one all_reduce and a barrier."""
    import torch
    import torch.distributed as td

    backend = "gloo" if dry_run else "nccl"
    device = torch.device("cpu") if dry_run else torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    td.init_process_group(backend=backend)
    x = torch.full((4,), float(td.get_rank() + 1), device=device)
    td.all_reduce(x)
    td.barrier()
    ok = bool((x == td.get_world_size() * (td.get_world_size() + 1) / 2).all())
    print(json.dumps({"backend": backend, "world_size": td.get_world_size(), "all_reduce_ok": ok}))
    td.destroy_process_group()
    return 0 if ok else 1


def part_pretrain(args) -> dict:
    from electra.pretrain import load_pretrain_config, pretrain

    step_json = args.out / "parts/step.json"
    steps_per_s, source = (0.0, "fixed at 40 steps in a dry run") if args.dry_run else \
        (60.0, "a guess: 1M tokens/s at batch 128")
    if step_json.is_file():
        small = json.loads(step_json.read_text()).get("presets", {}).get("tiny" if args.dry_run else "small")
        if small and not args.dry_run:
            steps_per_s, source = 1000 / small["ours"]["ms_per_step"], "step part (ours, small, bf16 + compile)"
    # the loop runs below the bare step's speed (a host read per step, logging, evaluations): plan 60% of it
    seconds = max(10.0, args.box_s - PRETRAIN_RESERVE_S)
    steps = 40 if args.dry_run else max(16, int(seconds * steps_per_s * 0.6))
    extra = ["--data.fixed_length=true", f"--train.eval_every={max(1, steps // 8)}"]
    extra += ["--train.precision=fp32"] if args.dry_run else ["--train.precision=bf16", "--train.compile=true",
                                                              "--train.eval_batches=20"]
    out = args.out / "runs/pretrain"
    cfg = load_pretrain_config(REPO / "configs/small.toml", _pretrain_overrides(args, out, steps, *extra))
    t0 = time.perf_counter()
    result = {"steps_planned": steps, "steps_per_s_estimate": steps_per_s, "estimate_from": source,
              "training_s_planned": None if args.dry_run else seconds}
    _write_part(args, "pretrain", result)
    pretrain(cfg, overwrite=True)
    result["run_s"] = time.perf_counter() - t0
    return {**result, **_pretrain_curve(out)}


def _pretrain_curve(out: Path) -> dict:
    rows = _metrics(out)
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    return {"steps_done": train[-1]["step"] if train else 0,
            "tokens_per_s": statistics.median([r["tokens_per_s"] for r in train[1:] or train]) if train else None,
            "mfu": train[-1].get("mfu") if train else None,
            "auc_curve": [{"step": r["step"], "elapsed_s": _elapsed(train, r["step"]), "auc": r.get("eval_rtd_auc"),
                           "gen_acc": r.get("eval_mlm_acc"), "disc_acc": r.get("eval_rtd_acc")} for r in evals]}


def _elapsed(train: list[dict], step: int):
    return next((r.get("elapsed_s") for r in train if r["step"] >= step), None)


PART_FUNCS = {"env": part_env, "step": part_step, "fp16": part_fp16, "torchrun": part_torchrun,
              "pretrain": part_pretrain}


def _write_part(args, name: str, payload: dict) -> None:
    path = args.out / "parts" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------------
# The driver: dry-run data, one subprocess per part under a time box, results.json + summary.md


def dry_run_data(out: Path) -> Path:
    """A tiny prepared corpus for --dry-run: 2 MB of Wikipedia, a 2,000-entry vocab trained here, length 64."""
    from electra.data import PackConfig, prepare
    from electra.sources import extract_corpus_slice, shared_data_dir
    from electra.tokenizer import save_tokenizer_folder, train_tokenizer

    data = out / "data-64"
    if (data / "meta.json").is_file():
        return data
    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("--dry-run needs ../shared/data (or $ELECTRA_SHARED_DATA) for its tiny corpus")
    text = extract_corpus_slice(shared / "corpus/enwiki-2015-sample.tar.gz", REPO / ".cache/slices/enwiki-2mb",
                                2 << 20)
    tok = save_tokenizer_folder(train_tokenizer([text], vocab_size=2000, limit_alphabet=300), out / "tokenizer")
    prepare([text], tok, data, PackConfig(seq_len=64, seed=0, valid_fraction=0.05), workers=0, progress_bar=False)
    return data


def run_part(args, name: str, box: float) -> dict:
    log = args.out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--out", str(args.out),
           "--data", str(args.data), "--box-s", str(box), *(["--dry-run"] if args.dry_run else []),
           *(["--ref-compile"] if args.ref_compile else [])]
    t0 = time.perf_counter()
    status = "ok"
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=box)
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the part and anything it started (torchrun workers)
            proc.wait()
            status = f"timed out after {box:.0f} s"
    path = args.out / "parts" / f"{name}.json"
    payload = json.loads(path.read_text()) if path.is_file() else {}
    if name == "pretrain" and status != "ok":  # the curve so far is still worth having
        payload.update(_pretrain_curve(args.out / "runs/pretrain"))
    tail = log.read_text(errors="replace").strip().splitlines()[-8:] if status != "ok" else []
    return {**payload, "status": status, "seconds": round(time.perf_counter() - t0, 1), "box_s": round(box),
            **({"log_tail": tail} if tail else {})}


def _fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec) if isinstance(v, (int, float)) else str(v)


def summary(results: dict) -> str:
    p = results["parts"]
    env = p.get("env", {})
    lines = [f"# gpu_check {'(dry run, CPU)' if results['dry_run'] else ''}", "",
             f"{results['date']}, {results['total_s']:.0f} s in all. Command: `{results['command']}`", "",
             "| part | status | seconds |", "|---|---|---|"]
    lines += [f"| {n} | {v['status']} | {v['seconds']} |" for n, v in p.items()]
    lines += ["", "## Environment", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in env.items() if k not in ("status", "seconds", "box_s", "log_tail")]
    step = p.get("step", {})
    if step.get("presets"):
        lines += ["", f"## Training step: ours vs transformers ({step.get('dtype')}, ours compiled: "
                      f"{step.get('compile_ours')}, reference compiled: {step.get('compile_reference')}, "
                      f"static shapes)", "",
                  "| preset | batch x len | impl | ms/step | tokens/s | MFU 6N | MFU paper | peak MiB | warm-up s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, row in step["presets"].items():
            for impl in ("ours", "transformers"):
                r = row[impl]
                pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
                lines.append(f"| {name} | {row['batch']} x {row['seq_len']} | {impl} | {_fmt(r['ms_per_step'], '.1f')}"
                             f" | {_fmt(r['tokens_per_s'], ',.0f')} | {pct(r['mfu_6n'])} | {pct(r['mfu_paper'])} | "
                             f"{_fmt(r.get('peak_mib'), '.0f')} | {_fmt(r['warmup_s'], '.1f')} |")
            lines.append(f"| {name} | | **ratio ours/transformers** | **{row['ratio_ours_over_transformers']:.2f}x**"
                         f" | | | | | |")
    fp16 = p.get("fp16", {})
    if "steps" in fp16:
        lines += ["", "## fp16 + grad scaler", "", f"{fp16['precision']}: {fp16['steps']} steps, "
                  f"{fp16['nonfinite_steps']} skipped, final loss {_fmt(fp16['final_loss'])}, scaler "
                  f"{fp16['scaler']}, {_fmt(fp16.get('tokens_per_s'), ',.0f')} tokens/s"]
    tr = p.get("torchrun", {})
    if "returncode" in tr:
        lines += ["", "## torchrun, 1 process", "", f"`{tr['command']}`: exit {tr['returncode']}, {tr['steps']} "
                  f"steps, final loss {_fmt(tr['final_loss'])}; collective: {tr['collective']['output'][-200:]}"]
    pre = p.get("pretrain", {})
    if "steps_planned" in pre:
        lines += ["", "## Pretraining ELECTRA-Small from the prepared subset", "",
                  f"{pre.get('steps_done', 0)} of {pre['steps_planned']} steps (estimate "
                  f"{pre['steps_per_s_estimate']:.1f} steps/s from {pre['estimate_from']}), {_fmt(pre.get('tokens_per_s'), ',.0f')} tokens/s, "
                  f"MFU {_fmt(pre.get('mfu'))}", "", "| step | elapsed s | eval AUC | gen acc | disc acc |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['step']} | {_fmt(r['elapsed_s'], '.0f')} | {_fmt(r['auc'], '.4f')} | "
                  f"{_fmt(r['gen_acc'], '.3f')} | {_fmt(r['disc_acc'], '.3f')} |" for r in pre.get("auc_curve", [])]
    failed = {n: v["log_tail"] for n, v in p.items() if v.get("log_tail")}
    for name, tail in failed.items():
        lines += ["", f"## {name}: last log lines", "", "```", *tail, "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--out", type=Path, help="folder for results.json, summary.md, logs/, runs/ (required)")
    ap.add_argument("--data", type=Path, default=None, help=f"prepared data for the pretraining parts "
                                                           f"(default {DEFAULT_DATA.relative_to(REPO)})")
    ap.add_argument("--dry-run", action="store_true", help="the same plan on CPU: tiny preset, fp32, gloo, no compile")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--budget-s", type=float, default=520, help="wall-clock budget for all parts (default 520)")
    ap.add_argument("--ref-compile", action="store_true", help="torch.compile the transformers step as well")
    ap.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    ap.add_argument("--box-s", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--collective", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.collective:
        return collective_check(args.dry_run)
    if args.out is None:
        ap.error("--out is required")
    args.out = args.out.resolve()
    if args.part:
        args.data = Path(args.data)
        _write_part(args, args.part, PART_FUNCS[args.part](args))
        return 0

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_check: CUDA is not available here; use --dry-run for the CPU rehearsal")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"gpu_check: unknown part(s) {', '.join(unknown)}; parts: {', '.join(PARTS)}")
    started = time.perf_counter()
    if (args.out / "parts").is_dir():
        shutil.rmtree(args.out / "parts")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        args.data = dry_run_data(args.out) if args.dry_run else DEFAULT_DATA
    args.data = args.data.resolve()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "dry_run": args.dry_run, "data": str(args.data),
               "command": "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "parts": {}}
    for i, name in enumerate(parts):
        left = args.budget_s - (time.perf_counter() - started)
        later = sum(BOXES[p][args.dry_run] for p in parts[i + 1:])
        box = max(5.0, min(BOXES[name][args.dry_run], left - min(later, max(0.0, left - 5.0) / 2)))
        if name in ("fp16", "torchrun", "pretrain") and not (args.data / "meta.json").is_file():
            results["parts"][name] = {"status": f"skipped: no prepared data in {args.data} (see the docstring)",
                                      "seconds": 0}
        elif left < 5:
            results["parts"][name] = {"status": "skipped: out of time", "seconds": 0}
        else:
            results["parts"][name] = run_part(args, name, box)
        print(f"gpu_check: {name}: {results['parts'][name]['status']} ({results['parts'][name]['seconds']} s)",
              flush=True)
        results["total_s"] = time.perf_counter() - started
        (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
        (args.out / "summary.md").write_text(summary(results))
    print(f"gpu_check: wrote {args.out / 'results.json'} and {args.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
