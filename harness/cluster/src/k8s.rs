//! Kubernetes' own wording and arithmetic, shared by the kubelet ([`crate::kubelet`], also the fake
//! one in [`crate::fake_kubelet`]) and the scheduler ([`crate::scheduler`]): every event and status
//! message per Kubernetes generation ([`messages`]), Go's formatting of them ([`go_format`]), the
//! event recorder ([`events`]) and resource quantities and pod requests ([`resources`]).
//!
//! Nothing here talks to Docker; the kubelet and the scheduler both import from here and never
//! from each other.

pub mod events;
pub mod go_format;
pub mod messages;
pub mod resources;

pub use messages::K8sMessages;
