"""Text models on the textualized prompts: BERT-family encoders and LLaMA-family decoders.

``llm/finetune.py`` is the entry point (``accelerate launch llm/finetune.py --help``).
"""
