"""The format layer: checkpoint files on disk, read and written without TensorFlow.

Object-path keys (`keys`), the protobuf wire format (`wire`), the TensorBundle
index and entries (`bundle`), what a checkpoint holds and where it is
(`checkpoint`). Nothing in this package imports TensorFlow.
"""
