//! Criterion benchmarks of the core: NAR framing beside `memcpy` of the same
//! buffer, and a `DumpStorePath` reply streaming through the serve client.
//!
//! Run with `cargo bench -p nixwire-benches`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nixwire_core::nar::{NarFramer, Node};
use nixwire_core::serve::messages::{DumpStorePath, LATEST, SERVER_MAGIC};
use nixwire_core::serve::{Client, ClientConfig, ClientEvent, Request};
use nixwire_core::wire::encode_u64;

/// The read size a runtime typically uses for a pipe.
const CHUNK: usize = 64 * 1024;

/// One 64 MiB file: framing is a counted skip.
fn big_file() -> Vec<u8> {
    Node::Regular {
        executable: false,
        contents: (0..64u32 << 20).map(|i| i as u8).collect(),
    }
    .to_nar()
}

/// 20 000 small files in 100 directories: framing parses many tokens.
fn many_files() -> Vec<u8> {
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
    Node::Directory(dirs).to_nar()
}

fn framing(c: &mut Criterion) {
    for (name, nar) in [("big-file", big_file()), ("many-files", many_files())] {
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
        group.bench_function("memcpy", |b| {
            b.iter(|| {
                for (src, dst) in nar.chunks(CHUNK).zip(dst.chunks_mut(CHUNK)) {
                    dst.copy_from_slice(black_box(src));
                }
                black_box(&dst);
            })
        });
        group.bench_function("serve-client-dump", |b| {
            let mut hello = Vec::new();
            encode_u64(SERVER_MAGIC, &mut hello);
            encode_u64(LATEST.to_wire(), &mut hello);
            b.iter(|| {
                let now = Instant::now();
                let mut client = Client::new(ClientConfig::default(), now);
                let request = Request::DumpStorePath(DumpStorePath {
                    path: "/nix/store/00000000000000000000000000000000-x".into(),
                });
                client.request(request).ok();
                client.handle_input(now, &hello).ok();
                let mut streamed = 0;
                for chunk in nar.chunks(CHUNK) {
                    client.handle_input(now, chunk).ok();
                    while let Some(event) = client.poll_event() {
                        if let ClientEvent::NarChunk { data, .. } = event {
                            streamed += data.len();
                        }
                    }
                }
                assert_eq!(streamed, nar.len());
            })
        });
        group.finish();
    }
}

criterion_group!(benches, framing);
criterion_main!(benches);
