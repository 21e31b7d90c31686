//! Debian's rules for package and architecture names.

/// Checks a Debian package name: `[a-z0-9][a-z0-9+.-]+` (Debian Policy 5.6.1).
pub(crate) fn check_package_name(name: &str) -> Result<(), String> {
    let valid = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err("must match [a-z0-9][a-z0-9+.-]+ (a Debian package name)".to_string())
    }
}

/// Checks an architecture name as a package's Architecture field gives it: one Debian
/// architecture name (`[a-z0-9-]+`, such as amd64, arm64 or all).
pub(crate) fn check_architecture(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err("must be one architecture name such as amd64 or all".to_string())
    }
}

/// Whether `name` can be an architecture a repository serves: a Debian architecture name
/// (`[a-z0-9-]+`, such as amd64 or arm64), and not `all`, whose packages are listed under
/// every architecture rather than under their own.
pub(crate) fn is_served_architecture(name: &str) -> bool {
    name != "all" && check_architecture(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        assert!(check_package_name("shop").is_ok());
        assert!(check_package_name("shop-1.4.2").is_ok());
        assert!(check_package_name("lib+x.y").is_ok());
        for bad in ["Shop_App", "s", "-shop", "shop app", "shop'x", ""] {
            assert!(check_package_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn architectures() {
        assert!(check_architecture("amd64").is_ok());
        assert!(check_architecture("all").is_ok());
        assert!(!is_served_architecture("all"));
        assert!(check_architecture("AMD64").is_err());
        assert!(check_architecture("").is_err());
    }
}
