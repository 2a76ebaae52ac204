"""The format layer: checkpoint files on disk, read and written without TensorFlow.

Object-path keys (`keys`), the protobuf wire format and CRC32C (`wire`), TF's
dtypes (`dtypes`), the LevelDB-format table of an index (`table`), the
TensorBundle entries and header (`bundle`), the one checked reader of an index
and its shards (`reader`, with its `problems` mode), tensor bytes (`tensors`),
the object graph (`object_graph`), the `checkpoint` state file (`state_file`),
and what a checkpoint holds and where it is (`checkpoint`). Nothing in this
package imports TensorFlow.
"""
