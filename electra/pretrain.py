"""ELECTRA pretraining: setup, then one linear training loop.

    electra pretrain configs/debug.toml --data.dir=runs/data --train.steps=200       # CPU, seconds
    electra pretrain configs/small.toml --resume                                       # continue the newest checkpoint
    torchrun --standalone --nproc_per_node 8 -m electra pretrain configs/base.toml     # 8 GPUs (README for 2 nodes)

    from electra.pretrain import load_pretrain_config, pretrain
    result = pretrain(load_pretrain_config("configs/debug.toml", ["--data.dir=runs/data"]))   # final metrics, run dir

The run file's schema and parsing are in electra/pretrain_config.py; evaluation and collapse diagnosis in
electra/diagnose.py; seeds, RNG state and the run folder in electra/runs.py. Here: `setup` (data, model, optimizer,
resume) and `train` (the loop), with logging, evaluation and checkpoints as small functions called from it.

The loop (google-research/electra `run_pretraining.py` recipe): AdamW eps 1e-6, weight decay 0.01 except LayerNorm
and biases (or the official no-bias-correction update, optim.name = "adamw-official"), linear warm-up overlapped
with linear decay, clipping at 1.0, gradient accumulation, bf16 autocast (fp16 with a grad scaler), optional
torch.compile, DDP under torchrun. Masking, sampling and dropout draw from seeds derived from (seed, step, shard),
where shard = micro-step * world_size + rank names the slice of the global batch: a run resumes bit for bit and a
2-process run sees the same masks as 1 process with 2 accumulation steps. Metrics stay on the device and are read
once per log interval; the only per-step host read is the finite-loss check (a NaN/Inf step is skipped).

Run folder: config.json (resolved), metrics.jsonl, tb/, tokenizer/, checkpoints/step_NNNNNNN/, hf/discriminator +
hf/generator, curves.png + report.html.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from electra import checkpoint, dist, warmstart
from electra.config import ElectraConfig
from electra.diagnose import TRAIN_KEYS, diagnose, diagnose_after, eval_lines, evaluate, explain, persistent
from electra.errors import ElectraError
from electra.prefetch import Prefetcher
from electra.pretrain_config import PretrainConfig, keys_help, load_pretrain_config, resolved_config
from electra.runs import (MetricsLog, StopSignals, derived_seed, finished_result, prepare_run_dir, rng_state,
                          set_rng_state, start_run_dir, table_row, warn_schedule_change)
from electra.threads import describe_threads, torch_threads

# Dense bf16/fp16 tensor-core peak FLOP/s per GPU (NVIDIA datasheets); substring match, first hit wins.
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12,
              "4090": 165e12, "V100": 125e12, "T4": 65e12}


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ElectraError("train.precision='fp16' needs CUDA; on CPU use fp32 or bf16")
    return name


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def due(done: int, every: int, steps: int) -> bool:
    """Whether a periodic action (log, eval, checkpoint) runs after step `done`: every `every` steps (0 = never)
    and always after the last one."""
    return (every > 0 and done % every == 0) or done == steps


# ---------------------------------------------------------------------------------------------------------------
# Setup


@dataclass
class Run:
    """What setup() builds and the loop reads: settings resolved against the data and the machine, the modules, and
    the step to start from. `objective` is the raw module (checkpoints save it); `model` is what the loop calls
    (DDP and/or compiled around it)."""

    cfg: PretrainConfig
    env: dist.DistEnv
    say: Callable[..., None]  # a line to stderr (or file=sys.stdout) on rank 0, nothing elsewhere
    ecfg: ElectraConfig
    special: dict  # special token ids of the data
    seq_len: int
    micro: int  # sequences per micro-step per rank
    precision: str
    autocast: Callable[[], Any]
    loader: Any  # PretrainLoader: this rank's micro-batches of the train split
    objective: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Callable[[int], float]
    scaler: torch.amp.GradScaler
    flops: Any  # flops.FlopReport
    resolved: dict  # RUN/config.json
    ddp: torch.nn.Module | None = None
    model: torch.nn.Module | None = None
    start: int = 0
    nonfinite_total: int = 0
    batches: Any = None  # Prefetcher over `loader`: the batches train() reads (checkpoints take its state)

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run.out)


def setup(cfg: PretrainConfig, env: dist.DistEnv, resume: bool, overwrite: bool) -> Run:
    """Data, model, optimizer, run folder and (with `resume`) the newest valid checkpoint, in that order: nothing is
    written before the data and the settings are known to be usable."""
    from electra.loader import PretrainLoader
    from electra.flops import report as flop_report
    from electra.objectives import build_objective
    from electra.optim import build_optimizer, linear_schedule, param_groups

    t, o, main = cfg.train, cfg.optim, env.is_main
    say = (lambda *a, file=sys.stderr: tqdm.write(" ".join(map(str, a)), file=file)) if main else (lambda *a, **k: None)
    world, accum = env.world_size, t.accumulation
    if cfg.data.batch_size % (world * accum):
        raise ElectraError(f"data.batch_size={cfg.data.batch_size} is not divisible by world size {world} x "
                           f"train.accumulation {accum}")
    micro = cfg.data.batch_size // (world * accum)
    device = env.device
    precision = resolve_precision(t.precision, device)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.backends.cudnn.benchmark = False
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = lambda: torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)  # noqa: E731

    loader = PretrainLoader(cfg.data.dir, "train", batch_size=micro, rank=env.rank, world_size=world, seed=t.seed,
                            shuffle=True, drop_last=True, pad_to_multiple=cfg.data.pad_to_multiple,
                            fixed_length=cfg.data.fixed_length)
    meta, seq_len = loader.meta, loader.meta["seq_len"]
    special = {k: int(meta[f"{k}_id"]) for k in ("pad", "unk", "cls", "sep", "mask")}
    ecfg, start = warmstart.electra_config(cfg, meta, say)  # with model.init_from: the folder's sizes
    if main:  # only now that the data and the settings are known to be usable
        prepare_run_dir(Path(cfg.run.out), resume, overwrite)
    dist.barrier(env)

    torch.manual_seed(t.seed)  # the same initial weights on every rank
    objective = warmstart.load(build_objective(ecfg, special), start, say).to(device)
    groups = param_groups(objective, lr=o.lr, weight_decay=o.weight_decay)
    optimizer = build_optimizer(groups, o.name, lr=o.lr, eps=o.eps, betas=(o.beta1, o.beta2))
    flops = flop_report(ecfg, seq_len, cfg.data.batch_size)
    resolved = resolved_config(cfg, ecfg, flops, world_size=world, micro_batch_per_rank=micro, accumulation=accum,
                               seq_len=seq_len, precision=precision, device=str(device))
    run = Run(cfg, env, say, ecfg, special, seq_len, micro, precision, autocast, loader, objective, optimizer,
              linear_schedule(o.warmup_steps, t.steps), torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
              flops, resolved)
    if resume:
        resume_from_checkpoint(run)
    run.ddp = dist.wrap(objective, env)
    run.model = torch.compile(run.ddp) if t.compile else run.ddp
    run.batches = Prefetcher(loader, device, depth=2)  # from the resumed position; pretrain() closes it
    return run


def resume_from_checkpoint(run: Run) -> None:
    """Load the run's newest valid checkpoint into `run` (weights, optimizer, scaler, RNG, loader, step)."""
    ckpt = checkpoint.latest_valid(run.run_dir, report=run.say)
    if ckpt is None:
        run.say(f"no valid checkpoint in {run.run_dir}: starting from step 0")
        return
    meta = checkpoint.verify(ckpt)
    if meta["model"] != run.ecfg.to_dict():
        raise ElectraError(f"{ckpt} was trained with another model config; resume with the run's own "
                           f"settings ({run.run_dir / 'config.json'})")
    name = run.cfg.optim.name
    saved_optim = meta.get("config", {}).get("optim", {}).get("name", name)
    if saved_optim != name:
        raise ElectraError(f"{ckpt} was trained with optim.name='{saved_optim}', not '{name}': its "
                           f"optimizer state does not fit; resume with --optim.name={saved_optim}")
    warmstart.check_data_vocab(meta.get("tokenizer_vocab"), f"checkpoint {ckpt}", run.loader.meta, run.cfg.data.dir)
    checkpoint.load_weights(run.objective, ckpt)
    state = checkpoint.load_state(ckpt, run.optimizer)
    run.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    run.loader.load_state_dict(meta["loader"])
    run.start, run.nonfinite_total = int(state["step"]), int(state.get("nonfinite_total", 0))
    run.say(f"resumed from {ckpt} at step {run.start:,}")
    warn_schedule_change(meta.get("config", {}), run.cfg, run.start, run.say)  # another train.steps: warn, go on


def open_log(run: Run) -> MetricsLog:
    """Rank 0: config.json, the tokenizer copy, metrics.jsonl (cut back to the start step) and the start-up lines
    (every derived number once). Other ranks: a log that writes nothing."""
    if not run.env.is_main:
        return MetricsLog.null()
    cfg = run.cfg
    start_run_dir(run.run_dir, run.resolved, cfg.data.dir)
    log = MetricsLog(run.run_dir, run.start, cfg.run.tensorboard, run.say)
    for line in run.flops.lines(cfg.train.steps):
        run.say(line)
    run.say(f"accumulation: {cfg.train.accumulation} micro-step(s) of {run.micro} sequences per rank x "
            f"{run.env.world_size} rank(s) = {cfg.data.batch_size} sequences per step; device {run.env.device}, "
            f"{torch.get_num_threads()} thread(s) ({describe_threads(cfg.train.threads)}), "
            f"precision {run.precision}{', compiled' if cfg.train.compile else ''}; {len(run.loader.dataset):,} "
            f"train examples of <= {run.seq_len} tokens")
    return log


# ---------------------------------------------------------------------------------------------------------------
# One step, and what happens at log / eval / checkpoint intervals


def forward_backward(run: Run, step: int, batches, mask_gen: torch.Generator) -> tuple[dict, int]:
    """The accumulation micro-steps of one optimizer step: gradients accumulate in the parameters; returns the
    step's mean metrics (tensors on the device, keyed as TRAIN_KEYS) and the tokens this rank read."""
    t, world, tokens, sums = run.cfg.train, run.env.world_size, 0, {}
    accum = t.accumulation
    for m in range(accum):
        batch = next(batches)  # already on the device (prefetch.Prefetcher)
        tokens += batch["input_ids"].numel()
        shard = m * world + run.env.rank  # which slice of the global batch this is, whatever the layout
        mask_gen.manual_seed(derived_seed(t.seed, step, shard, 0))
        torch.manual_seed(derived_seed(t.seed, step, shard, 1))  # dropout
        sync = contextlib.nullcontext() if m == accum - 1 or world == 1 else run.ddp.no_sync()
        noise = run.objective.draw_noise(batch["input_ids"], mask_gen) if t.compile else mask_gen  # one graph
        with sync:
            with run.autocast():
                out = run.model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                                generator=noise)
            run.scaler.scale(out["loss"] / accum).backward()
        for k in TRAIN_KEYS:
            if k in out:
                sums[k] = sums.get(k, 0) + out[k].detach().float() / accum
    return sums, tokens


def step_is_bad(run: Run, loss: torch.Tensor, grad_norm: torch.Tensor) -> bool:
    """Whether any rank saw a NaN/Inf loss (or gradient norm, except under fp16, where overflowing gradients are
    the grad scaler's business). The one per-step host read."""
    bad = ~torch.isfinite(loss)
    if run.precision != "fp16":
        bad = bad | ~torch.isfinite(grad_norm)
    return bool(dist.all_reduce_max(bad.float(), run.env).item())


@dataclass
class Window:
    """Metrics summed on the device over the good steps since the last log, and the tokens and time they took."""

    sums: torch.Tensor | None = None
    steps: int = 0
    tokens: int = 0
    clock: float = field(default_factory=time.perf_counter)

    def add(self, row: torch.Tensor) -> None:
        self.sums = row if self.sums is None else self.sums + row
        self.steps += 1


def train_record(run: Run, window: Window, keys: list[str], done: int, lr: float, started: float, peak) -> dict:
    """The `train` record of a log interval: mean metrics over ranks and steps (host read once per interval)."""
    world = run.env.world_size
    values = dist.all_reduce_mean(window.sums / window.steps, run.env).tolist()
    now = time.perf_counter()
    rec = {"kind": "train", "step": done, **dict(zip(keys + ["grad_norm"], values)), "lr": lr,
           "tokens_per_s": window.tokens * world / max(now - window.clock, 1e-9),
           "nonfinite_steps": run.nonfinite_total, "elapsed_s": now - started}
    if peak:
        rec["mfu"] = run.flops.sixn_flops_per_token * rec["tokens_per_s"] / (peak * world)
    return rec


def show_train(bar, rec: dict, header: bool) -> None:
    """The progress bar's summary and one row of the console table (rank 0)."""
    mfu = f" MFU {rec['mfu']:.1%}" if "mfu" in rec else ""
    bar.set_postfix_str(f"loss {rec['loss']:.3f} gen {rec['mlm_acc']:.1%} disc {rec.get('rtd_acc', float('nan')):.1%} "
                        f"{rec['tokens_per_s']:,.0f} tok/s{mfu}", refresh=False)
    bar.write(table_row(rec, header=header), file=sys.stdout)


def run_eval(run: Run, done: int, log: MetricsLog) -> dict:
    """Held-out metrics on rank 0, logged (the other ranks wait at the barrier); the `eval` record, {} off rank 0."""
    record = {}
    if run.env.is_main:
        cfg, t = run.cfg, run.cfg.train
        record = explain({"kind": "eval", "step": done, "tokens_seen": done * run.flops.tokens_per_step, **evaluate(
            run.objective, cfg.data.dir, cfg.data.eval_batch_size, t.eval_batches, run.env.device, run.autocast,
            t.seed + 1)}, run.ecfg.objective.mask_prob)  # + the AUC beside the reference detectors, the warnings
        log.write(record)
        for line in eval_lines(record):
            run.say(line, file=sys.stdout)
    dist.barrier(run.env)
    return record


def save(run: Run, step_done: int, last_train: dict, last_eval: dict) -> Path | None:
    """A checkpoint after `step_done` steps (rank 0 writes; every rank waits); its folder on rank 0."""
    state = dict(step=step_done, rng=rng_state(), scaler=run.scaler.state_dict(), nonfinite_total=run.nonfinite_total)
    path = None
    if run.env.is_main:
        meta = {"model": run.ecfg.to_dict(), "special_ids": run.special, "loader": run.batches.state_dict(),
                "tokenizer_vocab": run.loader.meta.get("tokenizer_vocab"),
                "seq_len": run.seq_len, "config": run.cfg.to_dict(), "train": last_train, "eval": last_eval}
        path = checkpoint.save_checkpoint(run.run_dir, step_done, run.objective, run.optimizer, state, meta,
                                          keep=run.cfg.train.keep_checkpoints)
    dist.barrier(run.env)
    return path


def finish(run: Run, result: dict, ckpt_path: Path | None) -> dict:
    """Rank 0, after the last step: the Hugging Face folders of the final checkpoint and the report."""
    if run.cfg.run.export and ckpt_path is not None:
        loaded, meta = checkpoint.load_objective(ckpt_path)
        written = checkpoint.export_hf(loaded, meta, run.run_dir / "hf")
        result["hf"] = {k: str(v) for k, v in written.items()}
        run.say(f"Hugging Face folders: {', '.join(str(v) for v in written.values())}")
    if run.cfg.run.report:
        from electra.report import write_report

        result["report"] = str(write_report(run.run_dir))
        run.say(f"report: {result['report']}")
    return result


# ---------------------------------------------------------------------------------------------------------------
# The loop


def train(run: Run, stop: StopSignals | None = None) -> dict:
    """Steps run.start .. train.steps; returns the final train/eval metrics, the last checkpoint and the diagnoses."""
    from electra.optim import clip_grad_norm, set_lr

    cfg, t, o, main = run.cfg, run.cfg.train, run.cfg.optim, run.env.is_main
    if run.start >= t.steps:  # a finished run resumed: nothing to train, nothing rewritten
        return finished_result(run.run_dir, run.start, t.steps, run.say)
    log = open_log(run)
    peak, first_diagnosed = peak_flops(run.env.device), diagnose_after(t.diagnose_after, o.warmup_steps, t.steps)
    shown, streak, diagnoses = set(), {}, []  # problems reported, consecutive logs showing each, their records
    last_train, last_eval, ckpt_path, keys, nonfinite_run = {}, {}, None, [], 0
    mask_gen, batches = torch.Generator(device=run.env.device), run.batches
    window, started = Window(), time.perf_counter()
    bar = tqdm(total=t.steps, initial=run.start, desc="pretrain", unit="step", file=sys.stderr, dynamic_ncols=True,
               disable=not (main and cfg.run.progress))
    for step in range(run.start, t.steps):
        if step == getattr(run.objective, "switch_step", None):  # two-stage: the loop starts stage 2 (variants.py)
            run.objective.switch()
        lr = set_lr(run.optimizer, o.lr, run.schedule(step))
        sums, tokens = forward_backward(run, step, batches, mask_gen)
        keys = keys or list(sums)
        window.tokens += tokens
        run.scaler.unscale_(run.optimizer)
        grad_norm = clip_grad_norm(run.objective.parameters(), o.clip_norm).float()
        if step_is_bad(run, sums["loss"], grad_norm):  # skip the update on a NaN/Inf step
            run.optimizer.zero_grad(set_to_none=True)
            run.scaler.update()
            run.nonfinite_total, nonfinite_run = run.nonfinite_total + 1, nonfinite_run + 1
            run.say(f"warning: step {step + 1}: the loss or the gradients are NaN/Inf; update skipped "
                    f"({nonfinite_run} in a row, {run.nonfinite_total} in all)")
            if nonfinite_run >= t.max_nonfinite:
                path = save(run, step + 1, last_train, last_eval)
                raise ElectraError(
                    f"the loss was NaN/Inf for {nonfinite_run} steps in a row (up to step {step + 1}); stopped "
                    f"with a checkpoint ({path or run.run_dir / 'checkpoints'}) of the last good weights. Try a "
                    f"lower optim.lr or a longer optim.warmup_steps, train.precision=bf16 or fp32 instead of "
                    f"fp16, and check the data; then --resume")
        else:
            run.scaler.step(run.optimizer)
            run.scaler.update()
            run.optimizer.zero_grad(set_to_none=True)
            nonfinite_run = 0
            window.add(torch.stack([sums[k] for k in keys] + [grad_norm]))
        bar.update(1)
        done = step + 1

        if due(done, t.log_every, t.steps) and window.steps:
            rec = train_record(run, window, keys, done, lr, started, peak)
            log.write(rec)
            if main:
                show_train(bar, rec, header=not last_train)
            last_train, window = rec, Window()
            if done >= first_diagnosed:
                streak, problems = persistent(diagnose(rec, run.ecfg.objective.mask_prob), streak, shown)
                for kind, text in problems:
                    diagnoses.append({"kind": "diagnosis", "step": done, "problem": kind, "message": text})
                    log.write(diagnoses[-1])
                    run.say(f"diagnosis at step {done}: {text}", file=sys.stdout)
        if due(done, t.eval_every, t.steps):
            last_eval = run_eval(run, done, log)
        stopping = done < t.steps and stop is not None and stop.requested()  # SIGINT/SIGTERM, all ranks agree
        if due(done, t.checkpoint_every, t.steps) or stopping:
            ckpt_path = save(run, done, last_train, last_eval)
        if stopping:  # exit 130/143 with the command that continues
            raise stop.interrupted(done, ckpt_path, run.run_dir, close=(bar, log))
    bar.close()
    log.close()
    result = {"run_dir": str(run.run_dir), "step": t.steps, "train": last_train, "eval": last_eval,
              "checkpoint": str(ckpt_path) if ckpt_path else None, "nonfinite_steps": run.nonfinite_total,
              "diagnoses": diagnoses}
    return finish(run, result, ckpt_path) if main else result


def pretrain(cfg: PretrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Pretrain as `cfg` says; returns the final train/eval metrics, the run folder and the exported folders.
    Under torchrun every process calls this; only rank 0 writes files and prints."""
    t = cfg.train
    if not cfg.data.dir:
        raise ElectraError("data.dir is not set: point it at a folder written by `electra prepare`")
    if t.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts
    env = dist.init(t.device)
    deterministic, run = torch.are_deterministic_algorithms_enabled(), None
    try:
        with torch_threads(t.threads), StopSignals(env) as stop:  # threads = 0: auto; both restored on the way out
            return train(run := setup(cfg, env, resume, overwrite), stop.arm())  # Ctrl-C now: checkpoint, stop
    finally:  # process-wide switches go back as they were (pretrain() may be one call in a longer program)
        if run is not None:
            run.batches.close()  # the prefetch thread
        torch.use_deterministic_algorithms(deterministic)
        dist.close(env)


# ---------------------------------------------------------------------------------------------------------------
# CLI: electra pretrain CONFIG.toml [--resume] [--overwrite] [--section.key=value ...]


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Pretrain an ELECTRA generator + discriminator from a TOML run file (configs/*.toml). "
                          "Any key can be overridden as --section.key=value, e.g. --train.steps=1000 "
                          "--data.dir=runs/data --run.out=runs/try. Under torchrun, every process runs this.")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = keys_help()
    parser.add_argument("config", metavar="CONFIG", help="a TOML run file (or a run's config.json)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the newest valid checkpoint in run.out (default: refuse an existing run)")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing run.out and start over")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="--section.key=value",
                        help="overrides of the run file's keys, typed by the key's field")


def run(args: argparse.Namespace) -> int:
    overrides = []
    for item in args.overrides:  # argparse leaves flags given after the first override in the remainder
        if item in ("--resume", "--overwrite"):
            setattr(args, item[2:], True)
        else:
            overrides.append(item)
    cfg = load_pretrain_config(args.config, overrides)
    result = pretrain(cfg, resume=args.resume, overwrite=args.overwrite)
    ev = result.get("eval") or {}
    dist.print0(f"done: {result['step']:,} steps in {result['run_dir']}; eval gen acc "
                f"{ev.get('eval_mlm_acc', float('nan')):.1%}, disc acc {ev.get('eval_rtd_acc', float('nan')):.1%}")
    return 0
