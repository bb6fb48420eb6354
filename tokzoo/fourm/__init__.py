"""Interoperability with ml-4m (4M / 4M-21): its pre-tokenized data layouts and its released tokenizers.

- :mod:`.names`: 4M modality names (``tok_depth@224``) and ml-4m's released ``MODALITY_INFO`` facts;
- :mod:`.info`: the modality entries an export writes for ml-4m (``fourm_modalities.json`` / ``.py``);
- :mod:`.export`: a tokzoo token dataset -> ml-4m's webdataset or folder layout (``tokzoo export --to 4m``);
- :mod:`.reader`: ml-4m's layouts read as tokzoo shards (through the layout hook, :mod:`.plugin`);
- :mod:`.plugin`: fills the core's hooks (tokzoo.tokens.foreign, tokzoo.tokenizers.loaders); tokzoo/plugins.py calls it;
- :mod:`.report`: ``tokzoo inspect`` / ``show`` on those layouts;
- :mod:`.checkpoints`: released tokenizer files (hub folder, single safetensors; ``.pth`` refused), tensor names;
- :mod:`.vqvae`: ViT / MLP encoders and decoders, the cosine VQ and Memcodes, with ml-4m's tensor names;
- :mod:`.unet`, :mod:`.diffusion`: the DiVAE patched UNet and deterministic DDIM sampling;
- :mod:`.conventions`: 4M's input conventions per domain, over tokzoo's raw values;
- :mod:`.tokenizer`: :class:`FourMTokenizer`, what ``tokzoo.load_tokenizer`` returns for a 4M checkpoint.

Nothing here imports ml-4m; facts taken from it name the commit they were read at (cda590f).
"""
