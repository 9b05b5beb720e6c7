//! Why a message value could not be decoded: the error of every format, the S3 notification
//! parser included, with no value from the message in it.

/// Why a message value could not be decoded into a valid event.
///
/// No variant carries a value from the message: they name fields, positions and kinds, so a
/// `DecodeError` is safe to log and to put in a dead letter.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The value has no bytes.
    #[error(
        "the message value is empty (a tombstone or a producer bug): producers must send one \
         event per message; nothing to process"
    )]
    Empty,
    /// The first byte is not the Confluent magic byte.
    #[error(
        "the message is not in Confluent wire format (first byte {first_byte:#04x}, expected \
         0x00): is the topic configured with the right format?"
    )]
    NotConfluentFramed {
        /// The first byte of the value.
        first_byte: u8,
    },
    /// The value is too short to hold the Confluent header.
    #[error(
        "the message is {len} bytes long, too short for the Confluent wire format (magic byte, \
         4-byte schema id, datum): is the producer using a Schema Registry serializer?"
    )]
    TruncatedFrame {
        /// Length of the value in bytes.
        len: usize,
    },
    /// The writer schema id is neither registered nor covered by a default schema.
    #[error(
        "writer schema id {0} is unknown: check that the schema registry holds it and is \
         reachable, or configure a local schema file to use for every id"
    )]
    UnknownSchemaId(u32),
    /// The Avro datum could not be decoded or resolved into `InstanceEvent` v1.
    #[error(
        "the Avro datum could not be read as radstream.InstanceEvent v1: {0}; check that the \
         producer writes a compatible version of the schema it registered"
    )]
    Avro(String),
    /// An Avro schema text is invalid.
    #[error("invalid Avro schema: {0}; fix the schema file or the registry entry")]
    Schema(String),
    /// An event could not be encoded with the given schema.
    #[error(
        "the event could not be encoded with the given Avro schema: {0}; is the schema a \
         version of radstream.InstanceEvent?"
    )]
    Encode(String),
    /// The value is not valid JSON for the expected document.
    #[error(
        "the message is not a valid {document} ({category} error at line {line}, column \
         {column}): {detail}; is the topic configured with the right format?"
    )]
    Json {
        /// What the JSON should have been (`InstanceEvent JSON`, `S3 event notification`).
        document: &'static str,
        /// serde_json's error category: `syntax`, `data`, `eof` or `io`.
        category: &'static str,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong, naming a field where serde says which; never a value.
        detail: String,
    },
    /// The S3 event notification is well-formed JSON but lacks what an event needs.
    #[error("S3 event notification: {0}")]
    S3Notification(String),
    /// A decoded field has an invalid value.
    #[error(
        "field `{field}` {problem}; fix the producer of this event (the value is not shown: it \
         may be patient data)"
    )]
    InvalidField {
        /// Field name (`object.key`, `study_instance_uid`, ...).
        field: &'static str,
        /// What is wrong with it, without the value.
        problem: String,
    },
}

/// A [`DecodeError::Json`] for `document`, keeping serde_json's position and category but not
/// its message, which quotes values (`invalid type: string "DOE^JOHN"`).
pub fn json_error(document: &'static str, error: &serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    let (category, detail) = match error.classify() {
        Category::Io => ("io", "the input could not be read".to_owned()),
        Category::Syntax => ("syntax", "the JSON is malformed".to_owned()),
        Category::Eof => ("eof", "the JSON ends early (truncated message?)".to_owned()),
        Category::Data => ("data", serde_problem(&error.to_string())),
    };
    DecodeError::Json { document, category, line: error.line(), column: error.column(), detail }
}

/// Describes a serde error message without the values it may quote: field names are kept
/// (they come from the schema), everything else is reduced to its kind.
pub(crate) fn serde_problem(message: &str) -> String {
    for (prefix, what) in [("missing field `", "is missing"), ("duplicate field `", "appears twice")] {
        if let Some(name) = message.strip_prefix(prefix).and_then(|rest| rest.split('`').next()) {
            return format!("field `{name}` {what}");
        }
    }
    let kind = if message.starts_with("invalid type") {
        "a value has the wrong type for its field"
    } else if message.starts_with("invalid value") || message.starts_with("invalid length") {
        "a value is out of range for its field"
    } else if message.starts_with("unknown variant") {
        "an enum value is not one of its symbols"
    } else {
        "a value does not fit the expected record"
    };
    kind.to_owned()
}
