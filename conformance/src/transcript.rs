//! Loading transcripts: the JSON files described in `captures/README.md`.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

/// Which stream a chunk was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum From {
    /// The client's bytes to the server's stdin.
    Client,
    /// The server's stdout.
    Server,
    /// The server's stderr (build logs in the serve protocol).
    Stderr,
}

/// One read, in recorded order.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Its stream.
    pub from: From,
    /// Its bytes.
    pub data: Vec<u8>,
}

#[derive(Debug, Deserialize)]
struct RawChunk {
    from: From,
    data: String,
}

#[derive(Debug, Deserialize)]
struct Raw {
    format: u64,
    protocol: String,
    scenario: String,
    client: String,
    server: String,
    client_exit: i64,
    #[serde(default)]
    client_stderr: String,
    connections: usize,
    connection: usize,
    chunks: Vec<RawChunk>,
}

/// One recorded connection.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// `<folder>/conn<N>`, how reports name it.
    pub name: String,
    /// `serve` or `worker`.
    pub protocol: String,
    /// The scenario (`ping`, `build`, ...).
    pub scenario: String,
    /// Client and server version labels (`2.3`, `2.34`).
    pub client: String,
    /// See `client`.
    pub server: String,
    /// The recorded client's exit code for the whole run.
    pub client_exit: i64,
    /// The end of the recorded client's stderr: why it failed, when it did.
    pub client_stderr: String,
    /// Whether this is the run's last connection (where a failure shows).
    pub last_connection: bool,
    /// The reads, in order.
    pub chunks: Vec<Chunk>,
}

impl Transcript {
    /// All bytes of one stream, concatenated.
    pub fn stream(&self, from: From) -> Vec<u8> {
        self.chunks
            .iter()
            .filter(|c| c.from == from)
            .flat_map(|c| c.data.iter().copied())
            .collect()
    }
}

/// Why a transcript could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a transcript.
    #[error("{path}: not a transcript: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// Loads one transcript file (`conn<N>.json`).
pub fn load(path: &Path) -> Result<Transcript, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let format = |why: String| LoadError::Format {
        path: path.to_owned(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    let raw: Raw = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    if raw.format != 1 {
        return Err(format(format!("format {} (expected 1)", raw.format)));
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let chunks = raw
        .chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            engine
                .decode(&c.data)
                .map(|data| Chunk { from: c.from, data })
                .map_err(|e| format(format!("chunk {i}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Transcript {
        name: name_of(path),
        protocol: raw.protocol,
        scenario: raw.scenario,
        client: raw.client,
        server: raw.server,
        client_exit: raw.client_exit,
        client_stderr: raw.client_stderr,
        last_connection: raw.connection + 1 == raw.connections,
        chunks,
    })
}

/// The transcript files under `path`: the file itself, or every `conn*.json`
/// in a folder, searched recursively, in sorted order.
pub fn find(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut found = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let p = entry.path();
        if p.is_dir() {
            found.extend(find(&p)?);
        } else if is_transcript_name(&p) {
            found.push(p);
        }
    }
    Ok(found)
}

fn is_transcript_name(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.starts_with("conn") && name.ends_with(".json")
}

/// The name [`load`] gives the transcript at `path`: `<folder>/<stem>`.
pub fn name_of(path: &Path) -> String {
    let folder = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{folder}/{file}")
}
