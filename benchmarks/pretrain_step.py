"""One ELECTRA pretraining step, ours vs a reference built from `transformers` classes, in the same process.

    python benchmarks/pretrain_step.py --preset small --batch-size 32 --seq-len 128            # CPU, fixed length
    python benchmarks/pretrain_step.py --preset small --batch-size 32 --variable-length
    python benchmarks/pretrain_step.py --preset small --batch-size 128 --device cuda --dtype bf16 --compile
    python benchmarks/pretrain_step.py --smoke                                                 # CI-size check

The reference is what a user assembles from Hugging Face today: `ElectraForMaskedLM` generator +
`ElectraForPreTraining` discriminator with tied embeddings (the generator's embeddings module is the discriminator's,
its LM head weight the word embeddings), 15% masking with labels=-100 elsewhere, Gumbel-max sampling at the masked
positions, loss = MLM + 50 * RTD, the same AdamW (eps 1e-6, wd 0.01), clipping 1.0 and the same batches.
Both run on the same device and dtype. Steps alternate (ours, reference, ours, ...) so machine noise hits both;
warm-up steps (and compilation) are excluded and reported apart; the median of N timed steps is printed with
tokens/s, peak memory, MFU in both FLOP conventions (GPU only) and the ratio ours / reference.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from electra.config import preset  # noqa: E402
from electra.flops import paper_train_flops_per_example, sixn_train_flops_per_token  # noqa: E402
from electra.hf import hf_config  # noqa: E402
from electra.objective import gumbel_sample  # noqa: E402
from electra.objectives import build_objective  # noqa: E402
from electra.optim import build_optimizer, param_groups  # noqa: E402

SPECIAL = dict(pad=0, unk=100, cls=101, sep=102, mask=103)
PEAK_TFLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "V100": 125e12}  # dense bf16 (fp16 for V100)


def make_batches(n, batch_size, seq_len, vocab, variable, seed=0):
    """Random token batches shaped like packed pretraining data: [CLS] a [SEP] b [SEP], optional padding."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(1000, vocab, (batch_size, seq_len), generator=g)
        am = torch.ones_like(ids)
        lengths = torch.randint(seq_len // 4, seq_len + 1, (batch_size,), generator=g) if variable \
            else torch.full((batch_size,), seq_len)
        tt = torch.zeros_like(ids)
        for i, n_tok in enumerate(lengths.tolist()):
            half = n_tok // 2
            ids[i, 0], ids[i, half], ids[i, n_tok - 1] = SPECIAL["cls"], SPECIAL["sep"], SPECIAL["sep"]
            tt[i, half + 1:n_tok] = 1
            ids[i, n_tok:], am[i, n_tok:], tt[i, n_tok:] = 0, 0, 0
        T = int(lengths.max())  # pad to the longest in the batch, as a dynamic-padding collator does
        T = min(seq_len, (T + 7) // 8 * 8)
        batches.append((ids[:, :T].contiguous(), tt[:, :T].contiguous(), am[:, :T].contiguous()))
    return batches


class Reference(torch.nn.Module):
    """ELECTRA assembled from transformers classes, the way their docs suggest."""

    def __init__(self, cfg):
        super().__init__()
        import transformers

        self.disc = transformers.ElectraForPreTraining(
            transformers.ElectraConfig(**hf_config(cfg.discriminator, "pretraining")))
        self.gen = transformers.ElectraForMaskedLM(transformers.ElectraConfig(**hf_config(cfg.generator, "masked-lm")))
        self.gen.electra.embeddings = self.disc.electra.embeddings  # shared embeddings
        self.gen.generator_lm_head.weight = self.disc.electra.embeddings.word_embeddings.weight  # tied output
        table = torch.zeros(cfg.discriminator.vocab_size, dtype=torch.bool)
        table[[SPECIAL["pad"], SPECIAL["cls"], SPECIAL["sep"], SPECIAL["mask"]]] = True
        self.register_buffer("special", table, persistent=False)

    def forward(self, ids, tt, am):
        candidates = ~self.special[ids] & am.bool()
        selected = (torch.rand(ids.shape, device=ids.device) < 0.15) & candidates
        use_mask = selected & (torch.rand(ids.shape, device=ids.device) < 0.85)
        gen_out = self.gen(input_ids=ids.masked_fill(use_mask, SPECIAL["mask"]), attention_mask=am,
                           token_type_ids=tt, labels=ids.masked_fill(~selected, -100))
        sampled = gumbel_sample(gen_out.logits)  # fp32, no grad: (B, T)
        corrupted = torch.where(selected, sampled, ids)
        disc_out = self.disc(input_ids=corrupted, attention_mask=am, token_type_ids=tt,
                             labels=(corrupted != ids).long())
        return gen_out.loss + 50.0 * disc_out.loss


def make_step(model, forward, device, dtype, fused=None):
    """fused=None: build_optimizer's default (the fused AdamW kernel on CPU and CUDA); False: the per-parameter loop."""
    groups = param_groups(model, lr=5e-4, weight_decay=0.01)
    opt = build_optimizer(groups, "adamw", lr=5e-4, eps=1e-6, fused=fused)
    amp = dtype != torch.float32

    def step(batch):
        ids, tt, am = (t.to(device, non_blocking=True) for t in batch)
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            loss = forward(ids, tt, am)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small", help="model preset (default: small)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per step (default: 32)")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length (default: 128)")
    p.add_argument("--vocab-size", type=int, default=30522, help="vocabulary (default: 30522)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per implementation (default: 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default: 3)")
    p.add_argument("--variable-length", action="store_true", help="random lengths in [T/4, T], padded per batch")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="autocast dtype (default: fp32)")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--ablation", action="store_true",
                   help="instead of transformers, time our step three ways: as is (fused AdamW, --dtype), with "
                        "the per-parameter AdamW loop, and under bf16 autocast (docs/PERFORMANCE.md rows 5 and 6)")
    p.add_argument("--smoke", action="store_true", help="tiny shapes, 2 steps: checks the script runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.preset, args.batch_size, args.seq_len, args.vocab_size, args.steps, args.warmup = "tiny", 4, 32, 2000, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    cfg = preset(args.preset, vocab_size=args.vocab_size)
    ours = build_objective(cfg, SPECIAL).to(device).train()
    if args.ablation:  # each variant trains its own copy from the same initial weights
        copies = [copy.deepcopy(ours) for _ in range(2)]
        steps = {
            "ours": make_step(ours, lambda i, t, a: ours(i, t, a)["loss"], device, dtype),
            "loop AdamW": make_step(copies[0], lambda i, t, a: copies[0](i, t, a)["loss"], device, dtype,
                                    fused=False),
            "bf16 autocast": make_step(copies[1], lambda i, t, a: copies[1](i, t, a)["loss"], device,
                                       torch.bfloat16),
        }
    else:
        ref = Reference(cfg).to(device).train()
        run_ours, run_ref = ours, ref
        if args.compile:
            run_ours, run_ref = torch.compile(ours), torch.compile(ref)
        steps = {
            "ours": make_step(ours, lambda i, t, a: run_ours(i, t, a)["loss"], device, dtype),
            "transformers": make_step(ref, run_ref, device, dtype),
        }
    batches = make_batches(args.warmup + args.steps, args.batch_size, args.seq_len, args.vocab_size,
                           args.variable_length)
    warm = {}
    for name, step in steps.items():
        t0 = time.perf_counter()
        for b in batches[:args.warmup]:
            step(b)
        sync(device)
        warm[name] = time.perf_counter() - t0
    times = {name: [] for name in steps}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    peak = {}
    for name in steps:  # peak memory per implementation, one step each
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            steps[name](batches[0])
            sync(device)
            peak[name] = torch.cuda.max_memory_allocated() / 2**20
    for b in batches[args.warmup:]:
        for name, step in steps.items():  # alternate so noise hits both
            sync(device)
            t0 = time.perf_counter()
            step(b)
            sync(device)
            times[name].append(time.perf_counter() - t0)

    tokens = sum(int(b[2].sum()) for b in batches[args.warmup:]) / args.steps  # real (non-pad) tokens per step
    padded = sum(b[0].numel() for b in batches[args.warmup:]) / args.steps
    sixn = sixn_train_flops_per_token(cfg, args.seq_len)
    paper = paper_train_flops_per_example(cfg, args.seq_len) / args.seq_len
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else None
    peak_flops = next((v for k, v in PEAK_TFLOPS.items() if gpu and k in gpu), None)
    print(f"# {args.preset} preset, batch {args.batch_size} x {args.seq_len} "
          f"({'variable' if args.variable_length else 'fixed'} length, {tokens:.0f} real / {padded:.0f} padded "
          f"tokens per step), {device.type}{' ' + gpu if gpu else ''}, {args.dtype}"
          f"{', compiled' if args.compile else ''}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'impl':<14}{'ms/step':>10}{'tokens/s':>12}{'peak MiB':>10}{'MFU 6N':>9}{'MFU paper':>11}{'warm-up s':>11}")
    med = {}
    for name in steps:
        m = statistics.median(times[name])
        med[name] = m
        tps = tokens / m
        mfu = lambda f: f"{100 * tps * f / peak_flops:.1f}%" if peak_flops else "-"  # noqa: E731
        print(f"{name:<14}{1000 * m:>10.1f}{tps:>12.0f}{peak.get(name, float('nan')):>10.0f}{mfu(sixn):>9}"
              f"{mfu(paper):>11}{warm[name]:>11.1f}")
    for name in steps:
        if name != "ours":
            print(f"ratio ours/{name} (throughput): {med[name] / med['ours']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
