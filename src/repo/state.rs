//! The state database (SQLite): packages, suite contents, promotion history.
