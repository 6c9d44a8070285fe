//! The cloud place: providers are recipes. Finding them ([`resolve`]), reading their
//! inert headers ([`header`]), the sealed environment ([`sealed`]), the spawn
//! ([`spawn`]), and converging a deployment through one ([`cloud`]). Nothing here
//! prints or builds JSON: results are typed, words go through a [`crate::report::Report`].

pub mod check;
pub mod cloud;
pub mod header;
pub mod live;
pub mod resolve;
pub mod rollback;
pub mod scaffold;
pub mod sealed;
pub mod spawn;
pub mod state_line;
