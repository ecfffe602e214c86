//! Realisations: which path a derivation output was built to.

use serde::{Deserialize, Serialize};

use super::{OutputName, Signature, StoreDir, StorePath};
use crate::wire::NixString;

/// A derivation output named by the derivation's hash:
/// `sha256:<hash>!<output>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrvOutput {
    /// The derivation's hash, as Nix prints it (`sha256:…`).
    pub drv_hash: NixString,
    /// The output's name.
    pub output: OutputName,
}

/// Which path an output was built to, and who vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realisation {
    /// The output, where the protocol names it by derivation hash (the
    /// serve protocol's 2.6 and 2.7 do; 2.8 names outputs by name only).
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
        let id = std::str::from_utf8(id).map_err(|_| "the id is not UTF-8".to_owned())?;
        let (drv_hash, output) = id
            .split_once('!')
            .ok_or_else(|| format!("expected an id \"<hash>!<output>\", found {id:?}"))?;
        let output = OutputName::new(output).map_err(|e| e.to_string())?;
        let parsed: LegacyJson = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let full = store_dir.join_base_name(&parsed.out_path);
        let out_path = store_dir
            .parse_path(full.as_bytes())
            .map_err(|e| e.to_string())?;
        // The dummy hash names no derivation: the realisation has no id.
        let id = (drv_hash != DUMMY_DRV_HASH).then(|| DrvOutput {
            drv_hash: drv_hash.into(),
            output: output.clone(),
        });
        let realisation = Self {
            id,
            out_path,
            signatures: parsed.signatures.into_iter().map(Signature::new).collect(),
        };
        Ok((output, realisation))
    }

    /// Writes the realisation of output `name` as a 2.6/2.7 `builtOutputs`
    /// entry: its id and its JSON, as Nix writes them. With an id, all four
    /// fields (as Nix up to 2.34 wrote them); without one, the dummy
    /// derivation hash and the path alone (as newer Nix writes them for old
    /// clients). `dependentRealisations` is always empty: the serve protocol
    /// never carried any.
    pub fn to_legacy_json(&self, name: &OutputName, _store_dir: &StoreDir) -> (String, String) {
        // Serialising a struct of strings cannot fail.
        match &self.id {
            Some(drv) => {
                let id = format!("{}!{name}", drv.drv_hash);
                let json = LegacyJson {
                    dependent_realisations: serde_json::Map::new(),
                    id: id.clone(),
                    out_path: self.out_path.base_name().to_owned(),
                    signatures: self
                        .signatures
                        .iter()
                        .map(|s| s.as_str().to_owned())
                        .collect(),
                };
                let json = serde_json::to_string(&json).unwrap_or_default();
                (id, json)
            }
            None => {
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
}
