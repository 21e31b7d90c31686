//! Reading a `.deb`: the ar members, and the control paragraph from `control.tar` of any
//! compression.
