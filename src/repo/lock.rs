//! One writer at a time: an exclusive lock on the repository, with a clear message while
//! waiting.
