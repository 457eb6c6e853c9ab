//! Shared by the integration tests (the bench includes `images.rs` by path).
pub mod images;
