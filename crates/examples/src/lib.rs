//! Runnable Spate programs; each binary under `src/bin` opens with how to run it.
