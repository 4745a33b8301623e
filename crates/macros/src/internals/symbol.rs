//! The operations the macro knows: what each one is and where its durations are.

/// What an operation does to the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Makes an input stream (a method of the context).
    Source,
    /// A batch-wise operation of one stream.
    Transform,
    /// An operation over this stream and the stream(s) in its first argument (same slide).
    Combine,
    /// A windowed operation.
    Window,
    /// An output operation.
    Output,
    /// Returns the same stream (`persist`, `cache`, `checkpoint`, `clone`).
    Same,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct OpInfo {
    pub(crate) kind: Kind,
    /// Needs a stream of `(K, V)` pairs.
    pub(crate) pairs: bool,
    /// Carries state across batches: needs a checkpoint directory.
    pub(crate) stateful: bool,
    /// Argument positions of the window and slide durations.
    pub(crate) window_args: Option<(usize, usize)>,
}

const fn op(
    kind: Kind,
    pairs: bool,
    stateful: bool,
    window_args: Option<(usize, usize)>,
) -> OpInfo {
    OpInfo {
        kind,
        pairs,
        stateful,
        window_args,
    }
}

/// Methods of the context that make streams.
pub(crate) const SOURCES: &[&str] = &[
    "socket_text_stream",
    "socket_text_stream_with",
    "socket_stream",
    "raw_socket_stream",
    "raw_socket_stream_with",
    "text_file_stream",
    "file_stream",
    "queue_stream",
    "queue_stream_with_default",
    "receiver_stream",
    "receiver_stream_with_level",
    "custom_input_stream",
    "kafka_stream",
    "direct_kafka_stream",
];

/// Methods of the context that combine streams given in a slice (`&[a, b]`).
pub(crate) const CONTEXT_COMBINES: &[&str] = &["union", "transform"];

pub(crate) fn stream_op(name: &str) -> Option<OpInfo> {
    use Kind::*;
    Some(match name {
        "map" | "flat_map" | "filter" | "map_partitions" | "glom" | "repartition" | "count"
        | "reduce" | "count_by_value" | "count_by_value_n" | "transform" => {
            op(Transform, false, false, None)
        }
        "map_values" | "flat_map_values" | "group_by_key" | "group_by_key_n" | "reduce_by_key"
        | "reduce_by_key_n" | "reduce_by_key_with" | "combine_by_key" => {
            op(Transform, true, false, None)
        }
        "union" | "transform_with" => op(Combine, false, false, None),
        "join" | "join_n" | "left_outer_join" | "left_outer_join_n" | "right_outer_join"
        | "right_outer_join_n" | "full_outer_join" | "full_outer_join_n" | "cogroup"
        | "cogroup_n" => op(Combine, true, false, None),
        "update_state_by_key" | "update_state_by_key_n" | "update_state_by_key_with" => {
            op(Transform, true, true, None)
        }
        "window" => op(Window, false, false, Some((0, 1))),
        "count_by_window" => op(Window, false, true, Some((0, 1))),
        "count_by_value_and_window" | "count_by_value_and_window_n" => {
            op(Window, false, true, Some((0, 1)))
        }
        "group_by_key_and_window" | "group_by_key_and_window_n" => {
            op(Window, true, false, Some((0, 1)))
        }
        "reduce_by_window" => op(Window, false, false, Some((1, 2))),
        "reduce_by_window_inv" => op(Window, false, true, Some((2, 3))),
        "reduce_by_key_and_window" | "reduce_by_key_and_window_n" => {
            op(Window, true, false, Some((1, 2)))
        }
        "reduce_by_key_and_window_inv" | "reduce_by_key_and_window_inv_n" => {
            op(Window, true, true, Some((2, 3)))
        }
        "print"
        | "print_n"
        | "print_to"
        | "foreach_rdd"
        | "save_as_text_files"
        | "save_as_object_files"
        | "save_as_hadoop_files" => op(Output, false, false, None),
        // The same stream (or the stream inside a Result, from `ssc.union`/`ssc.transform`).
        "persist" | "cache" | "checkpoint" | "clone" | "unwrap" | "expect" => {
            op(Same, false, false, None)
        }
        _ => return None,
    })
}
