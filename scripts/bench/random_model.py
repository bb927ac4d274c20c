"""Fills a Hugging Face model folder that holds only config.json and the tokenizer files with
seeded random weights (model.safetensors), for speed benchmarks on machines that cannot receive
the real weights: a device machine gets at most 64 MiB from here and reaches no model hub, and a
training step costs the same whatever the values of the weights.

Usage: random_model.py FOLDER   (scripts/gpu-bundle writes such a folder with `tierforge model
convert` and drops the weights; FOLDER keeps its config.json and tokenizer files)
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

folder = sys.argv[1]
torch.manual_seed(0)
config = AutoConfig.from_pretrained(folder)
model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
# Tied embeddings are stored once, under the input embedding's name (as the hub files are).
state = {k: v.contiguous() for k, v in model.state_dict().items()
         if not (config.tie_word_embeddings and k == "lm_head.weight")}
save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
print(json.dumps({"folder": folder, "tensors": len(state),
                  "parameters": sum(v.numel() for v in state.values())}))
