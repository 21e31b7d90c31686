//! Renders the maintainer scripts, units and pin files from `templates/`.
