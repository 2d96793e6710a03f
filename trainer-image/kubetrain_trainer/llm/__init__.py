"""The causal-lm task: fine-tuning a pre-trained Hugging Face language model (supervised
fine-tuning on instruction/response pairs, or continued pretraining on raw text), with LoRA
adapters through peft or every weight.

A package of its own because it runs on transformers and peft, which the classification tasks
never import: `kubetrain_trainer.job` enters it (`llm.job.train`) only for `type: causal-lm`, so
the other tasks do not pay for importing them.
"""
