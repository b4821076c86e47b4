//! `hub validate FILE…`: checks event files offline with the same validation function as the hub.
//!
//! A file holds one CloudEvent (JSON object) or a batch (JSON array of them). Each problem is
//! printed with its JSON path.

use std::{io::Write, path::Path};

use sgd_schemas::{validate, ValidationContext};

/// Validates each file; writes a report to `out`; returns how many events were refused (a file
/// that cannot be read counts as one).
pub fn validate_files(files: &[impl AsRef<Path>], out: &mut impl Write) -> std::io::Result<usize> {
    let mut refused = 0;
    for file in files {
        let path = file.as_ref();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                writeln!(out, "{}: cannot read: {e}", path.display())?;
                refused += 1;
                continue;
            }
        };
        let events: Vec<(String, Vec<u8>)> = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("{}[{i}]", path.display()), serde_json::to_vec(item).unwrap_or_default()))
                .collect(),
            _ => vec![(path.display().to_string(), bytes)],
        };
        for (name, body) in events {
            match validate(&body, &ValidationContext::default()) {
                Ok(event) => writeln!(out, "{name}: ok ({} v{})", event.envelope.event_type, event.version)?,
                Err(rejection) => {
                    refused += 1;
                    writeln!(out, "{name}: refused ({})", rejection.reason())?;
                    for problem in &rejection.problems {
                        let at = if problem.path.is_empty() { "/" } else { &problem.path };
                        writeln!(out, "  {at}: {} ({})", problem.message, problem.reason)?;
                    }
                }
            }
        }
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_problem_with_its_path_and_counts_refusals() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples/plans");
        let dir = tempfile::tempdir().unwrap();
        let batch = dir.path().join("batch.json");
        let valid: serde_json::Value =
            serde_json::from_slice(&std::fs::read(examples.join("plan.created.v1.valid.json")).unwrap()).unwrap();
        let mut broken = valid.clone();
        broken["time"] = serde_json::json!("tomorrow");
        std::fs::write(&batch, serde_json::to_vec(&vec![valid, broken]).unwrap()).unwrap();
        let files = [
            examples.join("plan.created.v1.valid.json"),
            examples.join("plan.created.v1.invalid.json"),
            batch.clone(),
            dir.path().join("missing.json"),
        ];
        let mut out = Vec::new();
        let refused = validate_files(&files, &mut out).unwrap();
        let report = String::from_utf8(out).unwrap();
        assert_eq!(refused, 3, "{report}");
        assert!(report.contains("plan.created.v1.valid.json: ok (se.sgd.plans.plan.created v1)"), "{report}");
        assert!(report.contains("  /data/kind: "), "{report}");
        assert!(report.contains("batch.json[0]: ok"), "{report}");
        assert!(report.contains("batch.json[1]: refused (envelope)\n  /time: "), "{report}");
        assert!(report.contains("missing.json: cannot read"), "{report}");
    }
}
