//! Criterion benchmarks of the core:
//! - `nar/*`: NAR framing beside `memcpy` of the same buffer, and a
//!   `DumpStorePath` reply streaming through the serve client (64 KiB reads);
//! - `stream-256MiB`: a 256 MiB NAR through the client, beside `memcpy`;
//! - `decode/*`: a `QueryValidPaths` reply of 200 000 paths taken in reads of
//!   64 KiB and of 256 bytes, and replies of growing size in 4 KiB reads, to
//!   show that decoding costs the same per byte whatever the read size.
//!
//! Run with `cargo bench -p nixwire-benches`.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nixwire_core::conn::Connection;
use nixwire_core::nar::{NarFramer, Node};
use nixwire_core::serve::messages::{DumpStorePath, LATEST, QueryValidPaths, SERVER_MAGIC};
use nixwire_core::serve::{Client, ClientConfig, ClientEvent};
use nixwire_core::store::StorePath;
use nixwire_core::wire::{Cx, Serve, Wire, encode_u64};

/// The read size a runtime typically uses for a pipe.
const CHUNK: usize = 64 * 1024;

/// One file of `size` bytes: framing is a counted skip.
fn big_file(size: u32) -> Bytes {
    Bytes::from(
        Node::Regular {
            executable: false,
            contents: (0..size).map(|i| i as u8).collect(),
        }
        .to_nar(),
    )
}

/// 20 000 small files in 100 directories: framing parses many tokens.
fn many_files() -> Bytes {
    let dirs = (0..100)
        .map(|d| {
            let files = (0..200)
                .map(|f| {
                    let node = Node::Regular {
                        executable: f % 7 == 0,
                        contents: vec![b'x'; 100 + f * 13],
                    };
                    (format!("file-{f:04}").into_bytes(), node)
                })
                .collect();
            (format!("dir-{d:03}").into_bytes(), Node::Directory(files))
        })
        .collect();
    Bytes::from(Node::Directory(dirs).to_nar())
}

fn path(n: u32) -> StorePath {
    // A digest of its own per `n`; `from_digest` prints it in Nix's base 32.
    let mut digest = [0u8; 20];
    digest[..4].copy_from_slice(&n.to_le_bytes());
    StorePath::from_digest(&digest, &format!("p{n}")).expect("a valid store path")
}

/// A client past its handshake, waiting for the reply to one request.
fn client_waiting(request: impl Into<nixwire_core::serve::Request>) -> (Client, Instant) {
    let now = Instant::now();
    let mut client = Client::new(ClientConfig::default(), now);
    client.request(now, request).ok();
    let mut hello = Vec::new();
    encode_u64(SERVER_MAGIC, &mut hello);
    encode_u64(LATEST.to_wire(), &mut hello);
    client.handle_input(now, Bytes::from(hello)).ok();
    while client.poll_transmit().is_some() {}
    while client.poll_event().is_some() {}
    (client, now)
}

/// Streams `nar` through a client as a `DumpStorePath` reply, in slices of
/// `chunk` bytes, and returns how many bytes came out as chunks.
fn stream_through_client(nar: &Bytes, chunk: usize) -> usize {
    let (mut client, now) = client_waiting(DumpStorePath { path: path(0) });
    let mut streamed = 0;
    let mut at = 0;
    while at < nar.len() {
        let end = (at + chunk).min(nar.len());
        client.handle_input(now, nar.slice(at..end)).ok();
        at = end;
        while let Some(event) = client.poll_event() {
            if let ClientEvent::NarChunk { data, .. } = event {
                streamed += data.len();
            }
        }
    }
    streamed
}

fn memcpy_in_chunks(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks(CHUNK).zip(dst.chunks_mut(CHUNK)) {
        d.copy_from_slice(black_box(s));
    }
    black_box(dst);
}

fn framing(c: &mut Criterion) {
    for (name, nar) in [
        ("big-file", big_file(64 << 20)),
        ("many-files", many_files()),
    ] {
        let mut group = c.benchmark_group(format!("nar/{name}"));
        group.throughput(Throughput::Bytes(nar.len() as u64));
        group.sample_size(20);
        group.bench_function("framer", |b| {
            b.iter(|| {
                let mut framer = NarFramer::new();
                for chunk in nar.chunks(CHUNK) {
                    black_box(framer.feed(black_box(chunk)).ok());
                }
                assert!(framer.is_done());
            })
        });
        let mut dst = vec![0u8; nar.len()];
        group.bench_function("memcpy", |b| b.iter(|| memcpy_in_chunks(&nar, &mut dst)));
        group.bench_function("serve-client-dump", |b| {
            b.iter(|| assert_eq!(stream_through_client(&nar, CHUNK), nar.len()))
        });
        group.finish();
    }
}

fn stream_256(c: &mut Criterion) {
    let nar = big_file(256 << 20);
    let mut group = c.benchmark_group("stream-256MiB");
    group.throughput(Throughput::Bytes(nar.len() as u64));
    group.sample_size(10);
    group.bench_function("serve-client-dump", |b| {
        b.iter(|| assert_eq!(stream_through_client(&nar, CHUNK), nar.len()))
    });
    let mut dst = vec![0u8; nar.len()];
    group.bench_function("memcpy", |b| b.iter(|| memcpy_in_chunks(&nar, &mut dst)));
    group.finish();
}

/// The wire form of a `QueryValidPaths` reply of `n` paths.
fn reply_of(n: u32) -> Bytes {
    let cx = Cx::<Serve>::new(LATEST);
    let paths: Vec<StorePath> = (0..n).map(path).collect();
    Bytes::from(paths.to_wire(&cx))
}

/// Takes `reply` in reads of `read` bytes (each a fresh buffer, as a
/// runtime's reads are) and checks the reply came.
fn decode_in_reads(reply: &[u8], read: usize) {
    let (mut client, now) = client_waiting(QueryValidPaths::default());
    for piece in reply.chunks(read) {
        client.handle_input(now, Bytes::copy_from_slice(piece)).ok();
    }
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Reply { .. })
    ));
}

fn decoding(c: &mut Criterion) {
    let reply = reply_of(200_000);
    let mut group = c.benchmark_group("decode/200k-paths");
    group.throughput(Throughput::Bytes(reply.len() as u64));
    group.sample_size(10);
    for read in [reply.len(), 64 << 10, 256] {
        let label = if read == reply.len() {
            "one-read".to_owned()
        } else {
            format!("{read}-byte-reads")
        };
        group.bench_function(label, |b| b.iter(|| decode_in_reads(&reply, read)));
    }
    group.finish();

    let mut group = c.benchmark_group("decode/size-4KiB-reads");
    group.sample_size(10);
    for n in [25_000, 50_000, 100_000, 200_000] {
        let reply = reply_of(n);
        group.throughput(Throughput::Bytes(reply.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &reply, |b, reply| {
            b.iter(|| decode_in_reads(reply, 4096))
        });
    }
    group.finish();
}

criterion_group!(benches, framing, stream_256, decoding);
criterion_main!(benches);
