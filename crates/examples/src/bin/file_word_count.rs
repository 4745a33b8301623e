//! FileWordCount: counts the words of every new text file that appears in a directory.
//!
//! `cargo run --release -p spate-examples --bin file_word_count -- /tmp/words`
//! then move files into it: `echo "a b a" > /tmp/.f && mv /tmp/.f /tmp/words/f1.txt`.
//! (Write elsewhere or under a hidden name, then rename: names starting with `.` or `_` are
//! ignored.) Options: `--run-for 30s`, `--batch 2s`, `--help`.

fn main() {
    spate_examples::setup_allocator();
    spate_examples::jobs::file::FileWordCount::main();
}
