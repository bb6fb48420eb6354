"""Webdataset-style tar shards: members ``[dir/]<key>.<modality>.<ext>``, a sample's members contiguous.

Only members of requested modalities are read, and bytes are handed to the modality's own reader
(never pickle). Tars are listed by the one safe tar reader, :func:`~tokzoo.io.tarwalk.walk_tar`
(uncompressed tars read with ``pread``, gzip / bzip2 / xz ones as a stream); a member declaring more
than ``max_member_bytes`` (default :data:`~tokzoo.io.safety.MAX_FILE_BYTES`) or a GNU sparse member is
not read and becomes that modality's error. The key is everything before the first dot of the
member's name (with its directory), made safe with :func:`~tokzoo.io.keys.key_from_stem`. An unreadable,
truncated or tampered shard yields one sample whose ``errors["sample"]`` says so, after the complete
samples before the damage; a repeated key (across shards, or a sample's members split apart) is an
error on the repeat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

from tokzoo.errors import InputError
from tokzoo.io.formats import MODALITIES
from tokzoo.io.keys import key_from_stem
from tokzoo.io.safety import MAX_FILE_BYTES, check_limit
from tokzoo.io.samples import SAMPLE_ERROR, FileRef, RawSample, Reader, check_modalities
from tokzoo.io.tarwalk import BLOCK, TarMember, walk_tar
from tokzoo.vocabulary import canonical


def expand_urls(urls: str | Sequence[str]) -> list[str]:
    """A path, a brace pattern (``s-{000..003}.tar``) or a list of them -> list of shard paths."""
    import braceexpand

    patterns = [urls] if isinstance(urls, (str, Path)) else list(urls)
    return [u for p in patterns for u in braceexpand.braceexpand(str(p))]


def split_member(name: str) -> tuple[str, str, str] | None:
    """``"d/k.depth.npy"`` -> ``("d/k", "depth", ".npy")``; None when there is no ``.<modality>.<ext>`` part.
    An old modality name is given as its canonical one (``k.instances.png`` -> ``sam_instances``)."""
    head, _, base = name.removeprefix("./").rpartition("/")
    stem, dot, rest = base.partition(".")
    modality, dot2, ext = rest.partition(".")
    if not (stem and dot and dot2 and modality and ext):
        return None
    return (f"{head}/{stem}" if head else stem), canonical(modality), "." + ext.lower()


class TarReader(Reader):
    """Samples from webdataset tars, in shard order then member order.

    ``modalities=None`` reads every member whose modality is known and reports nothing missing;
    with a list, members of other modalities are skipped and a missing one is an error entry.
    """

    def __init__(
        self, urls: str | Sequence[str], modalities: Sequence[str] | None = None, max_member_bytes: int = MAX_FILE_BYTES
    ):
        self.shards = expand_urls(urls)
        self.max_member_bytes = check_limit(max_member_bytes, "max_member_bytes")
        self._required = modalities is not None
        self.modalities = check_modalities(modalities if modalities is not None else MODALITIES, str(urls))
        self._sources: dict[str, str] = {}

    def __len__(self) -> int:
        """Samples in all shards, counted from the tar headers (no member's data is read)."""
        return sum(self._count(shard) for shard in self.shards)

    def _count(self, shard: str) -> int:
        count, current = 0, None
        try:
            for member, _ in _members(shard, self.max_member_bytes):
                parts = split_member(member.name)
                if parts is not None and parts[1] in self.modalities and parts[0] != current:
                    count, current = count + 1, parts[0]
        except InputError:
            pass  # reading reports the damage; the count is for progress bars only
        return count

    def source_of(self, key: str) -> str:
        """``shard.tar:key`` for keys met so far (tars are streamed, so only after they were read)."""
        return self._sources[key]

    def raw(self) -> Iterator[RawSample]:
        self._sources = {}
        for shard in self.shards:
            yield from self._read_shard(shard)

    def _finish(self, shard: str, raw_key: str, files: dict[str, FileRef], refused: dict[str, str]) -> RawSample:
        key = key_from_stem(raw_key)
        errors = dict(refused)
        if key in self._sources:
            errors[SAMPLE_ERROR] = (
                f"{shard}:{raw_key}: duplicate key (also in {self._sources[key]}); keys must be unique "
                "and a sample's members contiguous"
            )
        else:
            self._sources[key] = f"{shard}:{raw_key}"
        if self._required:
            errors.update(
                {
                    m: f"{shard}:{raw_key}: missing (no .{m}.* member)"
                    for m in self.modalities
                    if m not in files and m not in errors
                }
            )
        return RawSample(key, files, errors)

    def _read_shard(self, shard: str) -> Iterator[RawSample]:
        current, files, refused = None, {}, {}
        try:
            for member, read in _members(shard, self.max_member_bytes):
                parts = split_member(member.name)
                if parts is None or parts[1] not in self.modalities:
                    continue
                raw_key, modality, ext = parts
                if raw_key != current:
                    if current is not None:
                        yield self._finish(shard, current, files, refused)
                    current, files, refused = raw_key, {}, {}
                problem = member_problem(member, self.max_member_bytes)
                if problem is not None:
                    refused[modality] = f"{shard}:{member.name}: {problem}"
                    files.pop(modality, None)
                else:
                    files[modality] = FileRef(f"{shard}:{member.name}", ext, data=read())
        except InputError as exc:
            if current is not None:  # the sample being read when the damage hit is incomplete
                message = f"{shard}:{current}: shard broke while reading this sample ({exc.reason})"
                yield RawSample(key_from_stem(current), {}, {SAMPLE_ERROR: message})
                current = None
            yield RawSample(
                key_from_stem(Path(shard).name), {}, {SAMPLE_ERROR: f"{shard}: unreadable tar ({exc.reason})"}
            )
        if current is not None:
            yield self._finish(shard, current, files, refused)


def _members(shard: str, max_member_bytes: int) -> Iterator[tuple[TarMember, Callable[[], bytes]]]:
    """``(member, read)`` of each regular file in ``shard``, in stored order (:func:`~tokzoo.io.tarwalk.walk_tar`)."""
    for member, read in walk_tar(shard, max_skip=max_member_bytes + BLOCK):
        if member.regular:
            yield member, read


def member_problem(member: TarMember, max_member_bytes: int) -> str | None:
    """Why ``member`` is not read (GNU sparse, or over the size limit), or None."""
    if member.sparse:
        return "GNU sparse member refused (its data would be expanded from a map)"
    if member.size > max_member_bytes:
        return (
            f"member declares {member.size} bytes, over the limit of {max_member_bytes} (--max-member-bytes); not read"
        )
    return None
