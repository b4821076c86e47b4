//! The 34 public care principals (huvudmän) of Skåne: Region Skåne and the 33 municipalities.

use std::sync::OnceLock;

/// One care principal (huvudman).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Its code: `12` for Region Skåne, the municipality code (`1214`…`1293`) otherwise.
    pub code: &'static str,
    /// Its name, e.g. `Malmö`.
    pub name: &'static str,
    /// `region` or `municipality`.
    pub kind: &'static str,
}

static PRINCIPALS_CSV: &str = include_str!("../principals.csv");

/// All principals, in the order of `principals.csv`.
pub fn all() -> &'static [Principal] {
    static ALL: OnceLock<Vec<Principal>> = OnceLock::new();
    ALL.get_or_init(|| {
        PRINCIPALS_CSV
            .lines()
            .skip(1)
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let mut cols = line.splitn(3, ',');
                let code = cols.next().unwrap_or_default().trim();
                let name = cols.next().unwrap_or_default().trim();
                let kind = cols.next().unwrap_or_default().trim();
                Principal { code, name, kind }
            })
            .collect()
    })
}

/// The principal with this code, if it is one of the 34.
pub fn by_code(code: &str) -> Option<&'static Principal> {
    all().iter().find(|p| p.code == code)
}

/// Whether `code` is the code of one of the 34 principals.
pub fn is_known(code: &str) -> bool {
    by_code(code).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_34_principals_with_region_skane_first() {
        assert_eq!(all().len(), 34);
        assert_eq!(all()[0].name, "Region Skåne");
        assert_eq!(by_code("1280").map(|p| p.name), Some("Malmö"));
        assert!(!is_known("1200"));
    }
}
