"""Training throughput of the text LM: the workflow's Hugging Face Trainer step against a plain PyTorch loop, in one run.

Both train the same GPT-2 (``GPT2LMHeadModel``) on the same blocks of token ids with AdamW at the same
learning rate and batch, on the same device, and are timed over ``--steps`` optimizer steps after
``--warmup`` untimed ones (CUDA synchronised). Printed: tokens/s of each and, as the last line,
``ratio trainer/plain tokens/s: X.XX``.

* **Trainer**: ``transformers.Trainer`` with the device settings of the workflow's ``textlm_train``
  (``omicslm.textlm.train.make_trainer``: bf16 on CUDA when supported, CPU otherwise, no dataloader
  workers), with evaluation, checkpointing and TensorBoard off so that only the training step is timed.
* **Plain loop**: the model, an AdamW (``fused=True`` on CUDA), bf16 autocast on CUDA and, on CUDA,
  ``torch.compile`` (``--no-compile`` to leave it out); the batches are pre-built tensors.

``--model tiny`` is config.yaml's ``textlm.models.gpt2`` at its block size and tokenizer size; ``--model gpt2-124m`` is GPT-2
small (12 layers, 768 wide, 50,257 tokens) at block 1024, the size of the published llm.c figure (about
460k tokens/s on one H100 in bf16): on CUDA the script prints ours beside it. The token ids are random
(uniform over the vocabulary): throughput does not depend on what the tokens say.

Examples::

    python benchmarks/textlm_throughput.py --model tiny --threads 2
    python benchmarks/textlm_throughput.py --model gpt2-124m --batch-size 16 --steps 30   # on a GPU
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LLM_C_H100_TOKENS_PER_S = 460_000  # llm.c GPT-2 124M, block 1024, bf16, one H100 (its README's figure)


def gpt2_config(model: str, block: int | None):
    """The GPT2Config of ``--model`` and its block size."""
    from transformers import GPT2Config

    if model == "gpt2-124m":
        block = block or 1024
        return GPT2Config(n_positions=block, n_embd=768, n_layer=12, n_head=12, vocab_size=50257), block
    from omicslm.config import load_config

    cfg = load_config(ROOT / "config.yaml")["textlm"]
    block = block or int(cfg["data"]["block_size"])
    tok = cfg["tokenizer"]
    vocab = int(tok["vocab_size"]) if tok["source"] == "train" else 50257  # the workflow's BPE (GPT-2's: 50,257)
    return GPT2Config(n_positions=block, vocab_size=vocab, bos_token_id=vocab - 1, eos_token_id=vocab - 1,
                      **cfg["models"]["gpt2"]["config"]), block


def batches(n: int, batch: int, block: int, vocab: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (batch, block), generator=g) for _ in range(n)]


def time_trainer(config, data, *, lr: float, warmup: int, steps: int, threads: int) -> float:
    """Seconds of ``steps`` Trainer optimizer steps after ``warmup`` (the workflow's TrainingArguments)."""
    import datasets
    import torch
    from transformers import GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments, default_data_collator

    torch.manual_seed(0)
    lm = GPT2LMHeadModel(config)
    ids = torch.cat(data).tolist()
    ds = datasets.Dataset.from_dict({"input_ids": ids, "labels": ids})
    marks = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            marks[state.global_step] = time.perf_counter()

    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as work:
        # make_trainer's device settings (bf16 on CUDA, CPU otherwise, no dataloader workers); eval/saving/logging off
        args = TrainingArguments(
            output_dir=work, report_to=[], eval_strategy="no", save_strategy="no", logging_steps=10_000,
            bf16=cuda and torch.cuda.is_bf16_supported(), use_cpu=not cuda, dataloader_num_workers=0,
            disable_tqdm=True, per_device_train_batch_size=data[0].shape[0], learning_rate=lr, weight_decay=0.0,
            max_steps=warmup + steps, lr_scheduler_type="constant", seed=0)
        trainer = Trainer(model=lm, args=args, train_dataset=ds, data_collator=default_data_collator,
                          callbacks=[Clock()])
        torch.set_num_threads(threads)
        trainer.train()
    return marks[warmup + steps] - marks[warmup]


def time_plain(config, data, *, lr: float, warmup: int, steps: int, compile_model: bool) -> float:
    """Seconds of ``steps`` plain-loop optimizer steps after ``warmup``."""
    import torch
    from transformers import GPT2LMHeadModel

    from omicslm.train.device import pick_device

    dev = pick_device("auto")
    cuda = dev.type == "cuda"
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(config).to(dev).train()
    opt = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.0, fused=cuda)
    step_fn = lm
    if cuda and compile_model:
        step_fn = torch.compile(lm)
    bf16 = cuda and torch.cuda.is_bf16_supported()
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x = data[i % len(data)].to(dev, non_blocking=True)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = step_fn(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--model", choices=["tiny", "gpt2-124m"], default="tiny", help="GPT-2 size (see above)")
    ap.add_argument("--block", type=int, help="tokens per block (default: the model's: config's / 1024)")
    ap.add_argument("--batch-size", type=int, default=16, help="blocks per optimizer step")
    ap.add_argument("--steps", type=int, default=40, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (allocator, compile, caches)")
    ap.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate (both)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch)")
    ap.add_argument("--no-compile", action="store_true", help="no torch.compile in the plain loop on CUDA")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    config, block = gpt2_config(args.model, args.block)
    data = batches(min(args.warmup + args.steps, 64), args.batch_size, block, config.vocab_size, seed=0)
    tokens = args.steps * args.batch_size * block
    cuda = torch.cuda.is_available()
    where = f"cuda ({torch.cuda.get_device_name()})" if cuda else f"cpu, {args.threads} threads"
    n_params = sum(p.numel() for p in __import__("transformers").GPT2LMHeadModel(config).parameters())
    print(f"GPT-2 {args.model}: {n_params / 1e6:.1f}M parameters, block {block}, batch {args.batch_size}, "
          f"{args.steps} timed steps after {args.warmup}; {where}", flush=True)
    plain = time_plain(config, data, lr=args.lr, warmup=args.warmup, steps=args.steps,
                       compile_model=not args.no_compile)
    trainer = time_trainer(config, data, lr=args.lr, warmup=args.warmup, steps=args.steps, threads=args.threads)
    rows = [("HF Trainer (workflow)", trainer), ("plain PyTorch loop" + (" (fused AdamW, bf16, compile)" if cuda
                                                                        else ""), plain)]
    for name, sec in rows:
        print(f"{name:44s} {sec:8.2f} s  {tokens / sec:12,.0f} tokens/s")
    if cuda and args.model == "gpt2-124m" and block == 1024:
        best = tokens / min(trainer, plain)
        print(f"llm.c on one H100 (published): {LLM_C_H100_TOKENS_PER_S:,} tokens/s; ours at best "
              f"{best:,.0f} = {100 * best / LLM_C_H100_TOKENS_PER_S:.0f}% of it (the GPU here may differ)")
    ratio = (tokens / trainer) / (tokens / plain)
    assert math.isfinite(ratio)
    print(f"ratio trainer/plain tokens/s: {ratio:.2f}")


if __name__ == "__main__":
    main()
