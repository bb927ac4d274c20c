//! Placeholder: the model crate is being built (issue 4).
