"""The zoo: the Tokenizer base (base.py), learned VQ/FSQ tokenizers (learned.py, quantizers.py, models/), text and
structured tokenizers (text.py, structured/), named tokenizers and their shipped weights (zoo.py, weights/),
checkpoints (checkpoint.py), the tokenizer trainer (training/) and its evaluation (evaluation/ -> training/).

Nothing is imported here, so that ``import tokzoo.tokenizers.zoo`` does not pay for torch-backed modules.
"""
