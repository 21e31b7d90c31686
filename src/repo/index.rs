//! The index files: `Packages` paragraphs and the `Release` file.
