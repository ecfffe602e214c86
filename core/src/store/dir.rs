//! The store directory, and full store paths in it.
//!
//! Nix keeps its store directory canonical (`canonPath` of the setting) and
//! prints a store path as `<store dir>/<base name>`
//! (`StoreDirConfig::printStorePath` in `src/libstore/store-dir-config.cc`).
//! Reading, [`StoreDir::parse_path`] follows Nix's strict reader
//! `parseStorePathCanonical`: the path must be the store directory, one `/`
//! and a valid base name, nothing more. (Nix's other reader,
//! `parseStorePath`, first normalizes `//`, `.`, `..` and a trailing `/`
//! away; every Nix writes the canonical form, so the strict reader is the
//! one a protocol needs.)

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

use super::lossy;
use super::path::{StorePath, StorePathError};

/// Nix's default store directory.
pub const DEFAULT_STORE_DIR: &str = "/nix/store";

/// Why a store directory is not valid, or a path is not a store path in it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreDirError {
    /// The store directory is not an absolute path.
    #[error("store directory '{dir}' is not valid: expected an absolute path (starting with '/')")]
    NotAbsolute {
        /// The directory given.
        dir: String,
    },
    /// The store directory is `/`.
    #[error("store directory '/' is not valid: expected a directory below the root")]
    Root,
    /// The store directory ends with `/`.
    #[error("store directory '{dir}' is not valid: expected no trailing '/'")]
    TrailingSlash {
        /// The directory given.
        dir: String,
    },
    /// The store directory has an empty component (`//`).
    #[error("store directory '{dir}' is not valid: expected no empty component ('//')")]
    EmptyComponent {
        /// The directory given.
        dir: String,
    },
    /// The store directory has a `.` or `..` component.
    #[error(
        "store directory '{dir}' is not valid: expected a canonical path, found a '{component}' component"
    )]
    DotComponent {
        /// The directory given.
        dir: String,
        /// `.` or `..`.
        component: &'static str,
    },
    /// The store directory contains a NUL byte.
    #[error("store directory '{dir}' is not valid: it contains a NUL byte")]
    Nul {
        /// The directory given (lossily shown).
        dir: String,
    },
    /// The path is not directly inside the store directory.
    #[error("path '{path}' is not in the store: expected '{store_dir}/<hash>-<name>'")]
    NotInStore {
        /// The path (lossily decoded).
        path: String,
        /// The store directory.
        store_dir: String,
    },
    /// The path is inside a store path rather than the store path itself.
    #[error(
        "path '{path}' is not a store path: expected '{store_dir}/{store_path}', found '{rest}' after it"
    )]
    Subpath {
        /// The path (lossily decoded).
        path: String,
        /// The store directory.
        store_dir: String,
        /// The store path it is inside.
        store_path: StorePath,
        /// What follows the store path: `/` and the rest, or just `/`.
        rest: String,
    },
    /// The path's base name is not a valid store path.
    #[error("path '{path}' is not a valid store path: {source}")]
    InvalidStorePath {
        /// The path (lossily decoded).
        path: String,
        /// What is wrong with its base name.
        #[source]
        source: StorePathError,
    },
}

/// A validated store directory: absolute, canonical (no trailing `/`, no
/// `//`, no `.` or `..` component), not the root. Defaults to `/nix/store`.
///
/// Cloning is cheap; `Display` writes the directory.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreDir(Arc<str>);

impl Default for StoreDir {
    fn default() -> Self {
        Self(Arc::from(DEFAULT_STORE_DIR))
    }
}

impl StoreDir {
    /// Validates a store directory.
    pub fn new(dir: &str) -> Result<Self, StoreDirError> {
        let owned = || dir.to_owned();
        if !dir.starts_with('/') {
            return Err(StoreDirError::NotAbsolute { dir: owned() });
        }
        if dir == "/" {
            return Err(StoreDirError::Root);
        }
        if dir.contains('\0') {
            return Err(StoreDirError::Nul {
                dir: dir.replace('\0', "\\0"),
            });
        }
        if dir.ends_with('/') {
            return Err(StoreDirError::TrailingSlash { dir: owned() });
        }
        for component in dir[1..].split('/') {
            match component {
                "" => return Err(StoreDirError::EmptyComponent { dir: owned() }),
                "." | ".." => {
                    return Err(StoreDirError::DotComponent {
                        dir: owned(),
                        component: if component == "." { "." } else { ".." },
                    });
                }
                _ => {}
            }
        }
        Ok(Self(Arc::from(dir)))
    }

    /// The directory, such as `/nix/store`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a full path that must name a store path itself:
    /// `<store dir>/<base name>`, nothing before or after.
    pub fn parse_path(&self, full: &[u8]) -> Result<StorePath, StoreDirError> {
        let (store_path, rest) = self.split_path(full)?;
        if rest.is_empty() {
            Ok(store_path)
        } else {
            Err(StoreDirError::Subpath {
                path: lossy(full),
                store_dir: self.0.to_string(),
                store_path,
                rest: lossy(rest),
            })
        }
    }

    /// Splits a full path at or inside a store path into the store path and
    /// the rest: empty, or `/` followed by the path inside it
    /// (`/nix/store/<hash>-bash/bin/sh` gives the store path and `/bin/sh`).
    pub fn split_path<'a>(&self, full: &'a [u8]) -> Result<(StorePath, &'a [u8]), StoreDirError> {
        let not_in_store = || StoreDirError::NotInStore {
            path: lossy(full),
            store_dir: self.0.to_string(),
        };
        let inside = full
            .strip_prefix(self.0.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"/"))
            .ok_or_else(not_in_store)?;
        let end = inside
            .iter()
            .position(|&c| c == b'/')
            .unwrap_or(inside.len());
        let (base_name, rest) = inside.split_at(end);
        let store_path = StorePath::from_base_name(base_name).map_err(|source| {
            StoreDirError::InvalidStorePath {
                path: lossy(full),
                source,
            }
        })?;
        Ok((store_path, rest))
    }

    /// Whether `full` names a store path in this directory (exactly what
    /// [`parse_path`](Self::parse_path) accepts).
    pub fn is_store_path(&self, full: &[u8]) -> bool {
        self.parse_path(full).is_ok()
    }

    /// The full path of a store path: `<store dir>/<base name>`.
    pub fn display_path(&self, path: &StorePath) -> String {
        self.join_base_name(path.base_name())
    }

    /// Appends the full path of a store path to `out`, with no intermediate
    /// allocation.
    pub fn write_path(&self, path: &StorePath, out: &mut Vec<u8>) {
        out.reserve(self.0.len() + 1 + path.base_name().len());
        out.extend_from_slice(self.0.as_bytes());
        out.push(b'/');
        out.extend_from_slice(path.base_name().as_bytes());
    }

    /// `<store dir>/<base name>` for any base name, validated or not (for
    /// example a name that is about to become a store path).
    pub fn join_base_name(&self, base_name: &str) -> String {
        let mut s = String::with_capacity(self.0.len() + 1 + base_name.len());
        s.push_str(&self.0);
        s.push('/');
        s.push_str(base_name);
        s
    }
}

impl fmt::Display for StoreDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StoreDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreDir").field(&&*self.0).finish()
    }
}

impl AsRef<str> for StoreDir {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for StoreDir {
    type Err = StoreDirError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}
