use std::path::PathBuf;

/// Why a report could not be written. Every variant names the file or the plot concerned.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a kvlab results file: {source}")]
    Results {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    History {
        path: PathBuf,
        #[source]
        source: checker::ReadError,
    },
    #[error("plot {plot}: {message}")]
    Plot { plot: &'static str, message: String },
    #[error("report template: {0}")]
    Template(#[from] minijinja::Error),
}

impl ReportError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ReportError {
        let path = path.into();
        move |source| ReportError::Io { path, source }
    }
}
