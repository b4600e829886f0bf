"""TFLite metadata in every ``.tflite`` we write, so the Android Task Library and other mobile tooling find the labels,
the input normalisation, the I/O quantization, the model's name and version.

Written with ``flatbuffers`` from the published layout of tflite-support's ``metadata_schema.fbs`` (file identifier
``M001``, schema 1.0): tflite-support itself pins protobuf<4 and does not import beside the pinned stack. The layout
is the one mobile tooling reads:

- a ``ModelMetadata`` flatbuffer in a model buffer named by a ``Model.metadata`` entry ``TFLITE_METADATA``;
- associated files (here ``labels.txt``, type TENSOR_AXIS_LABELS on the output) in a zip archive appended to the
  model (the interpreter ignores trailing bytes; zip readers find the archive from its end).

I/O quantization stays where the runtimes read it, in the model's own tensors; the metadata adds each tensor's float
range (``Stats``) and says the scale and zero point in its description.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

import flatbuffers

METADATA_NAME = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # no field added after schema 1.0 is used
LABELS_FILE = "labels.txt"

# field slots (declaration order in metadata_schema.fbs; a union takes two: its type, then its value)
_AF = {"name": 0, "description": 1, "type": 2}                       # AssociatedFile
_CONTENT = {"props_type": 0, "props": 1}                              # Content
_NORM = {"mean": 0, "std": 1}                                         # NormalizationOptions
_PU = {"options_type": 0, "options": 1}                               # ProcessUnit
_STATS = {"max": 0, "min": 1}                                         # Stats
_TM = {"name": 0, "description": 1, "content": 3, "process_units": 4, "stats": 5, "associated_files": 6}
_SG = {"name": 0, "description": 1, "inputs": 2, "outputs": 3}        # SubGraphMetadata
_MM = {"name": 0, "description": 1, "version": 2, "subgraphs": 3, "author": 4, "license": 5, "min_parser": 7}
TENSOR_AXIS_LABELS = 2       # AssociatedFileType
FEATURE_PROPERTIES = 1       # ContentProperties union member
NORMALIZATION_OPTIONS = 1    # ProcessUnitOptions union member


@dataclass
class TensorInfo:
    """What the metadata says about one input or output tensor."""
    name: str
    description: str
    scale: float | None = None
    zero_point: int | None = None
    dtype: str = "int8"
    mean: list[float] | None = None   # normalisation (x - mean) / std, inputs only
    std: list[float] | None = None
    labels_file: str | None = None    # an associated TENSOR_AXIS_LABELS file, outputs only


@dataclass
class ModelInfo:
    name: str
    version: str
    description: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    author: str = "ondevice"
    license: str = ""
    files: dict[str, bytes] = field(default_factory=dict)  # associated files packed into the model's zip


def _float_range(t: TensorInfo) -> tuple[float, float] | None:
    """The float values an int8/uint8 tensor can represent, from its scale and zero point."""
    if t.scale is None or t.zero_point is None:
        return None
    lo, hi = (-128, 127) if t.dtype == "int8" else (0, 255)
    return (lo - t.zero_point) * t.scale, (hi - t.zero_point) * t.scale


def _floats(b: flatbuffers.Builder, values) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _offsets(b: flatbuffers.Builder, offs: list[int]) -> int:
    b.StartVector(4, len(offs), 4)
    for o in reversed(offs):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _table(b: flatbuffers.Builder, n_slots: int, offsets: dict[int, int], scalars: dict[int, tuple] = ()) -> int:
    b.StartObject(n_slots)
    for slot, off in offsets.items():
        b.PrependUOffsetTRelativeSlot(slot, off, 0)
    for slot, (kind, value) in dict(scalars).items():
        getattr(b, f"Prepend{kind}Slot")(slot, value, 0 if kind != "Float32" else 0.0)
    return b.EndObject()


def _tensor(b: flatbuffers.Builder, t: TensorInfo) -> int:
    name, desc = b.CreateString(t.name), b.CreateString(t.description)
    feature = _table(b, 0, {})
    content = _table(b, 3, {_CONTENT["props"]: feature}, {_CONTENT["props_type"]: ("Uint8", FEATURE_PROPERTIES)})
    offs = {_TM["name"]: name, _TM["description"]: desc, _TM["content"]: content}
    if t.mean is not None and t.std is not None:
        mean, std = _floats(b, t.mean), _floats(b, t.std)
        norm = _table(b, 2, {_NORM["mean"]: mean, _NORM["std"]: std})
        unit = _table(b, 2, {_PU["options"]: norm}, {_PU["options_type"]: ("Uint8", NORMALIZATION_OPTIONS)})
        offs[_TM["process_units"]] = _offsets(b, [unit])
    rng = _float_range(t)
    if rng is not None:
        hi, lo = _floats(b, [rng[1]]), _floats(b, [rng[0]])
        offs[_TM["stats"]] = _table(b, 2, {_STATS["max"]: hi, _STATS["min"]: lo})
    if t.labels_file:
        fname, fdesc = b.CreateString(t.labels_file), b.CreateString("class labels, one per output index")
        af = _table(b, 4, {_AF["name"]: fname, _AF["description"]: fdesc}, {_AF["type"]: ("Int8", TENSOR_AXIS_LABELS)})
        offs[_TM["associated_files"]] = _offsets(b, [af])
    return _table(b, 7, offs)


def build_metadata(info: ModelInfo) -> bytes:
    """The ModelMetadata flatbuffer (identifier M001) for ``info``."""
    b = flatbuffers.Builder(1024)
    ins = _offsets(b, [_tensor(b, t) for t in info.inputs])
    outs = _offsets(b, [_tensor(b, t) for t in info.outputs])
    sg_name = b.CreateString(info.name)
    sg = _table(b, 7, {_SG["name"]: sg_name, _SG["inputs"]: ins, _SG["outputs"]: outs})
    strings = {k: b.CreateString(v) for k, v in (("name", info.name), ("description", info.description),
                                                 ("version", info.version), ("author", info.author),
                                                 ("license", info.license), ("min_parser", MIN_PARSER_VERSION))}
    sgs = _offsets(b, [sg])
    root = _table(b, 8, {_MM["subgraphs"]: sgs, **{_MM[k]: v for k, v in strings.items()}})
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def embed(model: bytes, info: ModelInfo) -> bytes:
    """``model`` with ``info`` as TFLITE_METADATA (replacing any earlier one) and its files zipped after it."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as s
    m = s.ModelT.InitFromPackedBuf(model, 0)
    if any((buf.offset or 0) > 1 for buf in (m.buffers or [])):
        from ondevice.errors import ExportError
        raise ExportError("this .tflite keeps its weights outside the flatbuffer (a >2 GB layout)",
                          "TFLite metadata can only be embedded in a self-contained .tflite")
    buf = s.BufferT()
    buf.data = np.frombuffer(build_metadata(info), dtype=np.uint8)
    m.buffers = list(m.buffers or []) + [buf]
    entry = s.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(m.buffers) - 1
    m.metadata = [e for e in (m.metadata or []) if _name(e.name) != METADATA_NAME] + [entry]
    b = _AlignedBuilder(len(model) + 4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    out = io.BytesIO(bytes(b.Output()))
    if info.files:
        # mode "a" on bytes that are not a zip appends an archive after them, the layout tflite-support writes
        with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as z:
            for fname, data in info.files.items():
                z.writestr(fname, data)
    return out.getvalue()


class _AlignedBuilder(flatbuffers.Builder):
    """Keeps byte vectors (weight buffers) 16-byte aligned when the model is re-packed, as the converter wrote them:
    XNNPACK and TFLM read weights in place."""

    def StartVector(self, elemSize, numElems, alignment):  # noqa: N802,N803 - flatbuffers' own names
        if elemSize == 1 and numElems >= 16:
            alignment = max(alignment, 16)
        return super().StartVector(elemSize, numElems, alignment)


def _name(n) -> str:
    return n.decode() if isinstance(n, bytes) else str(n or "")


def read_metadata_buffer(model: bytes) -> bytes | None:
    """The TFLITE_METADATA buffer of a .tflite, the way mobile tooling finds it (Model.metadata by name)."""
    from ai_edge_litert import schema_py_generated as s
    m = s.Model.GetRootAs(model, 0)
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if _name(md.Name()) == METADATA_NAME:
            return m.Buffers(md.Buffer()).DataAsNumpy().tobytes()
    return None


def associated_files(model: bytes) -> dict[str, bytes]:
    """The files zipped onto a .tflite (empty when there are none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as z:
            return {n: z.read(n) for n in z.namelist()}
    except zipfile.BadZipFile:
        return {}
