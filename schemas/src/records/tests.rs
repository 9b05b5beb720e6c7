use super::*;

/// `as_str` (metric labels) and serde (dead letters) name every class the same way.
#[test]
fn error_class_names_agree_with_serde() {
    let all = [
        ErrorClass::MalformedEvent,
        ErrorClass::MalformedDicom,
        ErrorClass::MissingObject,
        ErrorClass::ObjectTooLarge,
        ErrorClass::ObjectStore,
        ErrorClass::EventMismatch,
        ErrorClass::PacsRejected,
        ErrorClass::PacsUnavailable,
        ErrorClass::FhirRejected,
        ErrorClass::FhirUnavailable,
        ErrorClass::OutputTopic,
        ErrorClass::BurnedInText,
        ErrorClass::UnknownLink,
        ErrorClass::UndecodablePixels,
        ErrorClass::LateInstance,
        ErrorClass::Config,
        ErrorClass::Internal,
    ];
    for class in all {
        let json = serde_json::to_string(&class).unwrap();
        assert_eq!(json, format!("\"{}\"", class.as_str()));
        assert_eq!(serde_json::from_str::<ErrorClass>(&json).unwrap(), class);
    }
    assert_eq!(ErrorClass::FhirRejected.as_str(), "fhir_rejected");
    assert_eq!(ErrorClass::FhirUnavailable.as_str(), "fhir_unavailable");
}
