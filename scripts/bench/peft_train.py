"""PyTorch + PEFT side of scripts/bench-train: the same LoRA job, tokens/s as JSON on stdout.

Usage: peft_train.py MODEL DATA STEPS [--device cpu|cuda]
  MODEL   a GGUF file (read through transformers' GGUF loader) or a Hugging Face model folder
  DATA    chat JSONL ({"messages": [...]}), each conversation cut at 512 tokens
  STEPS   optimizer steps, batch 4

On the CPU the model is f32 (tokens/s over all steps, as bench-train has always measured). On
CUDA the base model is bf16 and the LoRA weights f32 (PEFT's default `autocast_adapter_dtype`),
what `tierforge train --device cuda` does; tokens/s is then the steady state after the first
step (which pays for CUDA's start-up), and the peak GPU memory torch allocated is reported.
"""
import json
import os
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

args = sys.argv[1:]
device = "cpu"
if "--device" in args:
    i = args.index("--device")
    device = args[i + 1]
    del args[i:i + 2]
model_path, data, steps = args[0], args[1], int(args[2])
cuda = device == "cuda"
dtype = torch.bfloat16 if cuda else torch.float32

if os.path.isdir(model_path):
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
else:
    folder, name = model_path.rsplit("/", 1)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                         "gate_proj", "up_proj", "down_proj"]))
model.to(device)
trainable = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(trainable, lr=2e-4, weight_decay=0.0)
rows = [json.loads(l)["messages"] for l in open(data)]


def token_ids(messages):
    r = tok.apply_chat_template(messages, tokenize=True)
    # transformers 5 returns a BatchEncoding, 4.x a plain list of ids.
    return list(r["input_ids"] if hasattr(r, "keys") else r)


def sync():
    if cuda:
        torch.cuda.synchronize()


enc = [token_ids(m)[:512] for m in rows]
torch.set_num_threads(torch.get_num_threads())
tokens, t0 = 0, time.time()
steady_tokens, steady_t0 = 0, None
for s in range(steps):
    batch = enc[(4 * s) % len(enc):(4 * s) % len(enc) + 4]
    t = max(len(x) for x in batch)
    ids = torch.tensor([x + [0] * (t - len(x)) for x in batch], device=device)
    labels = torch.tensor([x + [-100] * (t - len(x)) for x in batch], device=device)
    loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    n = sum(len(x) for x in batch)
    tokens += n
    if steady_t0 is None:
        sync()
        steady_t0 = time.time()
    else:
        steady_tokens += n
sync()
end = time.time()
out = {
    "tokens_per_s": tokens / (end - t0),
    "steps": steps,
    "device": device,
    "dtype": str(dtype).removeprefix("torch."),
    "lora_dtype": str(trainable[0].dtype).removeprefix("torch."),
}
if steps > 1:
    out["steady_tokens_per_s"] = steady_tokens / (end - steady_t0)
if cuda:
    out["gpu"] = torch.cuda.get_device_name()
    out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps(out))
