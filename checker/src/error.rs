//! Errors from reading a history.

/// Why a history could not be read. Every message names where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The input is not a well-formed history of the chosen format.
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    /// The format was not given and could not be recognised from the input's first lines.
    #[error(
        "cannot tell the history format from its first line ({first_line:?}); choose one with --format"
    )]
    UnknownFormat { first_line: String },
    #[error("cannot read the history: {0}")]
    Io(#[from] std::io::Error),
    /// The format cannot hold the model (kvlab's: key-value or lock histories; Porcupine's:
    /// key-value histories).
    #[error(
        "{format} histories are {}; the {model} model is read from edn and jepsen-log files",
        format.holds()
    )]
    ModelNotSupported {
        format: crate::format::Format,
        model: crate::model::ModelKind,
    },
}

impl ReadError {
    pub(crate) fn at(line: u64, message: impl Into<String>) -> ReadError {
        ReadError::Malformed {
            line,
            message: message.into(),
        }
    }
}
