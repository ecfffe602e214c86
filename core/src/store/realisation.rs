//! Realisations: which path a derivation output was built to.
//!
//! Nix has named a derivation output in two ways. Until the worker feature
//! `realisation-with-path-not-hash` (and serve 2.8), by the derivation's
//! hash modulo its inputs, as text `sha256:<base16>!<output>`, with
//! realisations travelling as JSON. With it, by the derivation's store path
//! and the output's name, as two strings, with realisations as fields.
//! [`DrvOutput`] holds either; which one a peer understands is the
//! protocol's business.

use serde::{Deserialize, Serialize};

use super::{OutputName, Signature, StoreDir, StorePath};
use crate::wire::NixString;

/// A derivation output: a derivation (by hash or by path) and an output
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DrvOutput {
    /// Named by the derivation's hash: `sha256:<hash>!<output>` (Nix
    /// before 2.35 and peers without `realisation-with-path-not-hash`).
    Hash {
        /// The derivation's hash, as Nix prints it (`sha256:…`); not
        /// checked, since nothing here computes it.
        drv_hash: NixString,
        /// The output's name.
        output: OutputName,
    },
    /// Named by the derivation's store path (the worker feature
    /// `realisation-with-path-not-hash`, serve 2.8).
    Path {
        /// The derivation.
        drv_path: StorePath,
        /// The output's name.
        output: OutputName,
    },
}

impl DrvOutput {
    /// The output's name.
    pub fn output(&self) -> &OutputName {
        match self {
            Self::Hash { output, .. } | Self::Path { output, .. } => output,
        }
    }

    /// Reads the text form `<drv hash>!<output>` (split at the first `!`,
    /// as Nix does).
    pub fn parse_hash_form(text: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(text).map_err(|_| "the id is not UTF-8".to_owned())?;
        let (drv_hash, output) = text
            .split_once('!')
            .ok_or_else(|| format!("expected an id \"<hash>!<output>\", found {text:?}"))?;
        let output = OutputName::new(output).map_err(|e| e.to_string())?;
        Ok(Self::Hash {
            drv_hash: drv_hash.into(),
            output,
        })
    }

    /// The text form `<drv hash>!<output>`; for an output named by path
    /// (which has no such form), `<full drv path>!<output>`, which a peer
    /// refuses.
    pub fn to_hash_form(&self, store_dir: &StoreDir) -> String {
        match self {
            Self::Hash { drv_hash, output } => format!("{drv_hash}!{output}"),
            Self::Path { drv_path, output } => {
                format!("{}!{output}", store_dir.display_path(drv_path))
            }
        }
    }
}

/// Which path an output was built to, and who vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realisation {
    /// The output, where the protocol says which one it is: a keyed
    /// realisation (worker `RegisterDrvOutput`, `QueryRealisation` before
    /// the path feature), or the JSON of serve 2.6/2.7 and worker 1.28+
    /// without the feature. `None` where outputs are named by name only.
    pub id: Option<DrvOutput>,
    /// The output path.
    pub out_path: StorePath,
    /// Signatures of the realisation.
    pub signatures: Vec<Signature>,
}

/// The JSON form of a realisation in the serve protocol's 2.6 and 2.7, as
/// Nix up to 2.34 wrote it for a real derivation hash: all four fields, in
/// the (sorted) order Nix writes them.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyJson {
    #[serde(default)]
    dependent_realisations: serde_json::Map<String, serde_json::Value>,
    id: String,
    out_path: String,
    #[serde(default)]
    signatures: Vec<String>,
}

/// The form newer Nix writes for an old client when it only knows the
/// output's name: the dummy id and the path, nothing else.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CompatJson<'a> {
    id: &'a str,
    out_path: &'a str,
}

/// The derivation hash Nix writes for an old client when it has none: the
/// client only reads the output name after the `!`.
const DUMMY_DRV_HASH: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

impl Realisation {
    /// Reads one entry of a 2.6/2.7 `builtOutputs` map: `id` is
    /// `<drv hash>!<output>` and `json` the realisation, whose `outPath` is
    /// a base name in `store_dir`.
    pub fn from_legacy_json(
        id: &[u8],
        json: &[u8],
        store_dir: &StoreDir,
    ) -> Result<(OutputName, Self), String> {
        let id = DrvOutput::parse_hash_form(id)?;
        let output = id.output().clone();
        let parsed: LegacyJson = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let full = store_dir.join_base_name(&parsed.out_path);
        let out_path = store_dir
            .parse_path(full.as_bytes())
            .map_err(|e| e.to_string())?;
        // The dummy hash names no derivation: the realisation has no id.
        let id = match id {
            DrvOutput::Hash { drv_hash, .. } if drv_hash == DUMMY_DRV_HASH => None,
            id => Some(id),
        };
        let realisation = Self {
            id,
            out_path,
            signatures: parsed.signatures.into_iter().map(Signature::new).collect(),
        };
        Ok((output, realisation))
    }

    /// Writes the realisation of output `name` as a 2.6/2.7 `builtOutputs`
    /// entry: its id and its JSON, as Nix writes them. With an id by
    /// derivation hash, all four fields (as Nix up to 2.34 wrote them);
    /// otherwise the dummy derivation hash and the path alone (as newer Nix
    /// writes them for old clients, which read only the output name and
    /// the path). `dependentRealisations` is always empty: the serve
    /// protocol never carried any.
    pub fn to_legacy_json(&self, name: &OutputName) -> (String, String) {
        // Serialising a struct of strings cannot fail.
        match &self.id {
            Some(DrvOutput::Hash { drv_hash, .. }) => {
                let id = format!("{drv_hash}!{name}");
                let json = self.full_json(id.clone());
                (id, json)
            }
            Some(DrvOutput::Path { .. }) | None => {
                let id = format!("{DUMMY_DRV_HASH}!{name}");
                let json = CompatJson {
                    id: &id,
                    out_path: self.out_path.base_name(),
                };
                let json = serde_json::to_string(&json).unwrap_or_default();
                (id, json)
            }
        }
    }

    /// The four-field JSON with this id.
    fn full_json(&self, id: String) -> String {
        let json = LegacyJson {
            dependent_realisations: serde_json::Map::new(),
            id,
            out_path: self.out_path.base_name().to_owned(),
            signatures: self
                .signatures
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        };
        // Serialising a struct of strings cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Reads a keyed realisation in JSON, the worker protocol's form from
    /// 1.31 on without `realisation-with-path-not-hash`: `id`
    /// (`<drv hash>!<output>`), `outPath` (a base name in `store_dir`),
    /// `signatures` and `dependentRealisations`. The dependent
    /// realisations are read and dropped: Nix 2.34 and later always send
    /// none, and nothing here uses them.
    pub fn from_json(json: &[u8], store_dir: &StoreDir) -> Result<Self, String> {
        let parsed: LegacyJson = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let id = DrvOutput::parse_hash_form(parsed.id.as_bytes())?;
        let full = store_dir.join_base_name(&parsed.out_path);
        let out_path = store_dir
            .parse_path(full.as_bytes())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            id: Some(id),
            out_path,
            signatures: parsed.signatures.into_iter().map(Signature::new).collect(),
        })
    }

    /// Writes a keyed realisation as JSON, as Nix 2.34 does (all four
    /// fields, keys sorted, no dependent realisations). The id is
    /// [`DrvOutput::to_hash_form`], or empty without one (which a peer
    /// refuses: a keyed realisation needs its id).
    pub fn to_json(&self, store_dir: &StoreDir) -> String {
        let id = self
            .id
            .as_ref()
            .map(|id| id.to_hash_form(store_dir))
            .unwrap_or_default();
        self.full_json(id)
    }
}
