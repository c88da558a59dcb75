//! The crate's one error type.

/// A field a request cannot have where it is going.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiTypeError {
    /// The other API has no way to say this.
    #[error("{field}: {message}")]
    Untranslatable {
        /// The field, as the client named it (`messages[2].content[0]`).
        field: String,
        /// Why.
        message: String,
    },
}

impl ApiTypeError {
    pub(crate) fn untranslatable(field: impl Into<String>, message: impl Into<String>) -> ApiTypeError {
        ApiTypeError::Untranslatable { field: field.into(), message: message.into() }
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field's path (`messages[0].content`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// An error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into() }
    }
}
