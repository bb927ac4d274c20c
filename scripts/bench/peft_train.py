"""PyTorch + PEFT side of scripts/bench-train: the same LoRA job, tokens/s as JSON on stdout."""
import json
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, data, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
folder, name = gguf.rsplit("/", 1)
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                         "gate_proj", "up_proj", "down_proj"]))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.0)
rows = [json.loads(l)["messages"] for l in open(data)]
def token_ids(messages):
    r = tok.apply_chat_template(messages, tokenize=True)
    # transformers 5 returns a BatchEncoding, 4.x a plain list of ids.
    return list(r["input_ids"] if hasattr(r, "keys") else r)


enc = [token_ids(m)[:512] for m in rows]
torch.set_num_threads(torch.get_num_threads())
tokens, t0 = 0, time.time()
for s in range(steps):
    batch = enc[(4 * s) % len(enc):(4 * s) % len(enc) + 4]
    t = max(len(x) for x in batch)
    ids = torch.tensor([x + [0] * (t - len(x)) for x in batch])
    labels = torch.tensor([x + [-100] * (t - len(x)) for x in batch])
    loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    tokens += sum(len(x) for x in batch)
print(json.dumps({"tokens_per_s": tokens / (time.time() - t0), "steps": steps}))
