//! Root package that only hosts the conformance suite in `tests/`.
