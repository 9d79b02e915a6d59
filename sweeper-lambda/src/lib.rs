//! Sweep engine (work in progress).
