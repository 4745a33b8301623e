//! `setup_allocator` sets the mimalloc option it means to (its number is an `mi_option_e` value
//! of mimalloc.h, written as a literal in the code).
#![cfg(feature = "mimalloc")]
#![allow(unsafe_code)]

use libmimalloc_sys::mi_option_get;

#[test]
fn setup_allocator_makes_purges_reset_memory_instead_of_decommitting_it() {
    // SAFETY: reading an option has no preconditions.
    let get = |option| unsafe { mi_option_get(option) };
    // mimalloc's default identifies the option: purges decommit (1).
    assert_eq!(get(5), 1, "option 5 is not mi_option_purge_decommits");
    spate_examples::setup_allocator();
    assert_eq!(get(5), 0, "purges reset memory");
}
