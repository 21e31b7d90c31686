//! `repo sources`: the deb822 `.sources` file and pin file a server of one stage needs.
