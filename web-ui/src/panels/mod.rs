//! The page's panels, one file each, named after it. Each only reads the view's signals
//! (`view.rs`), except the start bar, the job form and the workers field, which send
//! commands through the bridge's [`crate::bridge::Controls`].

pub(crate) mod event_log;
pub(crate) mod guide;
pub(crate) mod inspector;
pub(crate) mod jobs;
pub(crate) mod me;
pub(crate) mod numbers;
pub(crate) mod peers;
pub(crate) mod start_bar;
pub(crate) mod submit_form;
