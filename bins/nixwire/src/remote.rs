//! A store opened through the runtime the user chose (`--runtime`), seen
//! through one blocking interface: the command runs one operation at a
//! time, so it waits on the async runtimes' futures where it stands.

use nixwire_core::runtime::{Error, Options};
use nixwire_core::session::Info;
use nixwire_core::store::{PathInfo, StorePath};

/// Which runtime drives the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Runtime {
    /// tokio; ssh through the openssh crate.
    Tokio,
    /// smol; the system ssh.
    Smol,
    /// std threads; ssh in-process through libssh2 (reads no ssh config).
    Blocking,
}

/// An open store, whichever runtime drives it.
pub(crate) enum Remote {
    Tokio(Box<(tokio::runtime::Runtime, nixwire_tokio::Store)>),
    Smol(nixwire_smol::Store),
    Blocking(nixwire_blocking::Store),
}

impl Remote {
    /// Opens `uri` through `runtime`.
    pub(crate) fn open(runtime: Runtime, uri: &str, options: &Options) -> Result<Self, Error> {
        Ok(match runtime {
            Runtime::Tokio => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::io("starting tokio"))?;
                let store = rt.block_on(nixwire_tokio::Store::open(uri, options))?;
                Self::Tokio(Box::new((rt, store)))
            }
            Runtime::Smol => Self::Smol(smol::block_on(nixwire_smol::Store::open(uri, options))?),
            Runtime::Blocking => Self::Blocking(nixwire_blocking::Store::open(uri, options)?),
        })
    }

    /// What the handshake said.
    pub(crate) fn info(&self) -> &Info {
        match self {
            Self::Tokio(t) => t.1.info(),
            Self::Smol(s) => s.info(),
            Self::Blocking(s) => s.info(),
        }
    }

    /// The metadata of those of `paths` the store holds, in the order asked.
    pub(crate) fn query_path_infos(
        &mut self,
        paths: &[StorePath],
    ) -> Result<Vec<(StorePath, PathInfo)>, Error> {
        match self {
            Self::Tokio(t) => {
                let (rt, s) = &mut **t;
                rt.block_on(s.query_path_infos(paths))
            }
            Self::Smol(s) => smol::block_on(s.query_path_infos(paths)),
            Self::Blocking(s) => s.query_path_infos(paths),
        }
    }

    /// Ends the session cleanly.
    pub(crate) fn close(self) -> Result<(), Error> {
        match self {
            Self::Tokio(t) => {
                let (rt, s) = *t;
                rt.block_on(s.close())
            }
            Self::Smol(s) => smol::block_on(s.close()),
            Self::Blocking(s) => s.close(),
        }
    }
}

/// The runtime options a command uses: the defaults, with `NIX_SSHOPTS`
/// honoured as Nix does.
pub(crate) fn options() -> Result<Options, String> {
    let sshopts = std::env::var("NIX_SSHOPTS").unwrap_or_default();
    Options::default()
        .with_nix_sshopts(&sshopts)
        .map_err(|e| format!("NIX_SSHOPTS: {e}"))
}

/// An error and its causes, on one line.
pub(crate) fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}
