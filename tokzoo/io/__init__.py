"""Data I/O: modality file formats, safety guards, and readers that yield samples.

``read_modality`` / ``write_modality`` convert files to the in-memory contract of
docs/ARCHITECTURE.md; readers (``open_reader``) turn folders, tars and datasets into
``Sample(key, values, sources, errors)``.
"""

from tokzoo.io.formats import EXTENSIONS, MODALITIES, from_value, read_modality, write_modality
from tokzoo.io.readers import FolderReader, HFReader, ModalityFoldersReader, TarReader, open_reader
from tokzoo.io.samples import FileRef, RawSample, Reader, Sample, decode_sample

__all__ = [
    "EXTENSIONS",
    "MODALITIES",
    "from_value",
    "read_modality",
    "write_modality",
    "FolderReader",
    "HFReader",
    "ModalityFoldersReader",
    "TarReader",
    "open_reader",
    "FileRef",
    "RawSample",
    "Reader",
    "Sample",
    "decode_sample",
]
