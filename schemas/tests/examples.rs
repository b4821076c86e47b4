//! Every published schema's valid and invalid example, through the one validation function.

use std::{fs, path::PathBuf};

use sgd_schemas::{
    catalogue::Catalogue, catalogue::TypeName, subjects, upcast, validate, RejectReason, ValidationContext,
};

fn example(event_type: &str, version: u32, kind: &str) -> (PathBuf, Vec<u8>) {
    let t = TypeName::parse(event_type).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(t.area)
        .join(format!("{}.{}.v{version}.{kind}.json", t.entity, t.action));
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, bytes)
}

#[test]
fn every_valid_example_passes_and_decodes_to_the_newest_shape() {
    let catalogue = Catalogue::get();
    for event_type in catalogue.types() {
        let area = TypeName::parse(event_type).unwrap().area;
        for version in catalogue.versions(event_type) {
            let (path, bytes) = example(event_type, version, "valid");
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let principal = value["principal"].as_str().unwrap().to_string();
            let subject = subjects::ingress(&principal, area);
            let ctx = ValidationContext::from_ingress_subject(&subject, 1 << 20);
            let event = validate(&bytes, &ctx).unwrap_or_else(|r| panic!("{}: {r}", path.display()));
            assert_eq!(event.version, version);
            assert_eq!(event.events_subject, subjects::events(&principal, event_type));
            let decoded = upcast::decode(&event.envelope).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(decoded.event_type(), event_type);
        }
    }
}

#[test]
fn every_invalid_example_is_refused_for_its_data_with_a_path() {
    let catalogue = Catalogue::get();
    for event_type in catalogue.types() {
        for version in catalogue.versions(event_type) {
            let (path, bytes) = example(event_type, version, "invalid");
            let rejection = validate(&bytes, &ValidationContext::default())
                .err()
                .unwrap_or_else(|| panic!("{} was accepted", path.display()));
            assert_eq!(rejection.reason(), RejectReason::Schema, "{}: {rejection}", path.display());
            assert!(rejection.problems.iter().all(|p| p.path.starts_with("/data")), "{}: {rejection}", path.display());
        }
    }
}
