//! The pool: immutable `.deb` files under `pool/main/<initial>/<app>/`.
