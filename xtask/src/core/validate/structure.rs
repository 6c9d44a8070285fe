//! Stage 1: the reader's own findings (drawer shape, keyword dialect), in order.

use super::{Problems, Stage};
use crate::core::drawer::Drawer;

pub(super) fn check(drawer: &Drawer, p: &mut Problems) {
    for d in &drawer.diagnostics {
        if d.is_error() {
            p.error(Stage::Structure, d.clone());
        } else {
            p.warnings.push(d.clone());
        }
    }
}
