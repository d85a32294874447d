"""LM backends: the deterministic simulated LM (and the embedded demo task on it), the local llama.cpp models.

Backends register into the core's registry and fine-tune through dspy's provider interface. May import
`core` and `artifacts`; imports no Celery and nothing of `state`.
"""
