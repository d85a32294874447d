"""CPU fine-tuning: chat examples to tokens, LoRA training in a child process, GGUF conversion, publication."""
