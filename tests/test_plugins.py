"""The core's hooks work for any plug-in, not only tokzoo.fourm (docs/ARCHITECTURE.md, "Plug-ins")."""

import numpy as np
import pytest
from test_data import N_CROPS, make_out

from tokzoo.errors import InputError
from tokzoo.tokenizers import loaders
from tokzoo.tokenizers.zoo import load_tokenizer
from tokzoo.tokens import foreign, make_loader
from tokzoo.tokens.shards import count_members, open_shard
from tokzoo.tokens.spec import dataset_manifest


class ToyReader:
    """A layout keeping each modality's shards in ``<modality>.toy/`` (no manifest.json)."""

    def __init__(self, root, modalities):
        self.root, self.modalities = root, modalities
        self.shards = sorted(p.name for p in (root / f"{modalities[0]}.toy").glob("*.tar"))
        self.counts = [count_members(root / f"{modalities[0]}.toy" / name) for name in self.shards]

    def id_limits(self):
        return dict.fromkeys(self.modalities)

    def open(self, modality, shard):
        return open_shard(self.root / f"{modality}.toy" / shard)


@pytest.fixture
def toy_hooks(monkeypatch):
    monkeypatch.setattr(foreign, "_LAYOUTS", {})
    monkeypatch.setattr(loaders, "_LOADERS", {})
    foreign.register_layout(
        foreign.ForeignLayout(
            "toy",
            lambda root: (root / "rgb.toy").is_dir(),
            ToyReader,
            lambda root: {"modalities": {"rgb": {"toy": True}}},
        )
    )


def test_a_registered_layout_is_read_by_the_loader_and_the_trainer(tmp_path, toy_hooks):
    make_out(tmp_path / "tokzoo")
    toy = tmp_path / "toy"
    toy.mkdir()
    for modality in ("rgb", "depth"):
        (tmp_path / "tokzoo" / modality).rename(toy / f"{modality}.toy")
    ours = list(make_loader(tmp_path / "tokzoo", ["crops"], 4, shuffle=False, require_complete=False))
    assert sum(len(b["__key__"]) for b in ours) == 16  # the crops folder alone still reads as tokzoo's
    batches = list(make_loader(toy, ["rgb", "depth"], 4, shuffle=False, crop=1))
    assert [k for b in batches for k in b["__key__"]] == [f"s{i:04d}" for i in range(16)]
    assert np.array_equal(batches[0]["rgb"][:, 0].numpy() % 1000, np.arange(4) * N_CROPS + 1)  # sample * N_CROPS + crop
    assert dataset_manifest(toy) == {"modalities": {"rgb": {"toy": True}}}
    foreign._LAYOUTS.clear()
    with pytest.raises(InputError, match="manifest.json: missing"):
        dataset_manifest(toy)


def test_a_registered_loader_answers_for_its_folders_and_names(tmp_path, toy_hooks):
    from tokzoo.tokenizers.structured.palette import PaletteTokenizer

    made = []

    def load(path, name):
        if (path / "toy.txt").is_file():
            made.append(name)
            return PaletteTokenizer()
        return None

    loaders.register_loader(
        loaders.TokenizerLoader(
            "toy", load, lambda: ["toy_palette"], lambda name, download: (tmp_path / "toy", f"{name}-copy")
        )
    )
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toy.txt").write_text("mine")
    assert isinstance(load_tokenizer(tmp_path / "toy"), PaletteTokenizer)
    assert isinstance(load_tokenizer("toy_palette"), PaletteTokenizer)
    assert made == ["toy", "toy_palette-copy"]
