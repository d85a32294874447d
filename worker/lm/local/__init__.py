"""The local backend: a real small model served by llama.cpp on the CPU, fine-tuned with LoRA on the CPU.

`registry` registers its LMs and tasks (list `btq.worker.lm.local.registry` in `BTQ_IMPORTS`); `training/`
fine-tunes; `tasks/` holds the generated demo tasks.
"""
