"""TF's `DataType` enum (`tensorflow/core/framework/types.proto`): names, numpy types, sizes."""

from __future__ import annotations

from typing import Optional

DT_FLOAT = 1
DT_DOUBLE = 2
DT_INT32 = 3
DT_UINT8 = 4
DT_INT16 = 5
DT_INT8 = 6
DT_STRING = 7
DT_COMPLEX64 = 8
DT_INT64 = 9
DT_BOOL = 10
DT_QINT8 = 11
DT_QUINT8 = 12
DT_QINT32 = 13
DT_BFLOAT16 = 14
DT_QINT16 = 15
DT_QUINT16 = 16
DT_UINT16 = 17
DT_COMPLEX128 = 18
DT_HALF = 19
DT_RESOURCE = 20
DT_VARIANT = 21
DT_UINT32 = 22
DT_UINT64 = 23
DT_FLOAT8_E5M2 = 24
DT_FLOAT8_E4M3FN = 25
# `DT_FLOAT_REF` is `DT_FLOAT + REF_OFFSET`, and so on: a graph's reference types.
REF_OFFSET = 100

# enum -> (TF's name, numpy type string or None, bytes per element or 0 if variable).
DTYPES: dict[int, tuple[str, Optional[str], int]] = {
    DT_FLOAT: ("float32", "<f4", 4),
    DT_DOUBLE: ("float64", "<f8", 8),
    DT_INT32: ("int32", "<i4", 4),
    DT_UINT8: ("uint8", "u1", 1),
    DT_INT16: ("int16", "<i2", 2),
    DT_INT8: ("int8", "i1", 1),
    DT_STRING: ("string", None, 0),
    DT_COMPLEX64: ("complex64", "<c8", 8),
    DT_INT64: ("int64", "<i8", 8),
    DT_BOOL: ("bool", "?", 1),
    DT_QINT8: ("qint8", "i1", 1),
    DT_QUINT8: ("quint8", "u1", 1),
    DT_QINT32: ("qint32", "<i4", 4),
    DT_BFLOAT16: ("bfloat16", "bfloat16", 2),
    DT_QINT16: ("qint16", "<i2", 2),
    DT_QUINT16: ("quint16", "<u2", 2),
    DT_UINT16: ("uint16", "<u2", 2),
    DT_COMPLEX128: ("complex128", "<c16", 16),
    DT_HALF: ("float16", "<f2", 2),
    DT_RESOURCE: ("resource", None, 0),
    DT_VARIANT: ("variant", None, 0),
    DT_UINT32: ("uint32", "<u4", 4),
    DT_UINT64: ("uint64", "<u8", 8),
    DT_FLOAT8_E5M2: ("float8_e5m2", "float8_e5m2", 1),
    DT_FLOAT8_E4M3FN: ("float8_e4m3fn", "float8_e4m3fn", 1),
}
DTYPE_ENUM = {name: num for num, (name, _, _) in DTYPES.items()}
# numpy has no such types: `ml_dtypes` (installed with TF) provides them.
_ML_DTYPES = ("bfloat16", "float8_e5m2", "float8_e4m3fn")


def dtype_name(enum: int) -> str:
    """Returns TF's name for a `DataType` enum value (`float32`, `bfloat16`, ...)."""
    if enum in DTYPES:
        return DTYPES[enum][0]
    if enum > REF_OFFSET and enum - REF_OFFSET in DTYPES:
        return DTYPES[enum - REF_OFFSET][0] + "_ref"
    return f"dtype_{enum}"


def itemsize(enum: int) -> int:
    """Bytes per element of a known dtype; 0 for strings, resources and variants."""
    return DTYPES[enum][2]


def numpy_dtype(enum: int):
    """The numpy dtype of a known `DataType`, or None for strings, resources and variants.

    Without `ml_dtypes`, bfloat16 and the float8 types come back as raw
    unsigned integers of their width.
    """
    import numpy as np

    npname = DTYPES[enum][1]
    if npname is None:
        return None
    if npname in _ML_DTYPES:
        try:
            import ml_dtypes

            return np.dtype(getattr(ml_dtypes, npname))
        except ImportError:
            return np.dtype("<u2" if npname == "bfloat16" else "u1")
    return np.dtype(npname)
