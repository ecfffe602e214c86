//! The layouts of store types that are the same in both protocols: a store
//! path is its full path in the peer's store directory, an optional path or
//! content address is empty when absent, a signature is its text. The NAR
//! hash travels in two text forms, so it has a [`Codec`] per form.

use super::{
    Codec, Cx, DecodeError, Decoded, NixString, Protocol, Reader, Wire, encode_bytes, encode_u64,
};
use crate::store::{
    ContentAddress, HashFormat, NarHash, OutputName, Realisation, Signature, StorePath,
};

fn text<'a>(what: &str, bytes: &'a [u8]) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|_| DecodeError::unexpected(what, super::show_bytes(bytes)))
}

/// Takes one string whole and makes a value of it with `parse`.
fn parsed<T>(
    r: &mut Reader<'_>,
    parse: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
) -> Decoded<T> {
    r.atomic(|r| match r.bytes()? {
        Some(bytes) => parse(bytes).map(Some),
        None => Ok(None),
    })
}

/// Appends a store path's full form without building it first.
fn encode_path<P: Protocol>(path: &StorePath, cx: &Cx<P>, out: &mut Vec<u8>) {
    let dir = cx.store_dir.as_str();
    let len = dir.len() + 1 + path.base_name().len();
    encode_u64(len as u64, out);
    out.extend_from_slice(dir.as_bytes());
    out.push(b'/');
    out.extend_from_slice(path.base_name().as_bytes());
    out.extend_from_slice(&[0u8; 8][..super::primitives::padding(len as u64)]);
}

fn decode_path<P: Protocol>(cx: &Cx<P>, bytes: &[u8]) -> Result<StorePath, DecodeError> {
    cx.store_dir.parse_path(bytes).map_err(|e| {
        DecodeError::unexpected(
            format!("a store path in {}", cx.store_dir.as_str()),
            format!("{} ({e})", super::show_bytes(bytes)),
        )
    })
}

/// A store path travels as its full path in the peer's store directory.
impl<P: Protocol> Wire<P> for StorePath {
    type Partial = ();

    fn encode(&self, cx: &Cx<P>, out: &mut Vec<u8>) {
        encode_path(self, cx, out);
    }

    fn decode(cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        parsed(r, |bytes| decode_path(cx, bytes))
    }
}

/// An optional store path (a deriver) is the empty string when absent.
impl<P: Protocol> Wire<P> for Option<StorePath> {
    type Partial = ();

    fn encode(&self, cx: &Cx<P>, out: &mut Vec<u8>) {
        match self {
            Some(path) => encode_path(path, cx, out),
            None => encode_bytes(b"", out),
        }
    }

    fn decode(cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        parsed(r, |bytes| match bytes {
            [] => Ok(None),
            bytes => decode_path(cx, bytes).map(Some),
        })
    }
}

/// An output name, validated as Nix validates it.
impl<P: Protocol> Wire<P> for OutputName {
    type Partial = ();

    fn encode(&self, _cx: &Cx<P>, out: &mut Vec<u8>) {
        encode_bytes(self.as_str().as_bytes(), out);
    }

    fn decode(_cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        parsed(r, |bytes| {
            Self::from_bytes(bytes)
                .map_err(|e| DecodeError::unexpected("an output name", e.to_string()))
        })
    }
}

/// A signature is its text, kept as sent.
impl<P: Protocol> Wire<P> for Signature {
    type Partial = ();

    fn encode(&self, _cx: &Cx<P>, out: &mut Vec<u8>) {
        encode_bytes(self.as_str().as_bytes(), out);
    }

    fn decode(_cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        parsed(r, |bytes| Ok(Self::new(text("a signature (text)", bytes)?)))
    }
}

/// A content address is Nix's text form, empty when there is none.
impl<P: Protocol> Wire<P> for Option<ContentAddress> {
    type Partial = ();

    fn encode(&self, _cx: &Cx<P>, out: &mut Vec<u8>) {
        encode_bytes(ContentAddress::render_opt(self.as_ref()).as_bytes(), out);
    }

    fn decode(_cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Self> {
        parsed(r, |bytes| {
            ContentAddress::parse_opt(text("a content address (text)", bytes)?)
                .map_err(|e| DecodeError::unexpected("a content address", e.to_string()))
        })
    }
}

fn decode_hash(r: &mut Reader<'_>) -> Decoded<NarHash> {
    parsed(r, |bytes| {
        let text = text("a NAR hash (text)", bytes)?;
        NarHash::parse(text)
            .map_err(|e| DecodeError::unexpected("a sha256 NAR hash", format!("{text:?} ({e})")))
    })
}

/// A NAR hash as lowercase base 16 without a prefix (the worker protocol,
/// the serve protocol's `AddToStoreNar`). Reading accepts every form Nix's
/// `parseAny` does.
#[derive(Debug)]
pub enum Base16Hash {}

impl<P: Protocol> Codec<P, NarHash> for Base16Hash {
    type Partial = ();

    fn encode(value: &NarHash, _cx: &Cx<P>, out: &mut Vec<u8>) {
        encode_bytes(value.to_base16().as_bytes(), out);
    }

    fn decode(_cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<NarHash> {
        decode_hash(r)
    }
}

/// A NAR hash as `sha256:<nix32>`, or the empty string when unknown (the
/// serve protocol's path infos).
#[derive(Debug)]
pub enum PrefixedNix32Hash {}

impl<P: Protocol> Codec<P, Option<NarHash>> for PrefixedNix32Hash {
    type Partial = ();

    fn encode(value: &Option<NarHash>, _cx: &Cx<P>, out: &mut Vec<u8>) {
        let text = value
            .map(|h| h.render(HashFormat::Nix32, true))
            .unwrap_or_default();
        encode_bytes(text.as_bytes(), out);
    }

    fn decode(_cx: &Cx<P>, _partial: &mut (), r: &mut Reader<'_>) -> Decoded<Option<NarHash>> {
        if r.peek_u64() == Some(0) {
            r.u64();
            return Ok(Some(None));
        }
        Ok(decode_hash(r)?.map(Some))
    }
}

/// A protocol whose build results carry their built outputs in one of two
/// shapes, and says which at a given context.
pub trait OutputsShape: Protocol {
    /// Whether outputs travel structured (a map from output name to
    /// realisation) rather than as JSON realisations keyed by
    /// `<drv hash>!<output>`.
    fn structured_outputs(cx: &Cx<Self>) -> bool;
}

/// A build result's built outputs, by output name.
pub type BuiltOutputList = Vec<(OutputName, Realisation)>;

/// `BuildResult::built_outputs` in either shape: structured where the
/// protocol says ([`OutputsShape`]), else a map from `<drv hash>!<output>`
/// to a JSON realisation whose `outPath` is a base name, joined here onto
/// the connection's store directory (see [`Realisation::from_legacy_json`]).
#[derive(Debug)]
pub enum BuiltOutputs {}

/// The progress of either shape: both are lists of pairs.
pub struct BuiltOutputsPartial<P: Protocol>
where
    BuiltOutputList: Wire<P>,
{
    structured: <BuiltOutputList as Wire<P>>::Partial,
    json: <Vec<(NixString, NixString)> as Wire<P>>::Partial,
}

impl<P: Protocol> Default for BuiltOutputsPartial<P>
where
    BuiltOutputList: Wire<P>,
{
    fn default() -> Self {
        Self {
            structured: Default::default(),
            json: Default::default(),
        }
    }
}

impl<P: Protocol> std::fmt::Debug for BuiltOutputsPartial<P>
where
    BuiltOutputList: Wire<P>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltOutputsPartial")
            .field("structured", &self.structured)
            .field("json", &self.json)
            .finish()
    }
}

impl<P: OutputsShape> Codec<P, BuiltOutputList> for BuiltOutputs
where
    BuiltOutputList: Wire<P>,
    <BuiltOutputList as Wire<P>>::Partial: 'static,
{
    type Partial = BuiltOutputsPartial<P>;

    fn encode(value: &BuiltOutputList, cx: &Cx<P>, out: &mut Vec<u8>) {
        if P::structured_outputs(cx) {
            return value.encode(cx, out);
        }
        encode_u64(value.len() as u64, out);
        for (name, realisation) in value {
            let (id, json) = realisation.to_legacy_json(name);
            encode_bytes(id.as_bytes(), out);
            encode_bytes(json.as_bytes(), out);
        }
    }

    fn decode(
        cx: &Cx<P>,
        partial: &mut Self::Partial,
        r: &mut Reader<'_>,
    ) -> Decoded<BuiltOutputList> {
        if P::structured_outputs(cx) {
            return BuiltOutputList::decode(cx, &mut partial.structured, r);
        }
        let Some(entries) = Vec::<(NixString, NixString)>::decode(cx, &mut partial.json, r)? else {
            return Ok(None);
        };
        entries
            .iter()
            .enumerate()
            .map(|(i, (id, json))| {
                Realisation::from_legacy_json(id.as_bytes(), json.as_bytes(), &cx.store_dir)
                    .map_err(|why| {
                        DecodeError::unexpected("a JSON realisation", format!("{json:?} ({why})"))
                            .within_index(i)
                    })
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }
}
