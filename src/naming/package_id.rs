//! What names one package in a pool: its Package, Version and Architecture fields. The
//! build writes it, the build manifest carries it, the repository keys its pool by it,
//! and the pool's rule is that one identity has one set of bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One package's identity. In JSON and the build manifest its three fields stand beside
/// the fields of whatever embeds it (`#[serde(flatten)]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct PackageId {
    /// The Package field.
    pub(crate) package: String,
    /// The Version field.
    pub(crate) version: String,
    /// The Architecture field.
    pub(crate) architecture: String,
}

impl PackageId {
    /// The identity of these three fields.
    pub(crate) fn new(package: &str, version: &str, architecture: &str) -> PackageId {
        PackageId {
            package: package.to_string(),
            version: version.to_string(),
            architecture: architecture.to_string(),
        }
    }

    /// The file name Debian gives the package (`shop-1.4.2_1.4.2-1_amd64.deb`).
    pub(crate) fn file_name(&self) -> String {
        super::deb_file_name(&self.package, &self.version, &self.architecture)
    }
}

/// `shop-1.4.2 1.4.2-1 (amd64)`, as messages name a package.
impl fmt::Display for PackageId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} {} ({})",
            self.package, self.version, self.architecture
        )
    }
}

#[cfg(test)]
mod tests {
    use super::PackageId;

    #[test]
    fn an_identity_reads_as_messages_name_it_and_stands_flat_in_json() {
        let id = PackageId::new("shop-1.4.2", "1:1.4.2-1", "amd64");
        assert_eq!(id.to_string(), "shop-1.4.2 1:1.4.2-1 (amd64)");
        assert_eq!(id.file_name(), "shop-1.4.2_1.4.2-1_amd64.deb");
        #[derive(serde::Serialize)]
        struct Outer {
            file: &'static str,
            #[serde(flatten)]
            id: PackageId,
            size: u64,
        }
        let json = serde_json::to_string(&Outer {
            file: "f",
            id,
            size: 1,
        })
        .expect("json");
        assert_eq!(
            json,
            r#"{"file":"f","package":"shop-1.4.2","version":"1:1.4.2-1","architecture":"amd64","size":1}"#
        );
    }
}
