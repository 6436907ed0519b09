//! Access tokens. PLACEHOLDER: filled in by the auth work.
