//! The Kalsel.dev token source for kunci (in progress).
