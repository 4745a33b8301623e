//! Batch programs (RDD jobs, no streams) that run on a cluster through
//! `spate_core::batch::BatchProgram`.

pub mod shuffle_heavy;
